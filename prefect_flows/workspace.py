"""The one adapter between the batch flow and Evidently 0.7's local workspace (what `evidently ui` reads).

The flow uses `WorkspaceBase`'s public methods only (`search_project`, `create_project`, `add_run`,
`list_runs`, `delete_run`, `project.dashboard.add_panel`). Evidently's own `Workspace(path)` would do,
but its constructor builds a dataset manager that loads and validates every stored snapshot: measured
here 0.1 s with 3 stored snapshots, 2.1 s with 30, 8.6 s with 99, 29 s with 300 (about 0.1 s per
snapshot; 3 per run), so a run's cost would grow with the history. `RunWorkspace` is the same local
workspace without that manager: the same file store (`LocalState`) and `Workspace`'s own methods for
projects, dashboards and runs; datasets, which the flow never writes, are refused. An Evidently upgrade
touches this file only; tests check it against `Workspace(path)` on the same folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evidently.ui.storage.local.base import LocalState
from evidently.ui.workspace import Workspace, WorkspaceBase


class RunWorkspace(WorkspaceBase):
    """Evidently's local workspace for adding runs: `Workspace`'s methods over its file store, no dataset manager."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.state = LocalState(path)

    # Evidently's own implementations (they only use `self.path` and `self.state`).
    add_project = Workspace.add_project
    get_project = Workspace.get_project
    delete_project = Workspace.delete_project
    list_projects = Workspace.list_projects
    update_project = Workspace.update_project
    search_project = Workspace.search_project
    _add_run = Workspace._add_run
    _get_snapshot_url = Workspace._get_snapshot_url
    get_run = Workspace.get_run
    list_runs = Workspace.list_runs
    delete_run = Workspace.delete_run
    save_dashboard = Workspace.save_dashboard
    get_dashboard = Workspace.get_dashboard

    def add_dataset(self, *args: Any, **kwargs: Any) -> Any:
        """Refuse datasets: they need the dataset manager this adapter leaves out (use `Workspace(path)`)."""
        raise NotImplementedError("RunWorkspace stores runs only; open Workspace(path) to add datasets")


def open_workspace(workspace_dir: Path) -> RunWorkspace:
    """Open (or create) the Evidently workspace folder for adding runs, without reading the runs it holds."""
    Path(workspace_dir).mkdir(parents=True, exist_ok=True)
    return RunWorkspace(str(workspace_dir))
