"""Performance estimated before labels vs the realised metric, ours vs NannyML (DLE / CBPE), per scenario and size.

`python -m bench performance_estimation [--quick] [--windows N] [--sizes 200 500 2000] [--no-nannyml]`

Two models: the taxi regressor (models/ride_duration, trained first if missing; windows from
ride_duration/synthetic.py) and a classifier fitted here on generated rows with a known label rule
(Gaussian naive Bayes on three classes: its probabilities are overconfident, so both sides calibrate).
Scenarios: clean; covariate shift (taxi: distances x1.4; classifier: rows resampled towards large
x0); segment shift (rows of one segment weighted x6); concept drift (taxi: every ride 25% slower;
classifier: classes b and c swapped where x3 > 0.5 -- the inputs' distribution is unchanged). For every
window size n, independent windows are drawn; each is estimated by us (monitoring_core.estimation)
and by NannyML 0.13.1 at its defaults with chunk = window, run in a bench-only venv the bench
creates on demand (.bench-venv-nannyml, about 3.5 minutes once; data exchanged as parquet files).
Printed per model, scenario, n and metric: the mean absolute error of each estimate against the
window's realised metric, the share of windows whose realised metric lies in the band (ours at
90%; NannyML's own band is +-3 sampling errors, and its +-1.645 is shown too), and the cost of one
estimate on 2,000 rows. Every window is judged from several references (the model folder's own,
then fresh clean rows of the same size), since one reference's sampling luck moves every estimate
alike; our band's coverage is also measured over many references (`--band-references`, ours only).
The load average is printed beside the figures (2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring_core.description import ModelDescription, parse_description
from monitoring_core.estimation import LEVEL, PerformanceEstimator, fit_estimator

ROOT = Path(__file__).resolve().parent.parent
NANNYML_VENV = ROOT / ".bench-venv-nannyml"
NANNYML_PACKAGES = ("nannyml==0.13.1", "pyarrow<16", "statsmodels", "pandas<3")
NANNYML_SCRIPT = Path(__file__).resolve().parent / "nannyml_estimate.py"
SCENARIOS = ("clean", "covariate_shift", "segment_shift", "concept_drift")
Z_90 = 1.6448536269514722


# -- the two models ------------------------------------------------------------------------------------
@dataclass
class Case:
    """A model under test: its description, reference, and a source of labelled windows per scenario."""

    name: str
    description: ModelDescription
    reference: pd.DataFrame
    metrics: tuple[str, ...]
    nannyml: dict  # the runner's spec (method, columns)

    def pool(self, scenario: str, rows: int, seed: int) -> pd.DataFrame:
        """Return `rows` labelled rows of a scenario, with the model's outputs."""
        raise NotImplementedError

    def realised(self, window: pd.DataFrame) -> dict[str, float]:
        """Return the metrics a labelled window realises."""
        raise NotImplementedError


class TaxiCase(Case):
    def __init__(self) -> None:
        from monitoring_core.model_folder import load_model_folder
        from ride_duration.model import load_model

        folder = load_model_folder(ROOT / "models" / "ride_duration")
        if folder.model_path is None or not folder.reference_path.is_file():
            from ride_duration.train import main as train

            print("[bench] training the taxi model first (python -m ride_duration.train)", flush=True)
            train(["--out-dir", str(folder.path)])
        self.model = load_model(folder.model_path)
        reference = pd.read_parquet(folder.reference_path)
        super().__init__(
            name="ride_duration (regression)",
            description=folder.description,
            reference=reference,
            metrics=("mae", "rmse"),
            nannyml={
                "method": "dle",
                "features": ["PULocationID", "DOLocationID", "trip_distance", "passenger_count", "hour", "weekday"],
                "categorical": ["PULocationID", "DOLocationID"],
                "prediction": "prediction",
                "target": "duration",
            },
        )

    def pool(self, scenario: str, rows: int, seed: int) -> pd.DataFrame:
        from ride_duration.synthetic import DriftParams, generate_trips

        drift = {
            "covariate_shift": DriftParams(distance_scale=1.4),
            "concept_drift": DriftParams(congestion=1.25),
        }.get(scenario, DriftParams())
        frame = generate_trips(rows * (4 if scenario == "segment_shift" else 1), seed=seed, drift=drift)
        frame["prediction"] = self.model.predict_frame(frame)
        if scenario == "segment_shift":  # Manhattan pickups (the slowest borough) six times as likely
            weights = np.where(self.description.segment_of(frame) == "Manhattan", 6.0, 1.0)
            frame = _resample(frame, weights, rows, seed)
        return frame

    def realised(self, window: pd.DataFrame) -> dict[str, float]:
        error = window["duration"] - window["prediction"]
        return {"mae": float(error.abs().mean()), "rmse": float(np.sqrt((error**2).mean()))}


