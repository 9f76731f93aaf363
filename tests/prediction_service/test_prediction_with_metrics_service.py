"""The contract with the real metrics service: forwarded rows and labels are accepted and joined there."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from prediction_support import RIDE, metric_value

from local_stack.processes import wait_until

pytestmark = pytest.mark.integration


def test_rows_and_labels_reach_the_real_metrics_service(
    service_factory, mongo, artifacts_dir: Path, tmp_path: Path
) -> None:
    token = {"MONITORING_TOKEN": "s3cret"}
    _, metrics_url = service_factory(
        "evidently_service",
        {"REFERENCE_PATH": str(artifacts_dir / "reference.parquet"), "MONGODB_URI": mongo[1], **token},
        timeout=120,
    )
    _, url = service_factory(
        "prediction_service",
        {
            "MODEL_DIR": str(artifacts_dir),
            "MONGODB_URI": mongo[1],
            "EVIDENTLY_SERVICE_URL": metrics_url,
            "PREDICTION_SPOOL_DIR": str(tmp_path / "spool"),
            "PREDICTION_FLUSH_INTERVAL_SECONDS": "0.1",
            **token,
        },
    )
    n, labelled = 40, 15
    for i in range(n):
        # Half without passenger_count, as TLC data often is: the null must pass the metrics service's checks too.
        ride = {**RIDE, "request_id": f"ev-{i}", "passenger_count": None if i % 2 else 2}
        requests.post(f"{url}/predict", json=ride, timeout=5).raise_for_status()
    labels = [{"request_id": f"ev-{i}", "duration": 12.0 + i} for i in range(labelled)]
    response = requests.post(f"{url}/feedback", json=labels, headers={"Authorization": "Bearer s3cret"}, timeout=10)
    assert response.status_code == 202 and response.json()["queued"] == labelled

    def scraped(name: str, **labels: str) -> float:
        return metric_value(requests.get(f"{metrics_url}/metrics", timeout=5).text, name, **labels)

    wait_until(
        lambda: scraped("evidently_rows_received_total", model="ride_duration") == n,
        timeout=20,
        what="rows received by the metrics service",
    )
    wait_until(
        lambda: scraped("evidently_labels_received_total", result="matched") == labelled,
        timeout=20,
        what="labels joined by the metrics service",
    )
    assert scraped("evidently_rows_rejected_total") == 0
    # Decided by MongoDB in the prediction service: each label won its document and was forwarded once.
    assert (
        metric_value(requests.get(f"{url}/metrics", timeout=5).text, "prediction_feedback_total", result="accepted")
        == labelled
    )
    assert scraped("evidently_labels_received_total", result="duplicates") == 0
