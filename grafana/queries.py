"""Read the panel queries back out of dashboard JSON and substitute template variables.

Used by the checks in tests/monitoring_config: every query is parsed by promtool and run
against a live Prometheus exactly as Grafana would send it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel: where it is and its PromQL."""

    dashboard: str
    panel_id: int
    panel_title: str
    ref_id: str
    expr: str

    @property
    def where(self) -> str:
        """Return a human-readable location for failure messages."""
        return f"{self.dashboard} panel {self.panel_id} {self.panel_title!r} query {self.ref_id}"


@dataclass(frozen=True)
class LabelValuesQuery:
    """A `label_values(selector, label)` template variable query."""

    variable: str
    selector: str | None
    label: str


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> dict[str, dict]:
    """Return every dashboard JSON in `directory` by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def panels(board: dict) -> Iterator[dict]:
    """Yield every panel of a dashboard, including those nested in collapsed rows (rows excluded)."""
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries(name: str, board: dict) -> list[PanelQuery]:
    """Return every PromQL query of every panel of `board`."""
    return [
        PanelQuery(name, panel["id"], panel.get("title", ""), target.get("refId", ""), target["expr"])
        for panel in panels(board)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def variable_queries(board: dict) -> list[LabelValuesQuery]:
    """Return the dashboard's `label_values(...)` query variables."""
    found = []
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        text = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = _LABEL_VALUES.match(text.strip())
        if not match:
            raise ValueError(f"variable {variable['name']}: unsupported query {text!r}")
        found.append(LabelValuesQuery(variable["name"], match["selector"], match["label"]))
    return found


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace $var, ${var} and [[var]] with `values[var]`; fail on a variable without a value."""

    def replace(match: re.Match) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"no value for template variable ${name} in {text!r}")
        return values[name]

    return _VARIABLE.sub(replace, text)


_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression selects (a lexical approximation, enough for checks)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings may hold anything
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", text):
        if match[1] not in _KEYWORDS:
            names.add(match[1])
    return names
