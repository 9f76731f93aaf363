"""Render `index.html`: every batch run, newest period first, with its verdicts and report links."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from prefect_flows import estimation
from prefect_flows.publish import SUMMARY_FILE, period_text, read_summaries, verdict
from prefect_flows.reports import DATA_SUMMARY, DRIFT, QUALITY, title

INDEX_FILE = "index.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: .4rem .6rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.drift { color: #b00020; font-weight: 600; }
.ok { color: #1b5e20; }
.nodata { color: #777; font-style: italic; }
.note { color: #555; font-size: .9em; }
"""


def _period(summary: dict[str, Any]) -> str:
    return escape(period_text(summary))


def _rows(summary: dict[str, Any]) -> str:
    rows = summary["rows"]
    text = f"{rows['analysed']:,}"
    if summary.get("sampling", {}).get("applied"):
        text += f' <span class="note">(sample of {rows["period"]:,}, seed {summary["sampling"]["seed"]})</span>'
    return text


def _coverage(summary: dict[str, Any]) -> str:
    coverage = summary.get("label_coverage")
    return "&ndash;" if coverage is None else f"{coverage:.0%} ({summary['rows']['labelled']:,})"


def _links(summary: dict[str, Any]) -> str:
    links = [
        f'<a href="{escape(paths["html"])}">{escape(title(kind, summary.get("task", "regression")).lower())}</a>'
        for kind in (DRIFT, DATA_SUMMARY, QUALITY)
        if (paths := summary.get("reports", {}).get(kind))
    ]
    if page := (summary.get("estimation") or {}).get("html"):
        links.append(f'<a href="{escape(page)}">estimated quality</a>')
    links.append(f'<a href="{escape(summary["run_id"])}/{SUMMARY_FILE}">summary.json</a>')
    return " &middot; ".join(links)


def _estimate(summary: dict[str, Any]) -> str:
    part = summary.get("estimation")
    if not part or summary["status"] != "ok":
        return "&ndash;"
    text = escape(estimation.headline(summary))
    if not part["available"]:
        return f'<span class="nodata">{text}</span>'
    outside = any(m.get("outside_band") for m in part["period"]["metrics"].values())
    return f'<span class="drift">{text}</span>' if outside else text


def _row(summary: dict[str, Any]) -> str:
    css = "nodata" if summary["status"] != "ok" else "drift" if summary[DRIFT]["dataset_drift"] else "ok"
    return (
        "<tr>"
        f"<td>{_period(summary)}</td>"
        f"<td>{escape(summary['model_name'])}</td>"
        f"<td>{_rows(summary)}</td>"
        f"<td>{_coverage(summary)}</td>"
        f'<td class="{css}">{escape(verdict(summary))}</td>'
        f"<td>{_estimate(summary)}</td>"
        f"<td>{_links(summary)}</td>"
        "</tr>"
    )


def render_index(summaries: list[dict[str, Any]], now: datetime | None = None) -> str:
    """Return the index page listing `summaries` in the given order."""
    now = now or datetime.now(UTC)
    body = "\n".join(_row(s) for s in summaries) or '<tr><td colspan="7" class="nodata">no runs yet</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Batch monitoring reports</title>
<style>{_STYLE}</style></head>
<body>
<h1>Batch monitoring reports</h1>
<p class="note">{len(summaries)} run(s), newest period first. Generated {now:%Y-%m-%d %H:%M} UTC.
Drift uses the metrics service's pinned tests (each model's <code>model.yaml</code> with
<code>monitoring_core/monitoring.yaml</code>) at thresholds calibrated from the reference for each
period's size, so a quiet hour is "not enough data", never drift; quality is computed on rows
whose ground truth had arrived when the run started. The quality estimate judges every row, labelled or
not, from the inputs and the model's outputs (the model folder's prepared estimator), with its 90% band;
the gap is realised &minus; estimated over the same labelled rows. Estimation cannot see pure concept drift
(labels that change for the same inputs): a gap outside the band is its hint.</p>
<table>
<thead><tr><th>period</th><th>model</th><th>rows</th><th>label coverage</th><th>verdict</th>
<th>quality estimated before labels</th><th>reports</th></tr>
</thead>
<tbody>
{body}
</tbody>
</table>
</body></html>
"""


def write_index(reports_dir: Path) -> Path:
    """Regenerate `index.html` in reports_dir from every run's summary."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / INDEX_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render_index(read_summaries(reports_dir)))
    tmp.replace(path)
    return path
