"""Publish a run: HTML and JSON files named by model and period, and the Evidently workspace snapshots."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from monitoring_core.description import ModelDescription
from prefect_flows import estimation
from prefect_flows.period import parse_utc
from prefect_flows.quality import headline
from prefect_flows.reports import (
    DATA_SUMMARY,
    DRIFT,
    NO_VERDICT,
    QUALITY,
    BuiltReport,
    drift_state,
    period_label,
    title,
    unjudged_text,
)

SUMMARY_FILE = "summary.json"
# Above this ratio of reference to current rows (or the reverse), count bars of the smaller dataset are
# too low to compare: the distribution charts open on shares instead.
UNEVEN_SIZES = 2.0
SHORT_PERIOD_SECONDS = 600  # below: the quality report's minute-binned time plots have under 10 points


def run_id(model_name: str, period_slug: str) -> str:
    """Return the run's id: model and period, also the stem of its files."""
    return f"{model_name}_{period_slug}"


def run_dir(reports_dir: Path, rid: str) -> Path:
    """Return the folder holding one run's files."""
    return reports_dir / rid


def period_text(summary: dict[str, Any]) -> str:
    """Return the run's period as people read it (seconds when shorter than an hour)."""
    return period_label(parse_utc(summary["period"]["start"]), parse_utc(summary["period"]["end"]))


def _seconds(summary: dict[str, Any]) -> float:
    return (parse_utc(summary["period"]["end"]) - parse_utc(summary["period"]["start"])).total_seconds()


def uneven(sizes: tuple[int, int] | None) -> bool:
    """Return whether current and reference sizes differ enough for counts to hide the smaller one."""
    return bool(sizes) and min(sizes) > 0 and max(sizes) / min(sizes) >= UNEVEN_SIZES


# Clicks each distribution chart's "perc" button (Plotly's update menu) once the chart has settled, so the
# page opens on shares; "abs" still shows the counts. Plain DOM: no Evidently internals. The delay matters:
# a click while Plotly is still drawing marks the button active without switching the bars.
_SHOW_SHARES = """<script>
(function () {
  var timer = null;
  function press() {
    document.querySelectorAll("g.updatemenu-button").forEach(function (button) {
      if (button.dataset.batchRun || button.textContent.trim() !== "perc") return;
      button.dataset.batchRun = "1";
      button.dispatchEvent(new MouseEvent("click", {bubbles: true}));
    });
  }
  new MutationObserver(function () {
    clearTimeout(timer);
    timer = setTimeout(press, 300);
  }).observe(document.documentElement, {childList: true, subtree: true});
})();
</script>"""


