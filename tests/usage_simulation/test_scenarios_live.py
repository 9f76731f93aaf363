"""Every taxi scenario, briefly, against the real stack: the injected fault shows, the clean phase stays quiet.

One stack for the module (nx-27017, metrics service, prediction service, Prometheus with the
project's rules, 1 s scrapes and alert `for:` shortened to 1 s). After a scenario that left drifted
rows in the metrics service's window, reference-like traffic refills the window before the next one,
so every scenario starts from a clean window, as on a quiet production day.

The covariate-shift scenario runs without any label: its expected signals include
PerformanceEstimateDegraded, so the quality estimated from the inputs passes the description's bound
and the alert fires before a single label of the phase exists (the model folder is prepared with its
performance estimator first, as `python -m monitoring_core.prepare` does). The concept-drift scenario
expects PerformanceEstimateGap: its realised quality leaves the band estimated from the same rows.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from live_checks import assert_estimate_fired_without_labels, refill_until_quiet, wait_for_first_verdict

from local_stack.demo import DEMO_EVIDENTLY_CONFIG, Stack, start_stack
from monitoring_core.estimation import prepare_estimator
from monitoring_core.model_folder import load_model_folder
from monitoring_core.paths import MODELS_DIR, REFERENCE_FILE
from usage_simulation.cli import parser, run_and_score
from usage_simulation.rows import RowSource
from usage_simulation.scenario import load_scenario
from usage_simulation.scoring import format_scorecard

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("live_traffic_turn")]

TAXI_DIR = MODELS_DIR / "ride_duration"

# Baseline first and schema_change last: rejected inputs stay in the 5-minute rates that
# HighInputErrorRate reads, and baseline watches that alert.
ORDER = [
    "baseline",
    "covariate_shift",
    "new_zones",
    "missing_values",
    "concept_drift",
    "segment_degradation",
    "outage",
    "schema_change",
]
# Scenarios that leave drifted rows (or labels) in the window.
POLLUTING = {"covariate_shift", "new_zones", "missing_values", "concept_drift", "segment_degradation"}
RPS = 150
# Half clean, half faulty: 5 s at 150 rows/s passes the window's 700 minimum rows and replaces most of
# its 800 rows; the outage needs 20 s without predictions before its signal can hold.
# covariate and segment: 8 s of faulty rows, margin for a slow machine (the segment's labelled rows must outweigh
# its clean ones in the window)
DURATION = {"outage": 20, "covariate_shift": 16, "segment_degradation": 16}
DRIFT_ALERTS = 'ALERTS{alertname=~"DataDriftDetected|FeatureDriftDetected|ModelQualityDegraded"}'
# Scenarios whose faults need no label to show: they run without any, to prove it.
WITHOUT_LABELS = {"covariate_shift"}
ESTIMATE_FIRING = 'ALERTS{alertname="PerformanceEstimateDegraded",alertstate="firing",metric="rmse"}'


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path) -> Iterator[Stack]:
    """The whole stack on free ports, evaluated every second."""
    workdir = tmp_path_factory.mktemp("live")
    config = yaml.safe_load(DEMO_EVIDENTLY_CONFIG.read_text())
    config["defaults"]["evaluation_period_seconds"] = 1
    config_path = workdir / "evidently.yaml"
    config_path.write_text(yaml.safe_dump(config))
    # The session's model folder, copied so that its estimator stays this module's, then prepared.
    folder = workdir / "ride_duration"
    shutil.copytree(artifacts_dir, folder, ignore=shutil.ignore_patterns("prepared"))
    prepare_estimator(load_model_folder(folder))
    stack = start_stack(
        workdir, folder, evidently_config=config_path, interval="1s", alert_for="1s", default_ports=False
    )
    stack.env["last_scenario"] = ""
    yield stack
    stack.stop()


def refill_window_with_clean_rides(stack: Stack, reference: Path, watched: list[str]) -> None:
    """Replace the window with reference-like rows until the next scenario's signals are off."""

    def source(seed: int) -> RowSource:
        return RowSource.from_model_dir(TAXI_DIR, reference, seed=seed)

    refill_until_quiet(stack, RPS, load_scenario("baseline", TAXI_DIR), source, [DRIFT_ALERTS, *watched])


@pytest.mark.parametrize("name", ORDER)
def test_scenario_fault_is_detected_and_clean_phase_stays_quiet(
    live_stack: Stack, artifacts_dir: Path, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = load_scenario(name, TAXI_DIR)
    # The rows come from the reference the stack monitors against (the session's small trained model).
    reference = artifacts_dir / REFERENCE_FILE
    # outage and schema_change watch the prediction service only: a dirty window cannot mislead them.
    if live_stack.env["last_scenario"] in POLLUTING and name not in ("outage", "schema_change"):
        refill_window_with_clean_rides(live_stack, reference, [s.promql for s in scenario.signals_to_watch()])
    if name != "baseline":
        wait_for_first_verdict(live_stack.urls["prometheus"], "ride_duration")
    live_stack.env["last_scenario"] = name
    monkeypatch.setenv("MONITORING_TOKEN", live_stack.token)
    args = parser().parse_args([
        "--model-dir", str(TAXI_DIR), "--data", str(reference), "--scenario", name,
        "--url", live_stack.urls["prediction_service"], "--rps", str(RPS),
        "--duration", str(DURATION.get(name, 10)), "--feedback-delay", "0.5",
        "--feedback-share", "0" if name in WITHOUT_LABELS else "0.9",
        "--prometheus-url", live_stack.urls["prometheus"], "--settle", "150", "--no-progress",
        "--json", str(tmp_path / "result.json"),
    ])  # fmt: skip
    run, card = run_and_score(args)
    table = format_scorecard(card)
    assert run.totals().errors == 0 and run.feedback.failed == 0, table
    assert len(card.signals) == sum(len(p.expected_signals) for p in scenario.phases)
    assert card.detected_all, table
    assert not card.false_alarms, table
    if name in WITHOUT_LABELS:
        assert_estimate_fired_without_labels(run, table, live_stack.urls["prometheus"], ESTIMATE_FIRING)
    if name == "schema_change":
        assert run.counts[1].rejected == run.counts[1].sent > 0 and run.counts[0].rejected == 0
