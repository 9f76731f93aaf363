"""Publish a run: HTML and JSON files named by model and period, and the Evidently workspace snapshots."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from prefect_flows.reports import DRIFT, QUALITY, TITLES, BuiltReport

SUMMARY_FILE = "summary.json"


def run_id(model_name: str, period_slug: str) -> str:
    """Return the run's id: model and period, also the stem of its files."""
    return f"{model_name}_{period_slug}"


def run_dir(reports_dir: Path, rid: str) -> Path:
    """Return the folder holding one run's files."""
    return reports_dir / rid


def banner(summary: dict[str, Any], kind: str) -> str:
    """Return the header naming a report's model, period, rows and sampling, shown above Evidently's widgets."""
    rows, sampling = summary["rows"], summary["sampling"]
    start, end = (summary["period"][k][:16].replace("T", " ") for k in ("start", "end"))
    counted = f"{rows['analysed']:,} rows analysed"
    if kind == QUALITY:
        counted = f"{summary[QUALITY]['labelled_rows']:,} labelled rows of {rows['analysed']:,} analysed"
    lines = [
        f"<b>{escape(TITLES[kind])}</b> &middot; model {escape(summary['model_name'])} &middot; "
        f"{escape(start)} &ndash; {escape(end)} UTC &middot; {counted}"
    ]
    if sampling["applied"]:
        lines.append(
            f"The period had {sampling['period_rows']:,} rows; this report analyses {sampling['analysed_rows']:,} of "
            f"them, a uniform random sample without replacement seeded by model and period (seed {sampling['seed']})."
        )
    if kind == DRIFT:
        drift = summary[DRIFT]
        features = ", ".join(drift["drifted_features"]) or "none"
        state = "DATASET DRIFT" if drift["dataset_drift"] else "no dataset drift"
        lines.append(f"Verdict: {state}; drifted features: {escape(features)} ({drift['drifted_share']:.0%}).")
    style = "font-family:sans-serif;padding:.6rem 1rem;background:#f4f4f4;border-bottom:1px solid #ccc"
    return f'<div id="batch-run" style="{style}">' + "<br>".join(lines) + "</div>"


def write_reports(reports_dir: Path, summary: dict[str, Any], reports: list[BuiltReport]) -> dict[str, dict[str, str]]:
    """Write each report as self-contained HTML (with a header) plus Evidently's JSON; return relative paths."""
    rid = summary["run_id"]
    folder = run_dir(reports_dir, rid)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, dict[str, str]] = {}
    for report in reports:
        html, js = folder / f"{rid}_{report.kind}.html", folder / f"{rid}_{report.kind}.json"
        # Rendered once and written once with the header (save_html + re-read would write ~3.7 MB twice).
        text = report.snapshot.get_html_str(as_iframe=False)
        if "<body>" not in text:
            raise ValueError(f"Evidently rendered no HTML page for the {report.kind} report")
        html.write_text(text.replace("<body>", "<body>\n" + banner(summary, report.kind), 1), encoding="utf-8")
        js.write_text(report.snapshot.json(), encoding="utf-8")
        paths[report.kind] = {"html": str(html.relative_to(reports_dir)), "json": str(js.relative_to(reports_dir))}
    return paths


def write_summary(reports_dir: Path, summary: dict[str, Any]) -> Path:
    """Write the run's summary (verdicts, counts, paths) as JSON beside its reports."""
    folder = run_dir(reports_dir, summary["run_id"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SUMMARY_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    tmp.replace(path)  # atomic: the index never reads half a summary
    return path


def read_summaries(reports_dir: Path) -> list[dict[str, Any]]:
    """Return every run summary under reports_dir, newest period first."""
    summaries = []
    for path in reports_dir.glob(f"*/{SUMMARY_FILE}"):
        try:
            summaries.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue  # a damaged file must not hide the other runs
    return sorted(summaries, key=lambda s: (s["period"]["end"], s["period"]["start"], s["generated_at"]), reverse=True)


# Dashboard panels the Evidently UI shows over time for a new project.
def _dashboard_panels() -> list:
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    from ride_duration.schema import drift_tests

    return [
        line_plot_panel(
            title="Drifted features (share)",
            values=[PanelMetric(metric="DriftedColumnsCount", legend="share", metric_labels={"value_type": "share"})],
            size="half",
        ),
        line_plot_panel(
            title="Drift score per column",
            values=[PanelMetric(metric="ValueDrift", metric_labels={"column": c}, legend=c) for c in drift_tests()],
            size="half",
        ),
        line_plot_panel(
            title="Regression quality (minutes)",
            values=[PanelMetric(metric=m, legend=m) for m in ("RMSE", "MAE")],
            size="half",
        ),
    ]


def previous_snapshots(reports_dir: Path, rid: str) -> list[str]:
    """Return the workspace snapshot ids an earlier run of the same period recorded, if any."""
    try:
        summary = json.loads((run_dir(reports_dir, rid) / SUMMARY_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return list((summary.get("workspace") or {}).get("snapshots", {}).values())


def record_snapshots(
    workspace: Any, model_name: str, reports: list[BuiltReport], replaces: list[str] | None = None
) -> dict[str, Any]:
    """Add the run's snapshots to the model's project in an open workspace (dropping an earlier run's)."""
    found = [p for p in workspace.search_project(model_name) if p.name == model_name]
    if found:
        project = found[0]
    else:
        project = workspace.create_project(model_name, description=f"Batch monitoring reports of {model_name}")
        for panel in _dashboard_panels():
            # No tab name: Evidently 0.7.23 lists a panel twice when added to an existing named tab.
            project.dashboard.add_panel(panel)
    snapshots = {r.kind: str(workspace.add_run(project.id, r.snapshot).id) for r in reports}
    # A re-run replaces the period's points in the UI's time series instead of doubling them.
    known = {str(s) for s in workspace.list_runs(project.id)}
    for snapshot_id in replaces or []:
        if snapshot_id in known and snapshot_id not in snapshots.values():
            workspace.delete_run(project.id, snapshot_id)
    return {"path": str(workspace.path), "project_id": str(project.id), "snapshots": snapshots}


def verdict(summary: dict[str, Any]) -> str:
    """Return the one-line verdict shown in the index."""
    if summary["status"] != "ok":
        return summary["message"]
    drift = summary[DRIFT]
    text = "DATASET DRIFT" if drift["dataset_drift"] else "no dataset drift"
    if drift["drifted_features"]:
        text += f" ({', '.join(drift['drifted_features'])})"
    quality = summary[QUALITY]
    if quality["available"]:
        text += f"; RMSE {quality['rmse']:.2f} min"
    return text