CLASSES = ("a", "b", "c")
CLASSIFIER_DESCRIPTION = {
    "name": "generated_classifier",
    "task": "classification",
    "classes": list(CLASSES),
    "target": {"name": "label"},
    "prediction": {"name": "prediction", "probabilities": {c: f"proba_{c}" for c in CLASSES}},
    "features": [
        *({"name": f"x{i}", "kind": "numerical"} for i in range(4)),
        {"name": "channel", "kind": "categorical", "values": ["web", "shop", "phone", "partner"]},
    ],
    "segments": [{"name": "channel", "column": "channel"}],
}


class ClassifierCase(Case):
    def __init__(self) -> None:
        from sklearn.naive_bayes import GaussianNB

        description = parse_description(CLASSIFIER_DESCRIPTION)
        train = _classifier_rows(8000, seed=11, scenario="clean")
        self.model = GaussianNB().fit(_classifier_inputs(train), train["label"])
        super().__init__(
            name="generated classifier (3 classes)",
            description=description,
            reference=self.predict(_classifier_rows(5000, seed=12, scenario="clean")),
            metrics=("accuracy", "f1_macro"),
            nannyml={
                "method": "cbpe",
                "probabilities": {c: f"proba_{c}" for c in CLASSES},
                "prediction": "prediction",
                "target": "label",
            },
        )

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        proba = self.model.predict_proba(_classifier_inputs(frame))
        frame = frame.copy()
        for i, c in enumerate(self.model.classes_):
            frame[f"proba_{c}"] = proba[:, i]
        frame["prediction"] = self.model.classes_[proba.argmax(axis=1)]
        return frame

    def pool(self, scenario: str, rows: int, seed: int) -> pd.DataFrame:
        return self.predict(_classifier_rows(rows, seed, scenario))

    def realised(self, window: pd.DataFrame) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, f1_score

        return {
            "accuracy": float(accuracy_score(window["label"], window["prediction"])),
            "f1_macro": float(f1_score(window["label"], window["prediction"], average="macro", labels=list(CLASSES))),
        }


def _classifier_rows(n: int, seed: int, scenario: str) -> pd.DataFrame:
    """Generate labelled rows: a non-linear three-class rule over four numbers and a channel."""
    rng = np.random.default_rng(seed)
    m = n * 4 if scenario in ("covariate_shift", "segment_shift") else n
    x = rng.normal(size=(m, 4))
    channel = rng.choice(["web", "shop", "phone", "partner"], size=m, p=[0.4, 0.3, 0.2, 0.1])
    logits = np.column_stack(
        [
            1.4 * x[:, 0] + 0.8 * x[:, 1] * x[:, 2],
            -0.9 * x[:, 0] + 1.1 * x[:, 3] + 0.9 * (channel == "partner"),
            0.7 * x[:, 1] ** 2 - 0.6 + 0.5 * (channel == "phone"),
        ]
    )
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    label = np.array([CLASSES[k] for k in (p.cumsum(axis=1) > rng.random((m, 1))).argmax(axis=1)])
    if scenario == "concept_drift":  # the rule changes for the same inputs: b and c swap where x3 > 0.5
        swap = x[:, 3] > 0.5
        label = np.where(swap & (label == "b"), "c", np.where(swap & (label == "c"), "b", label))
    frame = pd.DataFrame({**{f"x{i}": x[:, i] for i in range(4)}, "channel": channel, "label": label})
    if scenario == "covariate_shift":  # rows resampled towards large x0
        return _resample(frame, np.exp(1.0 * x[:, 0]), n, seed)
    if scenario == "segment_shift":  # the partner channel six times as likely
        return _resample(frame, np.where(channel == "partner", 6.0, 1.0), n, seed)
    return frame


def _classifier_inputs(frame: pd.DataFrame) -> np.ndarray:
    channels = np.column_stack([(frame["channel"] == c).to_numpy(float) for c in ("shop", "phone", "partner")])
    return np.column_stack([frame[[f"x{i}" for i in range(4)]].to_numpy(), channels])


def _resample(frame: pd.DataFrame, weights: np.ndarray, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 7)
    chosen = rng.choice(len(frame), size=rows, replace=False, p=weights / weights.sum())
    return frame.iloc[chosen].reset_index(drop=True)


