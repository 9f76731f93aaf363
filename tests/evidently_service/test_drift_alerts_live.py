"""The drift alerts fire in the live stack on the shifts they exist for (issue #24), with the production rules.

One stack for the module (nx-27017, the metrics service, the prediction service, a real Prometheus evaluating
prometheus/rules with `for:` shortened to 1 s as the other live tests do). The metrics service monitors the
session's taxi model twice, under two names with two window sizes: `ride_duration` over 500 rows and a copy
over 1,000 rows. Rows go straight to the metrics service's ingestion endpoint (`/iterate/<model>`), built from
the model's reference with the model's own predictions, and every shift is chosen through the description
(its first numerical feature, its first categorical one, its segment rule), not by feature name:

- the first numerical feature x1.5 over a 500-row window: DataDriftDetected;
- the first numerical feature x1.5 in one segment only, over 1,000 rows: SegmentDriftDetected names that
  segment and feature;
- the first numerical feature shuffled across 1,000 rows (every marginal kept, its links to the others gone):
  MultivariateDriftDetected;
- 40% of rows moved among known values of the first categorical feature, over 1,000 rows: flagged, DataDriftDetected.

Each phase replaces a model's window whole; before each of the later phases a clean window turns that model's
drift alerts off, so every alert that fires is the phase's own.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml

from local_stack.components import prometheus_query
from local_stack.demo import DEMO_EVIDENTLY_CONFIG, MODEL_NAME, Stack, start_stack
from local_stack.processes import wait_until
from monitoring_core.description import ModelDescription
from monitoring_core.model_folder import load_model_folder
from monitoring_core.records import forwarded_row
from prediction_service.model_loader import ServedModel, load_served_model
from usage_simulation.rows import to_payloads

pytestmark = pytest.mark.integration

WIDE = f"{MODEL_NAME}_wide"  # the same model monitored over a 1,000-row window
WINDOWS = {MODEL_NAME: 500, WIDE: 1_000}
TIMEOUT = 90  # seconds for a verdict to reach an alert on a loaded machine (1 s evaluations and scrapes)


@dataclass
class Live:
    stack: Stack
    description: ModelDescription
    reference: pd.DataFrame
    model: ServedModel

    def send(self, model: str, frame: pd.DataFrame) -> None:
        """Post `frame`'s rows, with the model's predictions, to the metrics service as served rows."""
        bodies = [body for body, _label in to_payloads(self.description, frame)]
        answers = self.model.predict_rows(bodies)
        now = datetime.now(UTC)
        rows = [
            forwarded_row(uuid.uuid4().hex, now, "live-test", body, {self.description.prediction_column: answer})
            for body, answer in zip(bodies, answers.predictions, strict=True)
        ]
        url = f"{self.stack.urls['evidently_service']}/iterate/{model}"
        for start in range(0, len(rows), 500):
            response = requests.post(
                url, json=rows[start : start + 500], headers={"Authorization": f"Bearer {self.stack.token}"}, timeout=30
            )
            assert response.status_code == 200 and response.json()["rejected"] == 0, response.text

    def refill(self, model: str, seed: int) -> None:
        """Replace the model's window with clean rows and wait until none of its drift alerts is firing."""
        self.send(model, self.sample(WINDOWS[model], seed))
        wait_until(
            lambda: not self.query(f'ALERTS{{alertname=~".*Drift.*", alertstate="firing", model="{model}"}}'),
            TIMEOUT,
            f"{model}'s drift alerts off",
        )

    def sample(self, rows: int, seed: int) -> pd.DataFrame:
        picked = np.random.default_rng(seed).choice(len(self.reference), rows, replace=False)
        return self.reference.iloc[picked].reset_index(drop=True)

    def query(self, promql: str) -> list[dict]:
        return prometheus_query(self.stack.urls["prometheus"], promql)

    def firing(self, alert: str, model: str, **labels: str) -> list[dict]:
        extra = "".join(f', {k}="{v}"' for k, v in labels.items())
        return self.query(f'ALERTS{{alertname="{alert}", alertstate="firing", model="{model}"{extra}}}')


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path) -> Iterator[Live]:
    """Both services and Prometheus over a models folder holding the taxi model under two names."""
    workdir = tmp_path_factory.mktemp("drift-alerts-live")
    models = workdir / "models"
    shutil.copytree(artifacts_dir, models / MODEL_NAME)
    shutil.copytree(artifacts_dir, models / WIDE)
    description = yaml.safe_load((models / WIDE / "model.yaml").read_text())
    (models / WIDE / "model.yaml").write_text(yaml.safe_dump({**description, "name": WIDE}))
    config = yaml.safe_load(DEMO_EVIDENTLY_CONFIG.read_text())
    config["defaults"]["evaluation_period_seconds"] = 1
    # Fewer null draws than the default 10,000: the first evaluation at each window size simulates the nulls
    # (prepare does it ahead in production); 4,000 still resolve p-values down to the segments' Holm step.
    config["defaults"]["calibration"] = {"draws": 4_000}
    config["models"] = {name: {"window_size": size} for name, size in WINDOWS.items()}
    config_path = workdir / "evidently.yaml"
    config_path.write_text(yaml.safe_dump(config))
    stack = start_stack(
        workdir, models, evidently_config=config_path, interval="1s", alert_for="1s", default_ports=False
    )
    try:
        folder = load_model_folder(models / MODEL_NAME)
        reference = pd.read_parquet(folder.reference_path)
        yield Live(stack, folder.description, reference, load_served_model(folder))
    finally:
        stack.stop()


