"""Drift false alarms and power by window size: ours vs Evidently 0.7, Alibi Detect and NannyML (issue #24).

`python -m bench drift_power [--quick] [--models taxi,wine,insurance] [--sizes 200,500,...] [--clean N] [--shifted N]
[--no-external]`

Models: the taxi example (models/ride_duration: its trained model.pkl and reference.parquet when
`python -m ride_duration.train` wrote them, else fitted here on generated rides; clean windows are
generated rides of other seeds with the model's predictions), a classifier built from
scikit-learn's wine data (bench/drift_data.py), and the shipped classifier (models/health_insurance,
real survey rows: a 5,000-row held-out reference, clean windows from the other rows). For each size n,
`--clean` clean windows and `--shifted` windows per shift family (numerical scale x1.1/x1.25,
variance x1.2/x1.5, categorical mix 10/20/40% of rows moved onto the busiest known values, 10% unseen
values, x1.25 in one segment only, a joint shift with unchanged marginals, label shift for the
classifiers); the prediction is recomputed on shifted rows.

Judges: ours (monitoring_core.drift.DriftEvaluator, shipped calibration: per-feature verdicts at
0.5%, the Holm dataset verdict at 1% family-wise, the joint correlation-change detector
(monitoring_core/multivariate.py) at 0.5%, segments through `family_flags` at 1%); Evidently 0.7's
default stat test and threshold per column, and the same score at a threshold matched to 0.5% on
the clean windows; and, in a bench-only venv created on
demand (.bench-venv/: alibi-detect 0.13.0, nannyml 0.13.1; ~3.5 minutes once), Alibi Detect's
TabularDrift (KS / chi-square, Bonferroni at 0.05) and NannyML's univariate Jensen-Shannon and
reconstruction-error drift, at their defaults and matched. "Matched" thresholds are the clean
windows' own 99.5% quantile (in-sample: optimistic for the matched tools; it needs about 200 clean
windows to mean 0.5%: from 60 it lies between the two largest scores, an in-sample rate of 1 in 60,
so --quick keeps 200). Detection counts the shifted feature's own verdict (the dataset or joint
verdict for families without one; a peer's "any feature" there runs at up to features x 0.5%).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import beta

from bench import drift_data
from monitoring_core.calibration import CalibrationCache, CalibrationSettings
from monitoring_core.description import Kind, ModelDescription
from monitoring_core.drift import DriftEvaluator, family_flags

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".bench-venv"
EXTERNAL = ["alibi-detect==0.13.0", "nannyml==0.13.1", "pyarrow<16", "statsmodels"]
SIZES = (200, 500, 1000, 2000, 5000)
RATE, FAMILY_RATE = 0.005, 0.01
POOL_ROWS = 200_000


@dataclass
class Case:
    name: str
    description: ModelDescription
    reference: pd.DataFrame
    sample: Callable[[int, int], pd.DataFrame]
    predict: Callable[[pd.DataFrame], pd.DataFrame]
    shifts: dict[str, tuple[Callable[[pd.DataFrame, int], pd.DataFrame], str | None]] = field(default_factory=dict)


def _families(case: Case, numerical: str, categorical: str, joint: Callable, segment: str) -> None:
    ref = case.reference
    busiest = list(ref[categorical].value_counts().index[: min(5, ref[categorical].nunique() // 3 or 1)])
    center = float(ref[numerical].median())
    seg = case.description.segment

    def one_segment(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
        out = frame.copy()
        inside = case.description.segment_of(out) == segment
        out.loc[inside, numerical] = out.loc[inside, numerical] * 1.25
        return out

    case.shifts.update(
        {
            "scale x1.1": (lambda f, s: drift_data.scale(f, numerical, 1.1), numerical),
            "scale x1.25": (lambda f, s: drift_data.scale(f, numerical, 1.25), numerical),
            "variance x1.2": (lambda f, s: drift_data.spread(f, numerical, 1.2, center), numerical),
            "variance x1.5": (lambda f, s: drift_data.spread(f, numerical, 1.5, center), numerical),
            "mix 10%": (lambda f, s: drift_data.mix(f, categorical, 0.1, busiest, s), categorical),
            "mix 20%": (lambda f, s: drift_data.mix(f, categorical, 0.2, busiest, s), categorical),
            "mix 40%": (lambda f, s: drift_data.mix(f, categorical, 0.4, busiest, s), categorical),
            "unseen 10%": (lambda f, s: drift_data.unseen(f, categorical, 0.1, s), categorical),
            f"x1.25 in {segment} only": (one_segment, numerical) if seg is not None else (None, None),
            "joint (marginals kept)": (joint, None),
        }
    )


def _sampler(pool: pd.DataFrame) -> Callable[[int, int], pd.DataFrame]:
    """Return sample(rows, seed): that many rows of `pool`, drawn without replacement."""

    def sample(rows: int, seed: int) -> pd.DataFrame:
        picked = np.random.default_rng(seed).choice(len(pool), rows, replace=False)
        return pool.iloc[picked].reset_index(drop=True)

    return sample


def taxi_case() -> Case:
    from ride_duration.model import load_model
    from ride_duration.schema import DESCRIPTION, PREDICTION
    from ride_duration.synthetic import generate_trips

    folder = ROOT / "models" / "ride_duration"
    if (folder / "model.pkl").exists() and (folder / "reference.parquet").exists():
        model = load_model(folder / "model.pkl")
        reference = pd.read_parquet(folder / "reference.parquet")
        print(f"taxi: trained model and reference from {folder} ({len(reference)} rows)")
    else:
        from ride_duration.model import RideDurationModel
        from ride_duration.train import fit

        model = RideDurationModel(pipeline=fit(generate_trips(20_000, seed=1)), version="bench", info={})
        reference = generate_trips(5_000, seed=11)
        reference[PREDICTION] = model.predict_frame(reference)
        print("taxi: no trained model in models/ride_duration (python -m ride_duration.train): fitted here")

    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame[PREDICTION] = model.predict_frame(frame)
        return frame

    # One pool of clean rides with predictions, windows drawn from it (generating and predicting every
    # window anew took most of the bench's time on 2 shared cores).
    pool = predict(generate_trips(POOL_ROWS, seed=100_000))

    case = Case("taxi", DESCRIPTION, reference, _sampler(pool), predict)
    shuffle = drift_data.shuffle_column
    _families(case, "trip_distance", "PULocationID", lambda f, s: shuffle(f, "trip_distance", s), "Brooklyn")
    return case


def wine_case() -> Case:
    description, sample, predict = drift_data.wine_model()
    case = Case("wine", description, sample(3_000, seed=1), lambda r, s: sample(r, 10_000 + s), predict)
    _families(
        case,
        "proline",
        "color_band",
        lambda f, s: drift_data.flip_correlation(f, "flavanoids", "total_phenols", s),
        "dark",
    )

    def label_shift(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        pool = sample(3 * len(frame), 20_000 + seed)
        weights = np.where(pool["cultivar"] == "class_0", 3.0, 1.0)
        picked = rng.choice(len(pool), len(frame), replace=False, p=weights / weights.sum())
        return pool.iloc[picked].reset_index(drop=True)

    case.shifts["label shift (class_0 x3)"] = (label_shift, None)
    return case


def insurance_case() -> Case:
    """The shipped classifier (models/health_insurance) on its real survey rows: the reference is 5,000
    held-out rows as `python -m health_insurance.train` makes it (refitted here with the same pipeline),
    clean windows come from the other 17,272 rows with the model's predictions."""
    from sklearn.model_selection import train_test_split

    from health_insurance.data import FEATURES, TARGET, load_hi
    from health_insurance.train import HELD_OUT_SHARE, build_pipeline, reference_frame
    from monitoring_core.model_folder import read_description

    description = read_description(ROOT / "models" / "health_insurance" / "model.yaml")
    frame = load_hi()
    train_rows, held_out = train_test_split(frame, test_size=HELD_OUT_SHARE, random_state=0, stratify=frame[TARGET])
    pipeline = build_pipeline(0).fit(train_rows[list(FEATURES)], train_rows[TARGET])
    columns = description.probability_columns

    def predict(rows: pd.DataFrame) -> pd.DataFrame:
        return reference_frame(pipeline, rows, columns)

    reference = predict(held_out.head(5_000))
    pool = predict(pd.concat([train_rows, held_out.iloc[5_000:]]))
    print(f"insurance: reference 5,000 held-out rows, clean windows from the other {len(pool):,} rows")

    case = Case("insurance", description, reference, _sampler(pool), predict)
    shuffle = drift_data.shuffle_column
    _families(case, "husband_income", "education", lambda f, s: shuffle(f, "husband_income", s), "south")

    def label_shift(window: pd.DataFrame, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        weights = np.where(pool[TARGET] == "yes", 3.0, 1.0)
        picked = rng.choice(len(pool), len(window), replace=False, p=weights / weights.sum())
        return pool.iloc[picked].reset_index(drop=True)

    case.shifts["label shift (yes x3)"] = (label_shift, None)
    return case


class _EvidentlyDefaults:
    """Evidently's own choice per column: the default stat test and threshold for this reference."""

    def __init__(self, case: Case, features: list[str]) -> None:
        from evidently.legacy.calculations.stattests import get_stattest
        from evidently.legacy.core import ColumnType

        self.reference = case.reference
        self.types = {
            c: ColumnType.Categorical if case.description.column_kind(c) is Kind.CATEGORICAL else ColumnType.Numerical
            for c in features
        }
        self.tests = {
            c: get_stattest(self.reference[c].dropna(), self.reference[c].dropna(), t, None)
            for c, t in self.types.items()
        }

    def judge(self, frame: pd.DataFrame) -> dict[str, tuple[float, bool]]:
        out = {}
        for column, test in self.tests.items():
            result = test(self.reference[column].dropna(), frame[column].dropna(), self.types[column], None)
            # Matched thresholds compare "larger is more drift": p-values are negated.
            score = -result.drift_score if test.name in {"ks", "chisquare", "z"} else result.drift_score
            out[column] = (float(score), bool(result.drifted))
        return out


def ensure_venv() -> Path | None:
    """Return the bench venv's python, creating .bench-venv/ on first use (~3.5 minutes); None if that fails."""
    python = VENV / "bin" / "python"
    marker = VENV / ".installed"
    if marker.exists():
        return python
    print(f"creating {VENV} with {' '.join(EXTERNAL)} (once, ~3.5 minutes)", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *EXTERNAL], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"bench venv unavailable ({exc}): Alibi Detect and NannyML left out")
        return None
    marker.write_text("\n".join(EXTERNAL))
    return python


