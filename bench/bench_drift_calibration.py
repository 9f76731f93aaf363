"""False alarms and detection of drift verdicts by sample size: calibrated vs the pinned floors vs Evidently's defaults.

`python -m bench drift_calibration [--reference-rows N] [--samples N] [--scenario-samples N] [--sizes ...]`

The reference is generated rows with the real model's predictions. For each size n, `--samples`
clean samples are drawn from a pool of rows the reference has never seen (another seed), and
`--scenario-samples` from pools of each built-in scenario's drifted rows (the taxi scenarios'
faults as the simulator applies them: covariate_shift keeps only trips over 5 miles, new_zones
moves half the pickups to unseen zones, demo scales distances x1.8 with 40% unseen pickups).
Three rules judge every sample: (c) the calibrated thresholds (monitoring_core/calibration.py, the
shipped settings; no verdict below the derived minimum; the dataset verdict is Holm over the
features), (a) the pinned floors alone at every size (the description's tests: normed Wasserstein
0.1, total variation 0.1; verdicts from 50 rows; dataset = half the features) and (b) Evidently's
own default stat test and threshold for this reference size, dataset share 0.5.
Printed: false-alarm counts per column and for the dataset, with the binomial bound of the
configured rate, and detection rates on the scenarios' shifted feature. Also the cost of preparing
the calibration (cold, for the sizes used) and of one calibrated evaluation (warm).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats import binom

from monitoring_core.calibration import CalibrationSettings
from monitoring_core.drift import DriftEvaluator
from ride_duration.schema import DESCRIPTION, PREDICTION, Kind, column_kind, drift_tests
from ride_duration.synthetic import NO_DRIFT, DriftParams, generate_trips

SIZES = (50, 100, 200, 250, 500, 1000, 5000)
# The built-in scenarios with a data shift, and the feature (or dataset) that must flag it.
SCENARIOS: dict[str, tuple[str, str]] = {
    "covariate_shift": ("covariate_shift", "trip_distance"),
    "new_zones": ("new_zones", "PULocationID"),
    "demo": ("demo", "dataset"),
}
# The blatant shifts, for the 250-row claim.
BLATANT: dict[str, tuple[DriftParams, str]] = {
    "distance x2.5": (DriftParams(distance_scale=2.5), "trip_distance"),
}


def _model() -> Callable[[pd.DataFrame], np.ndarray]:
    from ride_duration.features import frame_features
    from ride_duration.train import fit

    model = fit(generate_trips(20_000, seed=1))
    return lambda frame: model.predict(frame_features(frame))


def _pool(rows: int, seed: int, predict: Callable, drift: DriftParams = NO_DRIFT) -> pd.DataFrame:
    frame = generate_trips(rows, seed=seed, drift=drift)
    frame[PREDICTION] = predict(frame)
    return frame[list(drift_tests())]


def _scenario_pool(name: str, rows: int, seed: int, predict: Callable) -> pd.DataFrame:
    """Return clean generated rows with the taxi scenario's faults applied (as the simulator does), predicted."""
    from monitoring_core.paths import DEFAULT_MODEL_DIR
    from ride_duration.schema import DESCRIPTION
    from usage_simulation.faults import Reference, apply_faults
    from usage_simulation.scenario import load_scenario

    clean = generate_trips(rows, seed=seed)
    faults = next(p.faults for p in reversed(load_scenario(name, DEFAULT_MODEL_DIR).phases) if p.faults)
    frame, _ = apply_faults(clean, faults, Reference.of(DESCRIPTION, clean), np.random.default_rng(seed))
    frame[PREDICTION] = predict(frame)
    return frame[list(drift_tests())]


class _EvidentlyDefaults:
    """Evidently's own choice: the default stat test and threshold for this reference size, per column."""

    def __init__(self, reference: pd.DataFrame) -> None:
        from evidently.legacy.calculations.stattests import get_stattest
        from evidently.legacy.core import ColumnType

        self.reference = reference
        self.types = {
            c: ColumnType.Categorical if column_kind(c) is Kind.CATEGORICAL else ColumnType.Numerical
            for c in drift_tests()
        }
        self.tests = {
            c: get_stattest(reference[c].dropna(), reference[c].dropna(), t, None) for c, t in self.types.items()
        }

    def describe(self) -> str:
        return ", ".join(f"{c}: {t.name} {t.default_threshold}" for c, t in self.tests.items())

    def verdicts(self, current: pd.DataFrame) -> dict[str, bool]:
        out = {}
        for column, test in self.tests.items():
            cur = current[column].dropna()
            out[column] = bool(
                test(self.reference[column].dropna(), cur, self.types[column], test.default_threshold).drifted
            )
        features = [c for c in out if c != PREDICTION]
        out["dataset"] = sum(out[c] for c in features) / len(features) >= 0.5
        return out


def _calibrated(evaluator: DriftEvaluator) -> Callable[[pd.DataFrame], dict[str, bool] | None]:
    def judge(current: pd.DataFrame) -> dict[str, bool] | None:
        result = evaluator.evaluate(current)
        if not result.enough_data:
            return None  # "not enough data": no verdict
        return {**{c: r.detected for c, r in result.columns.items()}, "dataset": result.dataset_drift}

    return judge


