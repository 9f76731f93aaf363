"""The workspace adapter writes what Evidently's public `Workspace` writes and reads, without reading the history."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from prefect_flows.analysis import Limits, analyse
from prefect_flows.columns import logged_fields, typed
from prefect_flows.io_mongo import sample_rows
from prefect_flows.period import Period
from prefect_flows.publish import SHARE_PANEL_TITLE, record_snapshots
from prefect_flows.reports import DATA_SUMMARY, DRIFT, QUALITY
from ride_duration.model import load_model
from ride_duration.schema import DESCRIPTION, PREDICTION, TARGET
from ride_duration.synthetic import generate_trips

PERIOD = Period(datetime(2026, 1, 5, 10, tzinfo=UTC), datetime(2026, 1, 5, 11, tzinfo=UTC))


@pytest.fixture(scope="module")
def reports(artifacts_dir, reference):
    model = load_model(artifacts_dir / "model.pkl")
    rides = generate_trips(500, seed=11)  # above the derived minimum (~316 rows) for a verdict
    rides[PREDICTION] = model.predict_frame(rides)
    rides[TARGET] = rides[TARGET].where(np.random.default_rng(11).random(500) < 0.5)
    rides["model_version"] = model.version
    rides["request_id"] = [f"w-{i}" for i in range(500)]
    rides["timestamp"] = pd.date_range(PERIOD.start, PERIOD.end, periods=501, inclusive="left").tz_localize(None)
    rows = typed(DESCRIPTION, rides[[TARGET if c == "target" else c for c in logged_fields(DESCRIPTION)]])
    analysed, sampling = sample_rows(rows, 100_000, 0)
    return analyse("run", DESCRIPTION, PERIOD, reference, rows, analysed, sampling, Limits()).reports


def _stored(workspace, recorded: dict) -> dict:
    """Return what a workspace holds for a recorded run: project, dashboard panels, runs' names and tags."""
    project = workspace.get_project(recorded["project_id"])
    runs = {kind: workspace.get_run(project.id, sid) for kind, sid in recorded["snapshots"].items()}
    return {
        "project": (project.name, project.description),
        "panels": [p.title for p in workspace.get_dashboard(project.id).panels],
        "runs": {kind: (run.name, run.tags, run.timestamp) for kind, run in runs.items()},
    }


def test_adapter_writes_what_the_public_workspace_writes(reports, tmp_path):
    """The same runs recorded through `Workspace(path)` and through the adapter read back the same."""
    from evidently.ui.workspace import Workspace

    from prefect_flows.workspace import open_workspace

    public = record_snapshots(Workspace(str(tmp_path / "public")), DESCRIPTION, reports)
    adapted = record_snapshots(open_workspace(tmp_path / "adapted"), DESCRIPTION, reports)
    assert set(adapted["snapshots"]) == {DRIFT, DATA_SUMMARY, QUALITY}
    # Read both folders back with Evidently's own Workspace, as `evidently ui` does.
    expected = _stored(Workspace(str(tmp_path / "public")), public)
    assert _stored(Workspace(str(tmp_path / "adapted")), adapted) == expected
    assert expected["panels"] == [SHARE_PANEL_TITLE, "Drift score per column", "Regression quality (minutes)"]


def test_the_share_panel_is_drawn_from_zero_with_its_scale_stated(tmp_path):
    """Seen: a line panel drew a steady 0.5 on an axis whose only tick read "1"."""
    from prefect_flows.publish import _dashboard_panels

    panel = next(p for p in _dashboard_panels(DESCRIPTION) if p.title == SHARE_PANEL_TITLE)
    assert panel.plot_params["plot_type"] == "bar"  # bars start at 0: the axis runs from 0 with share ticks
    assert "0 (none) to 1 (all)" in panel.subtitle and "0-1" in panel.title


def test_adapter_replaces_a_rerun_and_refuses_datasets(reports, tmp_path):
    from evidently.ui.workspace import Workspace

    from prefect_flows.workspace import open_workspace

    first = record_snapshots(open_workspace(tmp_path), DESCRIPTION, reports)
    second = record_snapshots(
        open_workspace(tmp_path), DESCRIPTION, reports, replaces=list(first["snapshots"].values())
    )
    assert second["project_id"] == first["project_id"]  # one project per model, found again by name
    assert {str(r) for r in Workspace(str(tmp_path)).list_runs(first["project_id"])} == set(
        second["snapshots"].values()
    )
    with pytest.raises(NotImplementedError, match="runs only"):
        open_workspace(tmp_path).add_dataset(first["project_id"], None, "data")