def _interval(hits: int, trials: int) -> str:
    if not trials:
        return "n/a"
    lo = beta.ppf(0.025, hits, trials - hits + 1) if hits else 0.0
    hi = beta.ppf(0.975, hits + 1, trials - hits) if hits < trials else 1.0
    return f"{100 * hits / trials:.2f}% [{100 * lo:.2f}-{100 * hi:.2f}] ({hits}/{trials})"


def _pct(values: list[bool]) -> str:
    return f"{100 * np.mean(values):.0f}%" if values else "n/a"


def run_case(case: Case, sizes: list[int], clean: int, shifted: int, external: Path | None) -> None:
    settings = CalibrationSettings()
    cache = CalibrationCache(VENV.parent / ".bench-venv-calibration.json")
    started = time.perf_counter()
    ours = DriftEvaluator(case.description, case.reference, calibration=settings, cache=cache)
    features = list(ours.features)
    segments: dict[str, DriftEvaluator] = {}
    if case.description.segment is not None:
        by = case.description.segment_of(case.reference)
        for name in by.unique():
            rows = case.reference[by == name]
            if len(rows) >= 100:
                segments[str(name)] = DriftEvaluator(
                    case.description, rows, calibration=settings, cache=cache, multivariate=False
                )
    evidently = _EvidentlyDefaults(case, features)
    numerical = [c for c in features if case.description.column_kind(c) is not Kind.CATEGORICAL]
    categorical = [c for c in features if case.description.column_kind(c) is Kind.CATEGORICAL]

    windows: list[tuple[int, str, int, pd.DataFrame]] = []  # (size, family, seed, frame)
    for n in sizes:
        for seed in range(clean):
            windows.append((n, "clean", seed, case.sample(n, seed * 7919 + n)))
        for family, (apply, _) in case.shifts.items():
            if apply is None:
                continue
            for seed in range(shifted):
                frame = case.sample(n, 1_000_000 + seed * 7919 + n)
                windows.append((n, family, seed, case.predict(apply(frame, seed).reset_index(drop=True))))

    records = []
    eval_seconds = []
    for n, family, _seed, frame in windows:
        tic = time.perf_counter()
        result = ours.evaluate(frame)
        eval_seconds.append(time.perf_counter() - tic)
        record = {"n": n, "family": family, "enough": result.enough_data}
        record["ours"] = {c: result.columns[c].detected for c in features}
        record["ours_dataset"] = result.dataset_drift
        # The verdicts' stated rates at this size (lower than the configured ones once the floors bind).
        record["stated"] = [result.columns[c].false_alarm_rate for c in features]
        record["stated_dataset"] = result.stated_dataset_rate
        record["ours_mv"] = bool(result.multivariate is not None and result.multivariate.detected)
        if segments and (family == "clean" or " only" in family):
            by = case.description.segment_of(frame)
            flags = family_flags({s: ev.evaluate(frame[by == s]) for s, ev in segments.items()}, FAMILY_RATE)
            record["ours_segments"] = any(flags.values())
        record["evidently"] = evidently.judge(frame)
        records.append(record)
    ext: dict = {}
    if external is not None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder)

            def typed(frame: pd.DataFrame) -> pd.DataFrame:
                # Categories as text on both sides (an unseen value is text where the zones are numbers).
                return frame.astype({c: str for c in categorical})

            typed(case.reference[features]).to_parquet(path / "reference.parquet")
            stacked = pd.concat(
                [typed(w[3][features]).assign(window=i, size=w[0]) for i, w in enumerate(windows)], ignore_index=True
            )
            stacked.to_parquet(path / "windows.parquet")
            (path / "spec.json").write_text(json.dumps({"numerical": numerical, "categorical": categorical}))
            env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
            tic = time.perf_counter()
            subprocess.run([str(external), str(ROOT / "bench" / "drift_external.py"), folder], check=True, env=env)
            print(
                f"{case.name}: Alibi Detect + NannyML on {len(windows)} windows took {time.perf_counter() - tic:.0f}s"
            )
            ext = json.loads((path / "external.json").read_text())
    for i, record in enumerate(records):
        record["ext"] = ext.get(str(i), {})
    print(
        f"\n## {case.name}: {len(case.reference)} reference rows, features {features}; "
        f"{len(windows)} windows in {time.perf_counter() - started:.0f}s; our evaluate median "
        f"{1000 * float(np.median(eval_seconds)):.1f} ms; load average {os.getloadavg()[0]:.1f}"
    )
    _report(case, records, sizes, features)


