"""Scoring against a real Prometheus scraping a tiny exporter we control: fired, delay, misses, false alarms."""

from __future__ import annotations

import textwrap
import time
from array import array

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from local_stack.processes import free_port, wait_until
from usage_simulation.runner import PhaseCounts, PhaseWindow, RunResult
from usage_simulation.scenario import Scenario
from usage_simulation.scoring import PrometheusClient, active_alerts, format_scorecard, score, wait_for_signals

pytestmark = pytest.mark.integration

RULES = textwrap.dedent(
    """
    groups:
      - name: test
        interval: 1s
        rules:
          - alert: DataDriftDetected
            expr: evidently_dataset_drift == 1
          - alert: SlowDriftAlert
            expr: evidently_dataset_drift == 1
            for: 10m
    """
)

SCENARIO = Scenario.parse(
    {
        "name": "flip",
        "phases": [
            {"name": "clean"},
            {
                "name": "drift",
                "faults": [{"op": "scale", "column": "x", "factor": 2.0}],
                "expected_signals": [
                    {"name": "dataset drift", "promql": "max(evidently_dataset_drift) == 1"},
                    "DataDriftDetected",
                    {"name": "never", "promql": "evidently_model_quality > 100"},
                    "SlowDriftAlert",
                ],
            },
        ],
        "watch_signals": ["max(evidently_dataset_drift) == 1", {"name": "noise", "promql": "test_noise == 1"}],
    }
)


def test_scorer_reports_fired_with_delay_a_miss_and_a_false_alarm(prometheus_factory) -> None:
    registry = CollectorRegistry()
    drift = Gauge("evidently_dataset_drift", "1 when drifted", registry=registry)
    noise = Gauge("test_noise", "a spurious signal", registry=registry)
    exporter_port = free_port()
    server, thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    try:
        config = textwrap.dedent(
            f"""
            global: {{scrape_interval: 1s, evaluation_interval: 1s}}
            rule_files: [rules.yml]
            scrape_configs:
              - job_name: exporter
                static_configs: [{{targets: ["127.0.0.1:{exporter_port}"]}}]
            """
        )
        _, url = prometheus_factory(config, rule_files={"rules.yml": RULES})
        client = PrometheusClient(url)
        wait_until(lambda: client.query("test_noise == 0"), timeout=30, what="first scrape")

        run = RunResult(scenario="flip", started_at=time.time())
        run.phases.append(PhaseWindow(0, "clean", True, False, run.started_at, run.started_at))
        noise.set(1)  # a false alarm during the clean phase
        wait_until(lambda: client.query("test_noise == 1"), timeout=15, what="noise seen")
        noise.set(0)
        wait_until(lambda: client.query("test_noise == 0"), timeout=15, what="noise gone")
        onset = time.time()
        run.phases[0].end = onset
        run.phases.append(PhaseWindow(1, "drift", False, False, onset, onset))
        wait_until(lambda: time.time() > onset + 2, timeout=5, what="two seconds of drift phase before detection")
        flipped = time.time()
        drift.set(1)
        run.ended_at = run.phases[1].end = time.time()
        # Pretend a steady 10 rows/s over the whole run, continuing while the signals settle.
        run.send_times = array("d", [run.started_at + i / 10 for i in range(int((onset + 30 - run.started_at) * 10))])
        run.counts = {0: PhaseCounts(sent=1), 1: PhaseCounts(sent=1)}

        wait_for_signals(client, SCENARIO, run, settle_seconds=4)
        card = score(client, SCENARIO, run)
    finally:
        server.shutdown()
        thread.join()

    by_name = {s.signal: s for s in card.signals}
    fired = by_name["dataset drift"]
    assert fired.fired and fired.phase == "drift"
    # Seen one scrape after the flip at the latest (plus the 1 s query step).
    assert flipped - onset - 1.0 <= fired.delay_seconds <= flipped - onset + 4
    assert fired.delay_rows == pytest.approx(fired.delay_seconds * 10, abs=11)
    assert by_name["DataDriftDetected"].fired
    assert by_name["DataDriftDetected"].delay_seconds >= fired.delay_seconds
    assert not by_name["never"].fired and by_name["never"].delay_seconds is None
    assert not by_name["never"].out_of_reach  # a PromQL signal has no `for:`: a miss is a miss
    # Seen: the compose simulator's 300 s run scored DataDriftDetected (production `for: 10m`) as a miss.
    slow = by_name["SlowDriftAlert"]
    assert not slow.fired and slow.out_of_reach and slow.alert_for_seconds == 600
    assert not card.detected_all
    assert [(f.phase, f.signal) for f in card.false_alarms] == [("clean", "noise")]
    assert {"alertname": "DataDriftDetected", "state": "firing", "labels": {}} in card.active_alerts

    table = format_scorecard(card)
    assert "detected 2/3 expected signals" in table  # the out-of-reach alert is not counted as a miss
    assert "out of reach: SlowDriftAlert needs its condition for `for: 10m` after the onset" in table
    assert any(
        line.split()[:3] == ["drift", "SlowDriftAlert", f"+{slow.onset_offset_seconds:.0f}s"] and " n/a " in line
        for line in table.splitlines()
    )
    assert "FALSE ALARMS in clean phases: 1" in table and "clean: noise" in table
    data = card.to_dict()
    assert data["detected_all"] is False and data["false_alarm_count"] == 1


def test_a_clean_phase_is_judged_only_once_a_signal_can_look_back_inside_the_run() -> None:
    from usage_simulation.scoring import lookback_seconds

    assert lookback_seconds("sum(increase(prediction_predictions_total[20s])) == 0") == 20
    assert lookback_seconds("max_over_time(a[30s]) > on() b[5m]") == 300
    assert lookback_seconds("evidently_dataset_drift == 1") == 0


def test_alerts_listed_after_a_run_are_the_simulated_models_and_the_stacks() -> None:
    """Seen: in a stack serving two models, a run's "alerts active now" listed the other model's alerts too, with the
    model label cut: "DataDriftDetected (firing), DataDriftDetected (firing)"."""
    alerts = [
        {"labels": {"alertname": "DataDriftDetected", "model": "grader", "severity": "warning"}, "state": "firing"},
        {"labels": {"alertname": "DataDriftDetected", "model": "weather", "severity": "warning"}, "state": "firing"},
        {"labels": {"alertname": "HighInputErrorRate", "severity": "warning"}, "state": "pending"},
        {"labels": {"alertname": "Watchdog"}, "state": "firing"},
    ]
    listed = [(a["alertname"], a["state"]) for a in active_alerts(alerts, "weather")]
    assert listed == [("DataDriftDetected", "firing"), ("HighInputErrorRate", "pending")]
    assert len(active_alerts(alerts)) == 3