def scaled(frame: pd.DataFrame, column: str, factor: float, rows: pd.Series | None = None) -> pd.DataFrame:
    out = frame.copy()
    inside = rows if rows is not None else pd.Series(True, index=out.index)
    out.loc[inside, column] = out.loc[inside, column] * factor
    return out


def mixed(frame: pd.DataFrame, column: str, share: float, seed: int) -> pd.DataFrame:
    """Move `share` of the rows, taken outside the five busiest known values of `column`, onto those values."""
    out = frame.copy()
    busiest = list(out[column].value_counts().index[:5])
    rng = np.random.default_rng(seed)
    outside = np.flatnonzero(~out[column].isin(busiest).to_numpy())
    moved = rng.choice(outside, round(share * len(out)), replace=False)
    out.loc[moved, column] = np.asarray(busiest)[rng.integers(0, len(busiest), len(moved))]
    return out


def shuffled(frame: pd.DataFrame, column: str, seed: int) -> pd.DataFrame:
    out = frame.copy()
    out[column] = np.random.default_rng(seed).permutation(out[column].to_numpy())
    return out


def smallest_judged_segment(live: Live, model: str, window: int) -> str:
    """Return the smallest segment whose expected share of `window` rows clears its derived minimum comfortably.

    The minimums are exported once the window holds rows of the segment (a clean window goes first).
    """
    minimums = wait_until(
        lambda: live.query(f'evidently_segment_drift_min_rows{{model="{model}"}}'), TIMEOUT, "segment minimum rows"
    )
    shares = live.description.segment_of(live.reference).value_counts(normalize=True)
    judged = [
        (shares[m["metric"]["segment"]], m["metric"]["segment"])
        for m in minimums
        if m["metric"]["segment"] in shares and shares[m["metric"]["segment"]] * window >= 1.3 * float(m["value"][1])
    ]
    assert judged, minimums
    return min(judged)[1]


def test_single_feature_segment_mix_and_joint_shifts_fire_their_alerts(live: Live) -> None:
    description = live.description
    numerical = description.numerical_features[0]
    categorical = next(c for c in description.categorical_features if c != numerical)
    # Clean windows first: the first evaluation at each size simulates its nulls; later ones reuse them.
    for model, rows in WINDOWS.items():
        live.send(model, live.sample(rows, seed=0))
    segment = smallest_judged_segment(live, WIDE, WINDOWS[WIDE])
    wait_until(lambda: live.query(f'evidently_dataset_drift{{model="{MODEL_NAME}"}}'), TIMEOUT, "first verdict")

    # Phase 1: the first numerical feature x1.5 over 500 rows; x1.5 in one segment only over 1,000 rows.
    wide = live.sample(WINDOWS[WIDE], seed=2)
    live.send(MODEL_NAME, scaled(live.sample(WINDOWS[MODEL_NAME], seed=1), numerical, 1.5))
    live.send(WIDE, scaled(wide, numerical, 1.5, description.segment_of(wide) == segment))
    wait_until(lambda: live.firing("DataDriftDetected", MODEL_NAME), TIMEOUT, "DataDriftDetected (x1.5, 500 rows)")
    flagged = live.query(f'evidently_dataset_drift_flagged{{model="{MODEL_NAME}"}} == 1')
    assert {f["metric"]["feature"] for f in flagged} == {numerical}, flagged
    wait_until(
        lambda: live.firing("SegmentDriftDetected", WIDE, segment=segment, feature=numerical),
        TIMEOUT,
        f"SegmentDriftDetected ({numerical} x1.5 in {segment} only)",
    )
    # A scale change keeps every correlation: not a joint shift.
    assert not live.firing("MultivariateDriftDetected", MODEL_NAME)

    # Phase 2 (after a clean window): the first numerical feature shuffled across 1,000 rows.
    live.refill(WIDE, seed=5)
    live.send(WIDE, shuffled(live.sample(WINDOWS[WIDE], seed=3), numerical, seed=3))
    wait_until(lambda: live.firing("MultivariateDriftDetected", WIDE), TIMEOUT, "MultivariateDriftDetected (joint)")

    # Phase 3 (after a clean window): 40% of rows moved among known values of the first categorical feature.
    live.refill(WIDE, seed=6)
    live.send(WIDE, mixed(live.sample(WINDOWS[WIDE], seed=4), categorical, 0.4, seed=4))
    wait_until(
        lambda: live.query(f'evidently_dataset_drift_flagged{{model="{WIDE}", feature="{categorical}"}} == 1'),
        TIMEOUT,
        f"{categorical} flagged (40% of rows moved among known values, 1,000 rows)",
    )
    wait_until(lambda: live.firing("DataDriftDetected", WIDE), TIMEOUT, "DataDriftDetected (mix, 1,000 rows)")