def _matched(records: list[dict], n: int, key: Callable[[dict], float | None], rate: float) -> float:
    values = [v for r in records if r["n"] == n and r["family"] == "clean" and (v := key(r)) is not None]
    return float(np.quantile(values, 1 - rate)) if values else float("inf")


def _report(case: Case, records: list[dict], sizes: list[int], features: list[str]) -> None:
    print("\nFalse alarms on clean windows (95% Clopper-Pearson interval):\n")
    print(
        "| n | ours per feature (0.5%) | stated per feature | ours dataset (1%) | stated dataset "
        "| ours any segment (1%) | ours multivariate (0.5%) "
        "| Evidently default per feature | Alibi default dataset (5%) | NannyML uni per feature "
        "| NannyML multivariate |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        clean = [r for r in records if r["n"] == n and r["family"] == "clean"]
        judged = [r for r in clean if r["enough"]]
        per_feature = [r["ours"][c] for r in judged for c in features]
        stated = [v for r in judged for v in r["stated"] if v is not None]
        stated_dataset = [r["stated_dataset"] for r in judged if r["stated_dataset"] is not None]
        cells = [
            _interval(sum(per_feature), len(per_feature)),
            f"{100 * np.mean(stated):.2f}%" if stated else "n/a",
            _interval(sum(r["ours_dataset"] for r in judged), len(judged)),
            f"{100 * np.mean(stated_dataset):.2f}%" if stated_dataset else "n/a",
            _interval(
                sum(r["ours_segments"] for r in clean if "ours_segments" in r), sum("ours_segments" in r for r in clean)
            ),
            _interval(sum(r["ours_mv"] for r in judged), len(judged)),
        ]
        ev = [r["evidently"][c][1] for r in clean for c in features]
        cells.append(_interval(sum(ev), len(ev)))
        ext = [r["ext"] for r in clean if r["ext"]]
        cells.append(_interval(sum(e["alibi_drift"] for e in ext), len(ext)))
        nml = [e["nml_alert"][c] for e in ext if "nml_alert" in e for c in features]
        cells.append(_interval(sum(nml), len(nml)))
        mv = [e["nml_mv_alert"] for e in ext if "nml_mv_alert" in e]
        cells.append(_interval(sum(mv), len(mv)))
        print(f"| {n} | " + " | ".join(cells) + " |")

    print("\nDetection rate per shift family (the shifted feature's verdict; dataset / joint verdict where none):\n")
    print(
        "| family | n | ours feature | ours dataset | ours multivariate | ours segments | Evidently default "
        "| Evidently @0.5% | Alibi default | Alibi @0.5% | NannyML uni | NannyML uni @0.5% | NannyML mv "
        "| NannyML mv @0.5% |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for family, (_, column) in case.shifts.items():
        for n in sizes:
            rows = [r for r in records if r["n"] == n and r["family"] == family]
            if not rows:
                continue
            judged = [r for r in rows if r["enough"]]
            cols = [column] if column else features
            ev_thr = {c: _matched(records, n, lambda r, c=c: r["evidently"][c][0], RATE) for c in cols}
            al_thr = {
                c: _matched(records, n, lambda r, c=c: -r["ext"]["alibi_p"][c] if r["ext"] else None, RATE)
                for c in cols
            }
            nml_thr = {c: _matched(records, n, lambda r, c=c: r["ext"].get("nml_js", {}).get(c), RATE) for c in cols}
            mv_thr = _matched(records, n, lambda r: r["ext"].get("nml_mv"), RATE)
            ext = [r["ext"] for r in rows if r["ext"]]
            cells = [
                _pct([any(r["ours"][c] for c in cols) for r in judged]) if column else "—",
                _pct([r["ours_dataset"] for r in judged]),
                _pct([r["ours_mv"] for r in judged]),
                _pct([r["ours_segments"] for r in rows if "ours_segments" in r]),
                _pct([any(r["evidently"][c][1] for c in cols) for r in rows]),
                _pct([any(r["evidently"][c][0] > ev_thr[c] for c in cols) for r in rows]),
                _pct([e["alibi_drift"] for e in ext]),
                _pct([any(-e["alibi_p"][c] > al_thr[c] for c in cols) for e in ext]),
                _pct([any(e["nml_alert"][c] for c in cols) for e in ext if "nml_alert" in e]),
                _pct([any(e["nml_js"][c] > nml_thr[c] for c in cols) for e in ext if "nml_js" in e]),
                _pct([e["nml_mv_alert"] for e in ext if "nml_mv_alert" in e]),
                _pct([e["nml_mv"] > mv_thr for e in ext if "nml_mv" in e]),
            ]
            print(f"| {family} | {n} | " + " | ".join(cells) + " |")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench drift_power", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer shifted windows (200 clean, 15 shifted per size)")
    parser.add_argument("--models", default="taxi,wine,insurance")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--clean", type=int, default=None, help="clean windows per size (default 400, quick 200)")
    parser.add_argument(
        "--shifted", type=int, default=None, help="windows per shift family and size (default 50, quick 15)"
    )
    parser.add_argument("--no-external", action="store_true", help="leave out Alibi Detect and NannyML")
    args = parser.parse_args(argv)
    clean = args.clean or (200 if args.quick else 400)
    shifted = args.shifted or (15 if args.quick else 50)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    external = None if args.no_external else ensure_venv()
    cases = {"taxi": taxi_case, "wine": wine_case, "insurance": insurance_case}
    for name in args.models.split(","):
        run_case(cases[name](), sizes, clean, shifted, external)
    print(f"\nload average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0
