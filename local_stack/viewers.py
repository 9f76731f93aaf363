"""What a person looks at while the local stack runs: the reports over HTTP, the Evidently UI, Prometheus graphs.

Without Docker there is no Grafana here, so each dashboard gets a Prometheus graph link with its key
queries filled in: the same metrics the dashboard plots, one graph per query.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import requests

from local_stack.processes import ManagedProcess, connect_host, free_port, http_ok, python_module

# Shown on the service-health dashboard too: the prediction API's own endpoints, not scrapes and probes.
SERVING = 'endpoint!~".*(metrics|health).*"'


def dashboard_queries(model: str) -> dict[str, list[str]]:
    """Return each Grafana dashboard's key PromQL queries, by dashboard title."""
    m = f'model="{model}"'
    return {
        "Data drift": [
            # Score per feature against its threshold (the drift panel's two series).
            f"evidently_feature_drift_score{{{m}}}",
            f"evidently_feature_drift_threshold{{{m}}}",
            f"evidently_drifted_features_share{{{m}}}",
        ],
        "Model quality": [
            # Every quality metric of the model's task: RMSE, MAE, mean error for a regressor; accuracy, F1... else.
            f"evidently_model_quality{{{m}}}",
            f"evidently_label_coverage{{{m}}}",
        ],
        "Data quality": [
            f"evidently_feature_missing_share{{{m}}}",
            f"evidently_feature_new_category_share{{{m}}}",
        ],
        "Service health": [
            f"endpoint:prediction_http_requests:rate5m{{{SERVING}}}",
            "endpoint_quantile:prediction_http_request_duration_seconds:histogram_quantile"
            f'{{quantile="0.99", {SERVING}}}',
        ],
    }


def prometheus_ui(prometheus_url: str) -> str:
    """Return the base URL of Prometheus's web pages: Debian's build serves only the classic UI, under /classic."""
    for base in (prometheus_url, f"{prometheus_url}/classic"):
        try:
            if requests.get(f"{base}/alerts", timeout=5).status_code == 200:
                return base
        except requests.RequestException:
            break
    return prometheus_url


def graph_url(prometheus_url: str, queries: list[str], window: str = "15m") -> str:
    """Return a Prometheus graph page URL showing one graph per query over the last `window`."""
    params: dict[str, str] = {}
    for i, query in enumerate(queries):
        params.update({f"g{i}.expr": query, f"g{i}.tab": "0", f"g{i}.range_input": window})
    return f"{prometheus_url}/graph?{urlencode(params)}"


def start_reports_server(
    reports_dir: Path, logs: Path, port: int | None = None, bind: str = "127.0.0.1"
) -> tuple[ManagedProcess, str]:
    """Serve `reports_dir` over HTTP on `bind` (Python's http.server); return it and its URL once it answers."""
    port = port or free_port()
    args = python_module("http.server", str(port), "--bind", bind, "--directory", str(reports_dir))
    proc = ManagedProcess("reports", args, logs / f"reports-{port}.log").start()
    url = f"http://{connect_host(bind)}:{port}"
    _ready_or_stopped(proc, lambda: http_ok(f"{url}/"), timeout=30)
    return proc, url


def evidently_binary() -> str:
    """Return the `evidently` command installed beside this interpreter."""
    beside = Path(sys.executable).parent / "evidently"
    if not beside.exists():
        raise FileNotFoundError(f"no {beside}: pip install -r requirements.txt")
    return str(beside)


def start_evidently_ui(
    workspace: Path, logs: Path, port: int | None = None, bind: str = "127.0.0.1"
) -> tuple[ManagedProcess, str]:
    """Run `evidently ui` on the workspace, listening on `bind`; return it and its URL once its API answers."""
    port = port or free_port()
    args = [evidently_binary(), "ui", "--workspace", str(workspace), "--host", bind, "--port", str(port)]
    proc = ManagedProcess("evidently-ui", args, logs / f"evidently-ui-{port}.log", env={"DO_NOT_TRACK": "1"}).start()
    url = f"http://{connect_host(bind)}:{port}"
    # Importing Evidently and its UI takes seconds, more on a busy machine.
    _ready_or_stopped(proc, lambda: http_ok(f"{url}/api/version"), timeout=120)
    return proc, url


def _ready_or_stopped(proc: ManagedProcess, ready: Callable[[], object], timeout: float) -> None:
    """Wait until `proc` is ready; stop it (by PID) before re-raising when it never gets there."""
    try:
        proc.wait_ready(ready, timeout=timeout)
    except BaseException:
        proc.stop()
        raise