def banner(summary: dict[str, Any], kind: str, sizes: tuple[int, int] | None = None) -> str:
    """Return the header naming a report's model, period, rows and sampling, shown above Evidently's widgets."""
    rows, sampling = summary["rows"], summary["sampling"]
    counted = f"{rows['analysed']:,} rows analysed"
    if kind == QUALITY:
        labelled = summary[QUALITY].get("sample_labelled_rows", summary[QUALITY]["labelled_rows"])
        counted = f"{labelled:,} labelled rows of {rows['analysed']:,} analysed"
    lines = [
        f"<b>{escape(title(kind, summary.get('task', 'regression')))}</b> &middot; "
        f"model {escape(summary['model_name'])} &middot; "
        f"{escape(period_text(summary))} &middot; {counted}"
    ]
    if summary.get("exact"):
        lines.extend(escape(sentence) for sentence in exact_sentences(summary))
    elif sampling["applied"]:
        lines.append(
            f"The period had {sampling['period_rows']:,} rows; this report analyses {sampling['analysed_rows']:,} of "
            f"them, a uniform random sample without replacement seeded by model and period (seed {sampling['seed']})."
        )
    if kind == DRIFT:
        drift = summary[DRIFT]
        features = ", ".join(drift["drifted_features"]) or "none"
        state = drift_state(drift)
        lines.append(f"Verdict: {state}; drifted features: {escape(features)} ({drift['drifted_share']:.0%}).")
        if unjudged := unjudged_text(drift):
            lines.append(escape(unjudged[0].upper() + unjudged[1:] + "."))
        if drift.get("columns"):  # summaries written before calibration carry no per-column thresholds
            lines.extend(escape(sentence) for sentence in threshold_sentences(drift))
    if kind in (DRIFT, QUALITY) and (summary.get("estimation") or {}).get("available"):
        lines.append(
            f"Quality estimated before labels ({summary['estimation']['level']:.0%} band; per segment on the "
            f"estimation page): {escape(estimation.headline(summary))}. Estimation cannot see pure concept drift: "
            "a gap outside the band is its hint."
        )
    if kind == DATA_SUMMARY and summary.get("columns"):
        lines.append(escape(columns_line(summary)))
    if uneven(sizes):
        current, reference = sizes
        lines.append(
            f"Current {current:,} rows, reference {reference:,}: the distributions open on shares (&ldquo;perc&rdquo;) "
            "so both compare; &ldquo;abs&rdquo; above each chart shows the counts."
        )
    if kind == DRIFT:
        lines.append("&ldquo;Index binned&rdquo; in the drift plots is the current rows in the order they were served.")
    if kind == QUALITY and _seconds(summary) < SHORT_PERIOD_SECONDS:
        lines.append("The time plots bin by the minute (Evidently's finest bin): a period this short shows few points.")
    style = "font-family:sans-serif;padding:.6rem 1rem;background:#f4f4f4;border-bottom:1px solid #ccc"
    header = f'<div id="batch-run" style="{style}">' + "<br>".join(lines) + "</div>"
    return header + (_SHOW_SHARES if uneven(sizes) else "")


def exact_sentences(summary: dict[str, Any]) -> list[str]:
    """Return the header's lines of a run on the Dask path: the sample the report shows, the exact aggregates."""
    exact, sampling = summary["exact"], summary["sampling"]
    drawn = (
        f"This report is drawn from a uniform sample of {sampling['analysed_rows']:,} of {exact['rows']:,} rows "
        f"(the rows with the smallest keyed hash of their request id, seed {sampling['seed']}, drawn per hour "
        "and merged)."
        if sampling["applied"]
        else f"This report shows all {exact['rows']:,} rows of the period."
    )
    missing = {c: v for c, v in exact["missing_share"].items() if v}
    outside = {c: v for c, v in exact["out_of_range_share"].items() if v}
    counts = (
        f'Exact over every row of the period (summary.json "exact"): {exact["rows"]:,} rows, '
        f"{exact['labelled']:,} labelled ({(exact['label_coverage'] or 0):.1%}); missing: "
        + (", ".join(f"{c} {v:.2%}" for c, v in missing.items()) or "none")
        + "; out of the described range: "
        + (", ".join(f"{c} {v:.2%}" for c, v in outside.items()) or "none")
        + "."
    )
    lines = [drawn, counts]
    quality = summary.get(QUALITY) or {}
    if quality.get("exact") and quality.get("available"):
        lines.append(f"Model quality over all {quality['labelled_rows']:,} labelled rows (exact): {headline(summary)}.")
    return lines


def score_text(value: float | None) -> str:
    """Return a drift score or threshold as Evidently shows scores: 3 decimals, tiny p-values in e-notation."""
    if value is None:
        return "none (no usable values)"
    return f"{value:.3f}" if value == 0 or abs(value) >= 0.001 else f"{value:.2e}"


def columns_line(summary: dict[str, Any]) -> str:
    """Return the sentence saying what the summary report's columns are: id, time, target and its unit, prediction."""
    # Evidently 0.7.23's summary table names a target and prediction for classification only: say them here.
    columns = summary["columns"]
    classification = summary.get("task") == "classification"
    unit = f" ({columns['target_unit']})" if columns.get("target_unit") else ""
    kind = "categorical (the classes)" if classification else "numerical"
    parts = [f"Columns: id {columns['id']}"]
    if columns.get("time"):
        parts.append(
            f"time {columns['time']} (when the prediction was served; the reference's {columns['reference_time']})"
        )
    else:
        parts.append("no time column (the reference has none)")
    parts.append(f"target {columns['target']}{unit} and {columns['prediction']}, {kind}")
    if columns.get("probabilities"):
        parts.append(f"class probabilities {', '.join(columns['probabilities'])}")
    if columns.get("datetimes"):
        parts.append(f"{', '.join(columns['datetimes'])} datetime")
    if columns.get("segment"):
        parts.append(f"segment {columns['segment']}")
    return "; ".join(parts) + "."