# -- NannyML in its own venv ---------------------------------------------------------------------------
def ensure_nannyml() -> Path:
    """Return the bench venv's python, creating the venv and installing NannyML on first use."""
    python = NANNYML_VENV / "bin" / "python"
    if python.is_file() and _run([str(python), "-c", "import nannyml"], check=False).returncode == 0:
        return python
    print(f"[bench] creating {NANNYML_VENV} with {' '.join(NANNYML_PACKAGES)} (about 3.5 minutes, once)", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", str(NANNYML_VENV)])
    _run([str(python), "-m", "pip", "install", "--quiet", *NANNYML_PACKAGES])
    return python


def _run(command: list[str], check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])}... failed: {result.stderr.strip()[-2000:]}")
    return result


def _nannyml_view(case: Case, frame: pd.DataFrame) -> pd.DataFrame:
    """Return the columns NannyML reads (the taxi's pickup time as hour and weekday, as ours uses it)."""
    if case.nannyml["method"] == "dle":
        pickup = pd.to_datetime(frame["lpep_pickup_datetime"])
        frame = frame.assign(hour=pickup.dt.hour + pickup.dt.minute / 60, weekday=pickup.dt.weekday)
        return frame[[*case.nannyml["features"], "prediction", "duration"]]
    return frame[[*case.nannyml["probabilities"].values(), "prediction", "label"]]


def run_nannyml(
    python: Path, case: Case, reference: pd.DataFrame, sets: list[tuple[int, list[pd.DataFrame]]], work: Path
) -> tuple[list, dict]:
    """Fit NannyML once on the reference; return per (n, windows) set {metric: [(value, se, low, high)]}, timing."""
    stem = work / case.description.name
    reference_path = Path(f"{stem}_reference.parquet")
    _nannyml_view(case, reference).to_parquet(reference_path)
    analyses = []
    for i, (n, windows) in enumerate(sets):
        path = f"{stem}_analysis_{i}.parquet"
        _nannyml_view(case, pd.concat(windows, ignore_index=True)).to_parquet(path)
        analyses.append({"path": path, "chunk_size": n, "out": f"{stem}_result_{i}.parquet"})
    spec = {**case.nannyml, "reference": str(reference_path), "analyses": analyses, "timing": f"{stem}_timing.json"}
    spec_path = Path(f"{stem}_spec.json")
    spec_path.write_text(json.dumps(spec))
    _run([str(python), str(NANNYML_SCRIPT), str(spec_path)])
    results = []
    for analysis in analyses:
        frame = pd.read_parquet(analysis["out"])
        columns = ["value", "sampling_error", "low", "high"]
        results.append(
            {m: list(part.sort_values("chunk")[columns].itertuples(index=False)) for m, part in frame.groupby("metric")}
        )
    return results, json.loads(Path(spec["timing"]).read_text())


# -- the measurement -----------------------------------------------------------------------------------
def _cost(estimator: PerformanceEstimator, window: pd.DataFrame, repeats: int = 200) -> tuple[float, float]:
    """Return (wall ms, CPU ms) of one warm estimate."""
    for _ in range(5):
        estimator.estimate(window)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        estimator.estimate(window)
    return (time.perf_counter() - wall) / repeats * 1e3, (time.process_time() - cpu) / repeats * 1e3


