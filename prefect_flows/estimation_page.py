"""Render a run's estimation page: quality estimated before labels vs realised, for the period and each segment."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from prefect_flows import quality
from prefect_flows.estimation import LIMIT
from prefect_flows.publish import period_text, run_dir

PAGE_SUFFIX = "_estimation.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5rem; }
th, td { border-bottom: 1px solid #ddd; padding: .35rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
.outside { color: #b00020; font-weight: 600; }
.note { color: #555; font-size: .9em; max-width: 60rem; }
"""


def _number(name: str, value: float | None) -> str:
    if value is None:
        return "&ndash;"
    return f"{value:.2f}" if name in quality.IN_TARGET_UNIT else f"{value:.3f}"


def _cells(name: str, values: dict[str, Any] | None) -> str:
    if not values:
        return '<td colspan="4">&ndash;</td>'
    band = f"{_number(name, values['low'])} &ndash; {_number(name, values['high'])}"
    if "realised" not in values:
        return f"<td>{_number(name, values['estimated'])}</td><td>{band}</td><td>&ndash;</td><td>&ndash;</td>"
    css = ' class="outside"' if values["outside_band"] else ""
    gap = f"{values['gap']:+.2f}" if name in quality.IN_TARGET_UNIT else f"{values['gap']:+.3f}"
    mark = " (outside)" if values["outside_band"] else ""
    return (
        f"<td>{_number(name, values['estimated'])}</td><td>{band}</td>"
        f"<td>{_number(name, values['realised'])}</td><td{css}>{gap}{mark}</td>"
    )


def _table(metrics: list[str], groups: list[tuple[str, dict[str, Any]]], level: float) -> str:
    head = "".join(f'<th colspan="4">{escape(quality.LABELS.get(m, m))}</th>' for m in metrics)
    sub = "".join(
        f"<th>estimated</th><th>{level:.0%} band</th><th>realised</th><th>gap (realised &minus; est.)</th>"
        for _ in metrics
    )
    body = "\n".join(
        f"<tr><td>{escape(label)}</td><td>{part['rows']:,}</td><td>{part['labelled_rows']:,}</td>"
        + "".join(_cells(m, part["metrics"].get(m)) for m in metrics)
        + "</tr>"
        for label, part in groups
    )
    return (
        f"<table><thead><tr><th></th><th>rows</th><th>labelled</th>{head}</tr>"
        f"<tr><th></th><th></th><th></th>{sub}</tr></thead><tbody>\n{body}\n</tbody></table>"
    )


def render(summary: dict[str, Any]) -> str:
    """Return the estimation page of one run's summary (its `estimation` part)."""
    estimation = summary["estimation"]
    unit = (summary.get("columns") or {}).get("target_unit") or ""
    title = f"Quality estimated before labels: {summary['model_name']}, {period_text(summary)}"
    if not estimation["available"]:
        content = (
            f"<p><b>No estimate for this run:</b> {escape(estimation['reason'].removeprefix('no estimate: '))}.</p>"
        )
    else:
        metrics = list(estimation["period"]["metrics"])
        groups = [("whole period", estimation["period"])]
        segment = (summary.get("columns") or {}).get("segment")
        groups += [(f"{segment} = {s['segment']}", s) for s in estimation["segments"]]
        content = (
            _table(metrics, groups, estimation["level"])
            + '<p class="note">The estimate judges every row of the period (and of each segment), labelled or not; '
            f"its {estimation['level']:.0%} band should hold the metric the rows will realise once labelled"
            + (f" (in {escape(unit)} where the metric has the target's unit)" if unit else "")
            + ". Realised is the metric over the rows whose labels had arrived when the run started (segments "
            "with too few labels show none); the gap is realised minus the estimate of those same labelled rows, "
            "marked <i>outside</i> when the realised value left that estimate's band.</p>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>{escape(title)}</h1>
{content}
<p class="note"><b>Limit.</b> {escape(LIMIT)} See docs/runbook.md, PerformanceEstimateGap.</p>
</body></html>
"""


def write(reports_dir: Path, summary: dict[str, Any]) -> str:
    """Write the run's estimation page beside its reports; return its path relative to reports_dir."""
    folder = run_dir(reports_dir, summary["run_id"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{summary['run_id']}{PAGE_SUFFIX}"
    path.write_text(render(summary), encoding="utf-8")
    return str(path.relative_to(reports_dir))