def _floor_binds(column: dict[str, Any]) -> bool:
    """Whether the effect-size floor, not the calibration, set a judged column's threshold."""
    floor, threshold = column.get("floor"), column.get("threshold")
    return column.get("enough_data", True) and floor is not None and threshold is not None and threshold <= floor


def threshold_line(drift: dict[str, Any]) -> str:
    """Return the header's drift sentences as one paragraph."""
    return " ".join(threshold_sentences(drift))


def threshold_sentences(drift: dict[str, Any]) -> list[str]:
    """Return the verdict rule in words, then one sentence per feature: its rows, score, threshold and verdict.

    One row count per sentence, each saying what it counts; thresholds to the precision of the scores
    (a score 0.294 against a threshold printed "0.3" reads as a miss that is not one).
    """
    share = drift.get("dataset_drift_share", 0.5)
    feature_rule = (
        "Verdict rule: a feature drifts when its score reaches its threshold (a distance: score at or above it; "
        "a p-value: score at or below it), or, for a categorical feature, when the share of its values the "
        "reference never saw reaches its own threshold, or, for a numerical feature, when its histogram over the "
        "reference's quantile bins reaches its own threshold while its score reaches the effect-size floor; "
    )
    if drift.get("rule") == "holm":
        flagged = ", ".join(drift.get("flagged") or []) or "none"
        rule = feature_rule + (
            "the dataset drifts when at least one feature is flagged: its calibrated tail p-value passes Holm's "
            f"correction over the features at the dataset's family-wise rate and its score reaches its floor "
            f"(flagged: {flagged})."
        )
    else:
        rule = feature_rule + f"the dataset drifts when at least {share:.0%} of the judged features drift."
    sentences = [rule]
    if drift.get("calibrated"):
        sentences.append(
            f"Rows analysed: {drift['rows']:,}. Each threshold is calibrated from the reference for the rows with its "
            f"feature present, so that clean data raises a false alarm at most {drift['false_alarm_rate']:.2%} of the "
            f"time per feature ({drift['dataset_false_alarm_rate']:.2%} for the dataset verdict). "
            + (
                f"A verdict needs at least {drift['min_rows']:,} rows."
                if drift.get("min_rows") is not None
                else "The reference is too small for any feature's verdict, at any number of rows."
            )
        )
        stated = drift.get("stated_dataset_rate")
        if stated is not None and stated < drift["dataset_false_alarm_rate"]:
            floored = [c for c, v in drift["columns"].items() if _floor_binds(v)]
            sentences.append(
                f"At {drift['rows']:,} rows the effect-size floor, not the calibration, sets the threshold of "
                f"{', '.join(floored) or 'the features'}: clean data raises a false alarm less often there, "
                f"at most {stated:.2%} of the time for the dataset verdict."
            )
    else:
        sentences.append("Thresholds are the pinned ones (not calibrated to the number of rows).")
    for column, v in drift["columns"].items():
        present = f" ({v['rows']:,} rows with this feature present)" if v.get("rows") is not None else ""
        if not v.get("enough_data", True):
            small = drift.get("calibrated") and v.get("min_rows", 0) is None  # no size calibrated: never a verdict
            sentences.append(
                f"{column}{present}: " + ("reference too small for a verdict." if small else "too few for a verdict.")
            )
            continue
        outcome = "drift" if v.get("detected") else "no drift"
        sentences.append(
            f"{column}{present}: score {score_text(v.get('score'))} against threshold "
            f"{score_text(v['threshold'])} ({v.get('stattest', 'stat test')})" + second_test_text(v) + f": {outcome}."
        )
        calibrated = v.get("calibrated_rows")
        if calibrated and calibrated != v.get("rows"):
            sentences.append(f"{column}'s threshold is the one calibrated for the nearest size, {calibrated:,} rows.")
    return sentences