def _fixed(evaluator: DriftEvaluator) -> Callable[[pd.DataFrame], dict[str, bool] | None]:
    def judge(current: pd.DataFrame) -> dict[str, bool] | None:
        if len(current) < 50:
            return None
        result = evaluator.evaluate(current)
        return {**{c: r.detected for c, r in result.columns.items()}, "dataset": result.dataset_drift}

    return judge


def _rates(judge: Callable, pool: pd.DataFrame, n: int, samples: int, seed: int) -> dict[str, int] | None:
    """Return flag counts per column and for the dataset over `samples` n-row draws from `pool` (None: no verdict)."""
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    for _ in range(samples):
        sample = pool.iloc[rng.integers(0, len(pool), size=n)].reset_index(drop=True)
        verdicts = judge(sample)
        if verdicts is None:
            return None
        for key, flagged in verdicts.items():
            counts[key] = counts.get(key, 0) + int(flagged)
    return counts


def main(argv: list[str]) -> int:
    """Print the side-by-side table; fail when a calibrated false-alarm count exceeds its binomial bound."""
    parser = argparse.ArgumentParser(prog="python -m bench drift_calibration", description=__doc__.splitlines()[0])
    parser.add_argument("--reference-rows", type=int, default=5_000, help="rows in the reference")
    parser.add_argument("--samples", type=int, default=300, help="clean samples per size")
    parser.add_argument("--scenario-samples", type=int, default=100, help="drifted samples per size and scenario")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="sample sizes n")
    parser.add_argument("--seed", type=int, default=3, help="seed of the pools and draws")
    args = parser.parse_args(argv)

    predict = _model()
    reference = _pool(args.reference_rows, 11, predict)
    clean = _pool(100_000, 1000 + args.seed, predict)  # rows the reference never saw
    shifted = {name: _scenario_pool(s, 30_000, 2000 + args.seed, predict) for name, (s, _) in SCENARIOS.items()}
    shifted.update({name: _pool(30_000, 3000 + args.seed, predict, p) for name, (p, _) in BLATANT.items()})
    targets = {**{k: v for k, (_, v) in SCENARIOS.items()}, **{k: v for k, (_, v) in BLATANT.items()}}

    settings = CalibrationSettings()
    started = time.perf_counter()
    calibrated = DriftEvaluator(DESCRIPTION, reference, calibration=settings)
    for n in args.sizes:
        calibrated.evaluate(clean.head(n))  # simulates the null of each size bucket used, and the minimums
    prepare = time.perf_counter() - started
    window = clean.head(1000)
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        calibrated.evaluate(window)
        times.append(time.perf_counter() - t0)
    fixed = DriftEvaluator(DESCRIPTION, reference)
    evidently = _EvidentlyDefaults(reference)
    rules = {
        "calibrated": _calibrated(calibrated),
        "pinned floors": _fixed(fixed),
        "Evidently default": evidently.verdicts,
    }

    rate, dataset_rate = calibrated.false_alarm_rate or 0.0, settings.dataset_false_alarm_rate
    columns = list(drift_tests())
    print(f"reference: {len(reference)} rows; clean pool 100,000 unseen rows; {args.samples} clean samples per n")
    print(f"calibrated: per-feature rate {rate:.2%}, dataset rate {dataset_rate:.2%} (Holm over the features)")
    print(
        f"  minimum rows {calibrated.min_rows} (per column: "
        + ", ".join(f"{c} {calibrated.min_rows_of(c)}" for c in columns)
        + ")"
    )
    print(f"Evidently defaults for this reference: {evidently.describe()}")
    print(f"prepare (cold, sizes {args.sizes}): {prepare:.2f} s; calibrated evaluate of 1,000 rows (warm): "
          f"{statistics.median(times) * 1000:.2f} ms")  # fmt: skip
    bound = int(binom.ppf(0.99, args.samples, rate))
    dataset_bound = int(binom.ppf(0.99, args.samples, dataset_rate))
    print(f"binomial 99% bound for {args.samples} samples: <= {bound} per column, <= {dataset_bound} dataset\n")

    header = ["n", "rule", *[f"FA {c}" for c in columns], "FA dataset", *[f"DET {k} ({v})" for k, v in targets.items()]]
    print(" | ".join(header))
    print("|".join("---" for _ in header))
    ok = True
    for n in args.sizes:
        for name, judge in rules.items():
            counts = _rates(judge, clean, n, args.samples, seed=n)
            if counts is None:
                print(f"{n} | {name} | " + " | ".join(["not enough data"] * (len(header) - 2)))
                continue
            cells = [f"{counts[c]}/{args.samples}" for c in columns] + [f"{counts['dataset']}/{args.samples}"]
            if name == "calibrated":
                ok &= all(counts[c] <= bound for c in columns) and counts["dataset"] <= dataset_bound
            for scenario, target in targets.items():
                det = _rates(judge, shifted[scenario], n, args.scenario_samples, seed=n + 1)
                cells.append("n/a" if det is None else f"{det[target] / args.scenario_samples:.0%}")
            print(f"{n} | {name} | " + " | ".join(cells))
    print(f"\ncalibrated false alarms within the binomial bound at every n with a verdict: {ok}")
    return 0 if ok else 1