def measure(
    case: Case,
    sizes: list[int],
    windows: dict[int, int],
    references: int,
    nannyml: Path | None,
    work: Path,
    band_references: int = 0,
    band_windows: int = 0,
) -> tuple[list[dict], dict]:
    """Return one row per (scenario, n, metric) with our and NannyML's error and coverage, and the costs.

    Every window is judged by estimators fitted on each of `references` references (the model folder's
    own, then fresh clean rows of the same size): one reference's luck moves every estimate alike.
    Our band's coverage on clean data is also measured on `band_windows` further clean windows per size,
    each judged from `band_references` references (ours only: NannyML's fit is too slow for many). A
    band is meant to cover over references as well as windows: with a few references the share inside
    mostly measures those references' luck (one whose learned level is 1.5 standard errors off covers
    ~70% of 2,000-row windows, however right the band's width), and with 20 windows it moves by +-7
    points from window luck alone.
    """
    started = time.perf_counter()
    sets = []  # (scenario, windows, realised metrics per window)
    for s, scenario in enumerate(SCENARIOS):
        for n in sizes:
            pool = case.pool(scenario, n * windows[n], seed=1000 + 97 * s + n)
            chunks = [pool.iloc[i * n : (i + 1) * n].reset_index(drop=True) for i in range(windows[n])]
            sets.append((scenario, chunks, [case.realised(w) for w in chunks]))
    band_sets = []  # (n, clean windows, realised metrics) for the band's coverage
    for n in sizes if band_windows else ():
        pool = case.pool("clean", n * band_windows, seed=3000 + n)
        chunks = [pool.iloc[i * n : (i + 1) * n].reset_index(drop=True) for i in range(band_windows)]
        band_sets.append((n, chunks, [case.realised(w) for w in chunks]))
    inside: dict[tuple, list[bool]] = {}
    cost_window = case.pool("clean", 2000, seed=77)
    judged: dict[tuple, dict[str, list]] = {}
    costs: dict = {"model": case.name}
    for r in range(max(references, band_references)):
        reference = case.reference if r == 0 else case.pool("clean", len(case.reference), seed=600 + r)
        shared = r < references  # judged by both tools; the others by ours only, for the band's coverage
        fit_started = time.perf_counter()
        estimator = fit_estimator(case.description, reference, seed=0)
        if r == 0:
            wall, cpu = _cost(estimator, cost_window)
            costs.update(ours_fit_s=time.perf_counter() - fit_started, ours_wall_ms=wall, ours_cpu_ms=cpu)
            print(f"[bench] {case.name}: held-out on the reference {estimator.held_out}", flush=True)
        theirs_by_set: list[dict] = [{} for _ in sets]
        if nannyml and shared:
            analyses = [(len(c[0]), c) for _, c, _ in sets] + [(2000, [cost_window])]
            results, timing = run_nannyml(nannyml, case, reference, analyses, work)
            theirs_by_set = results[:-1]
            if r == 0:
                costs.update(
                    nannyml_fit_s=timing["fit_seconds"],
                    nannyml_ms_per_chunk=timing["analyses"][-1]["estimate_seconds"] * 1e3,
                )
        for n, chunks, realised in band_sets:
            for window, real in zip(chunks, realised, strict=True):
                estimate = estimator.estimate(window)
                for metric in case.metrics:
                    band = estimate.metrics[metric]
                    inside.setdefault((n, metric), []).append(band.low <= real[metric] <= band.high)
        if not shared:
            continue
        for (scenario, chunks, realised), theirs in zip(sets, theirs_by_set, strict=True):
            ours = [estimator.estimate(w) for w in chunks]
            for metric in case.metrics:
                entry = judged.setdefault((scenario, len(chunks[0]), metric), {"real": [], "ours": [], "nml": []})
                entry["real"].extend(x[metric] for x in realised)
                entry["ours"].extend(
                    (e.metrics[metric].value, e.metrics[metric].low, e.metrics[metric].high) for e in ours
                )
                if metric in theirs and len(theirs[metric]) == len(chunks):
                    entry["nml"].extend(tuple(t) for t in theirs[metric])
        total = max(references, band_references)
        print(f"[bench] {case.name}: reference {r + 1}/{total} done ({time.perf_counter() - started:.0f}s)")
    rows = [_summary(case, key, entry) for key, entry in judged.items()]
    for row in rows:
        flags = inside.get((row["n"], row["metric"])) if row["scenario"] == "clean" else None
        if flags:
            row.update(ours_coverage_many=float(np.mean(flags)), band_judgements=len(flags))
    return rows, costs