def second_test_text(column: dict[str, Any]) -> str:
    """Return a feature's second test as the header says it, else "".

    A category: "; values unseen in the reference 12.0% against threshold 6.1%"; a number: "; histogram
    (Jensen-Shannon over the reference's quantile bins) 0.183 against threshold 0.121".
    """
    share, threshold = column.get("unseen_share"), column.get("unseen_threshold")
    if share is not None and threshold is not None:
        return f"; values unseen in the reference {share:.1%} against threshold {threshold:.1%}"
    distance, threshold = column.get("bins_distance"), column.get("bins_threshold")
    if distance is not None and threshold is not None:
        return (
            f"; histogram (Jensen-Shannon over the reference's quantile bins) {score_text(distance)} against "
            f"threshold {score_text(threshold)}"
        )
    return ""


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
        header = banner(summary, report.kind, report.sizes)
        html.write_text(text.replace("<body>", "<body>\n" + header, 1), encoding="utf-8")
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


SHARE_PANEL_TITLE = "Drifted features (share of features, 0-1)"


# Dashboard panels the Evidently UI shows over time for a new project.
def _dashboard_panels(description: ModelDescription) -> list:
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import bar_plot_panel, line_plot_panel

    if description.is_classification:
        quality_panel = line_plot_panel(
            title="Classification quality",
            values=[PanelMetric(metric="Accuracy", legend="accuracy"), PanelMetric(metric="F1Score", legend="F1")],
            size="half",
        )
    else:
        unit = f" ({description.target.unit})" if description.target.unit else ""
        quality_panel = line_plot_panel(
            title=f"Regression quality{unit}",
            # MAE is a mean and a std in Evidently 0.7: without the label the panel draws both as "MAE".
            values=[
                PanelMetric(metric="RMSE", legend="RMSE"),
                PanelMetric(metric="MAE", legend="MAE", metric_labels={"value_type": "mean"}),
            ],
            size="half",
        )
    return [
        # Bars, not a line: the UI fits a line chart's axis to the data (a steady 0.5 drew on an axis whose
        # only tick read "1"), while bars rise from 0, so the axis starts at 0 and its ticks read as shares.
        # The UI offers no axis settings (Evidently 0.7.23's panels take only plot_type, is_stacked, aggregation).
        bar_plot_panel(
            title=SHARE_PANEL_TITLE,
            values=[PanelMetric(metric="DriftedColumnsCount", legend="share", metric_labels={"value_type": "share"})],
            description="Share of the tested features that drifted in each run, from 0 (none) to 1 (all).",
            size="half",
        ),
        line_plot_panel(
            title="Drift score per column",
            values=[
                PanelMetric(metric="ValueDrift", metric_labels={"column": c}, legend=c)
                for c in description.drift_tests()
            ],
            size="half",
        ),
        quality_panel,
    ]


def previous_snapshots(reports_dir: Path, rid: str) -> list[str]:
    """Return the workspace snapshot ids an earlier run of the same period recorded, if any."""
    try:
        summary = json.loads((run_dir(reports_dir, rid) / SUMMARY_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return list((summary.get("workspace") or {}).get("snapshots", {}).values())


def record_snapshots(
    workspace: Any, description: ModelDescription, reports: list[BuiltReport], replaces: list[str] | None = None
) -> dict[str, Any]:
    """Add the run's snapshots to the model's project in an open workspace (dropping an earlier run's)."""
    model_name = description.name
    found = [p for p in workspace.search_project(model_name) if p.name == model_name]
    if found:
        project = found[0]
    else:
        project = workspace.create_project(model_name, description=f"Batch monitoring reports of {model_name}")
        for panel in _dashboard_panels(description):
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
    text = drift_state(drift)
    if drift["drifted_features"]:
        text += f" ({', '.join(drift['drifted_features'])})"
    if unjudged := unjudged_text(drift):
        text = unjudged if text == NO_VERDICT else f"{text}, {unjudged}"
    if summary[QUALITY]["available"]:
        text += f"; {headline(summary)}"
    return text
