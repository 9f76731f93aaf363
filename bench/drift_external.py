"""Run Alibi Detect's TabularDrift and NannyML's univariate and multivariate drift on the bench's windows.

Runs in the bench-only venv (.bench-venv/, see bench_drift_power.py), imports nothing of the project:
`python bench/drift_external.py DIR` reads DIR/reference.parquet, DIR/windows.parquet (column
`window` numbers the windows, `size` their rows; windows of one size are contiguous) and DIR/spec.json
({"numerical": [...], "categorical": [...]}), and writes DIR/external.json:
{window: {"alibi_p": {feature: p}, "alibi_drift": bool, "nml_js": {feature: value},
"nml_alert": {feature: bool}, "nml_mv": value, "nml_mv_alert": bool}}. Every tool at its defaults:
TabularDrift(p_val=0.05, Bonferroni, KS / chi-square), NannyML's Jensen-Shannon for both kinds and
reconstruction error, thresholds from the reference cut into chunks of the window's size.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
warnings.filterwarnings("ignore")


def main(folder: Path) -> None:
    import numpy as np
    import pandas as pd

    reference = pd.read_parquet(folder / "reference.parquet")
    windows = pd.read_parquet(folder / "windows.parquet")
    spec = json.loads((folder / "spec.json").read_text())
    numerical, categorical = spec["numerical"], spec["categorical"]
    features = [*numerical, *categorical]
    out: dict[str, dict] = {}

    # Alibi: numbers with NaN filled by the reference median (its KS refuses NaN); categories as codes.
    from alibi_detect.cd import TabularDrift

    codes = {c: {v: i for i, v in enumerate(pd.unique(reference[c].astype(str)))} for c in categorical}

    def encode(frame: pd.DataFrame) -> np.ndarray:
        parts = [frame[c].astype(float).fillna(reference[c].median()).to_numpy() for c in numerical]
        for c in categorical:
            mapping = codes[c]
            parts.append(frame[c].astype(str).map(lambda v, m=mapping: m.get(v, len(m))).to_numpy(float))
        return np.column_stack(parts)

    detector = TabularDrift(
        encode(reference),
        p_val=0.05,
        categories_per_feature={len(numerical) + i: None for i in range(len(categorical))},
    )
    for window, frame in windows.groupby("window", sort=False):
        prediction = detector.predict(encode(frame), drift_type="batch", return_p_val=True)["data"]
        out[str(window)] = {
            "alibi_p": dict(zip(features, map(float, prediction["p_val"]), strict=True)),
            "alibi_drift": bool(prediction["is_drift"]),
        }

    import nannyml as nml

    for size, group in windows.groupby("size", sort=False):
        size = int(size)
        ids = list(dict.fromkeys(group["window"]))
        data = group[features].reset_index(drop=True)
        if len(reference) // size < 2:
            continue  # NannyML needs at least two reference chunks for its thresholds
        uni = nml.UnivariateDriftCalculator(
            column_names=features, treat_as_categorical=categorical, chunk_size=size
        ).fit(reference[features])
        table = uni.calculate(data).filter(period="analysis").to_df()
        for i, window in enumerate(ids):
            row = table.iloc[i]
            out[str(window)]["nml_js"] = {c: float(row[(c, "jensen_shannon", "value")]) for c in features}
            out[str(window)]["nml_alert"] = {c: bool(row[(c, "jensen_shannon", "alert")]) for c in features}
        mv = nml.DataReconstructionDriftCalculator(column_names=features, chunk_size=size).fit(reference[features])
        table = mv.calculate(data).filter(period="analysis").to_df()
        for i, window in enumerate(ids):
            row = table.iloc[i]
            out[str(window)]["nml_mv"] = float(row[("reconstruction_error", "value")])
            out[str(window)]["nml_mv_alert"] = bool(row[("reconstruction_error", "alert")])
    (folder / "external.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