def _summary(case: Case, key: tuple, entry: dict[str, list]) -> dict:
    scenario, n, metric = key
    real, ours = np.array(entry["real"]), np.array(entry["ours"])
    row = {
        "model": case.name,
        "scenario": scenario,
        "n": n,
        "windows": len(real),
        "metric": metric,
        "realised": float(real.mean()),
        "ours_estimate": float(ours[:, 0].mean()),
        "ours_mae": float(np.abs(ours[:, 0] - real).mean()),
        "ours_coverage": float(np.mean((ours[:, 1] <= real) & (real <= ours[:, 2]))),
    }
    if len(entry["nml"]) == len(real):
        nml = np.array(entry["nml"], dtype=float)
        row.update(
            nannyml_estimate=float(nml[:, 0].mean()),
            nannyml_mae=float(np.abs(nml[:, 0] - real).mean()),
            nannyml_coverage=float(np.mean((nml[:, 2] <= real) & (real <= nml[:, 3]))),
            nannyml_coverage_90=float(np.mean(np.abs(nml[:, 0] - real) <= Z_90 * nml[:, 1])),
        )
    return row


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def table(rows: list[dict]) -> str:
    """Return the results as a markdown table."""
    lines = [
        "| model | scenario | n | metric | realised | ours: est. | ours: error | ours: 90% band | "
        "ours: 90% band, many windows x references | "
        "NannyML: est. | NannyML: error | NannyML: ±3σ band | NannyML: ±1.645σ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        nml = "nannyml_mae" in r
        lines.append(
            f"| {r['model']} | {r['scenario']} | {r['n']} | {r['metric']} | {r['realised']:.3f} | "
            f"{r['ours_estimate']:.3f} | {r['ours_mae']:.3f} | {_pct(r['ours_coverage'])} | "
            + (
                f"{_pct(r['ours_coverage_many'])} ({r['band_judgements']:,}) | "
                if "ours_coverage_many" in r
                else "- | "
            )
            + (
                f"{r['nannyml_estimate']:.3f} | {r['nannyml_mae']:.3f} | {_pct(r['nannyml_coverage'])} | "
                f"{_pct(r['nannyml_coverage_90'])} |"
                if nml
                else "- | - | - | - |"
            )
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Parse the options, measure both models, print the table and write it under artifacts/."""
    parser = argparse.ArgumentParser(prog="python -m bench performance_estimation", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="20 windows at 200 and 500 rows, 8 at 2,000, one reference"
    )
    parser.add_argument(
        "--windows", type=int, default=None, help="windows per scenario and size (default 60; 2,000 rows: 24)"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 500, 2000], help="window sizes (rows)")
    parser.add_argument(
        "--references", type=int, default=None, help="references each window is judged from (default 3; quick: 1)"
    )
    parser.add_argument(
        "--band-references",
        type=int,
        default=None,
        help="references our band's clean coverage is judged from (ours only; default 20, quick: 10)",
    )
    parser.add_argument(
        "--band-windows",
        type=int,
        default=None,
        help="clean windows per size for our band's coverage (ours only; default 200, quick: 100)",
    )
    parser.add_argument("--no-nannyml", action="store_true", help="skip the NannyML comparison (no bench venv)")
    parser.add_argument("--models", nargs="+", choices=("taxi", "classifier"), default=["taxi", "classifier"])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "artifacts" / "performance_estimation")
    args = parser.parse_args(argv)
    default = 20 if args.quick else 60
    args.references = args.references or (1 if args.quick else 3)
    band_references = args.band_references or (10 if args.quick else 20)
    band_windows = args.band_windows or (100 if args.quick else 200)
    windows = {n: args.windows or (8 if args.quick else 24) if n >= 2000 else default for n in args.sizes}
    nannyml = None if args.no_nannyml else ensure_nannyml()
    cases = [TaxiCase() if name == "taxi" else ClassifierCase() for name in args.models]
    rows, costs = [], []
    with tempfile.TemporaryDirectory(prefix="bench-estimation-") as tmp:
        for case in cases:
            case_rows, case_costs = measure(
                case, args.sizes, windows, args.references, nannyml, Path(tmp), band_references, band_windows
            )
            rows.extend(case_rows)
            costs.append(case_costs)
    load = os.getloadavg()
    loads = " ".join(f"{x:.1f}" for x in load)
    header = (
        f"level {LEVEL:.0%}; windows per size {windows} x {args.references} reference(s)"
        f"; our clean band also over {band_windows} windows x {band_references} references;"
        f" load average {loads} (1, 5, 15 min; 2 cores)"
    )
    cost_lines = [
        f"- {c['model']}: ours {c['ours_cpu_ms']:.2f} ms CPU ({c['ours_wall_ms']:.2f} ms wall)"
        f" per estimate of 2,000 rows, fit {c['ours_fit_s']:.1f} s"
        + (
            f"; NannyML {c['nannyml_ms_per_chunk']:.0f} ms wall per estimate of one 2,000-row chunk,"
            f" fit {c['nannyml_fit_s']:.1f} s"
            if "nannyml_ms_per_chunk" in c
            else ""
        )
        for c in costs
    ]
    report = "\n".join([header, "", table(rows), "", *cost_lines])
    print("\n" + report)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.md").write_text(report + "\n")
    (args.out_dir / "results.json").write_text(json.dumps({"rows": rows, "costs": costs, "load": load}, indent=1))
    print(f"\nwrote {args.out_dir / 'results.md'}")
    return 0
