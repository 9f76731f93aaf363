"""Alert thresholds, windows and `for:` durations read from prometheus/rules/alerts.yml for the dashboards.

A panel that says "fires above 8 minutes" or draws the alert's line would drift from the rule if the
number were written twice, so the generator reads it from the rule file instead. Each reader names
the alert and the operand it expects in the expression and fails with both when the rule no longer
has that comparison, rather than writing a wrong number into a dashboard.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml

RULES = Path(__file__).resolve().parent.parent / "prometheus" / "rules" / "alerts.yml"
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


@lru_cache(maxsize=4)
def _alerts(path: Path) -> dict[str, dict]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def rule(alert: str) -> dict:
    """Return the alerting rule named `alert` (KeyError naming it and the file when there is none)."""
    rules = _alerts(RULES)
    if alert not in rules:
        raise KeyError(f"no alert {alert!r} in {RULES}")
    return rules[alert]


def _expression(alert: str) -> str:
    # The rules comment their guards on lines of their own; those words are not PromQL.
    return re.sub(r"(?m)^\s*#.*$", "", rule(alert)["expr"])


def threshold(alert: str, operand: str) -> float:
    """Return the number `operand` (a metric or selector) is compared with in `alert`'s expression.

    Matches `operand`, an optional label selector, closing brackets, then `>`, `>=`, `<` or `<=`
    and a number or a product of numbers (`2.5 * 3600`).
    """
    pattern = (
        r"(?<![\w:])"
        + re.escape(operand)
        + r"(?:\{[^}]*\})?\)*\s*(?:>=|<=|>|<)\s*(?:bool\s+)?("
        + _NUMBER
        + r"(?:\s*\*\s*"
        + _NUMBER
        + r")*)"
    )
    found = {_product(match) for match in re.findall(pattern, _expression(alert))}
    if len(found) != 1:
        raise ValueError(f"alert {alert}: expected one comparison of {operand} with a number, found {sorted(found)}")
    return found.pop()


def window(alert: str, operand: str) -> float:
    """Return the range in seconds of `operand[...]` in `alert`'s expression (e.g. `increase(x[10m])`)."""
    pattern = r"(?<![\w:])" + re.escape(operand) + r"(?:\{[^}]*\})?\[(" + _NUMBER + r")(ms|s|m|h|d)\]"
    found = {float(value) * _UNITS[unit] for value, unit in re.findall(pattern, _expression(alert))}
    if len(found) != 1:
        raise ValueError(f"alert {alert}: expected one range selector on {operand}, found {sorted(found)}")
    return found.pop()


def for_seconds(alert: str) -> float:
    """Return how long `alert`'s condition must hold before it fires, in seconds."""
    return _duration(str(rule(alert).get("for", "0s")))


def duration_text(seconds: float) -> str:
    """Return `seconds` as a person writes it: "500 ms", "15 minutes", "2.5 hours"."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g} ms"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size and (seconds / size * 10) % 1 == 0:  # at most one decimal, else a smaller unit
            value = seconds / size
            return f"{value:g} {unit}{'' if value == 1 else 's'}"
    return f"{seconds:g} seconds"


def promql_duration(seconds: float) -> str:
    """Return `seconds` as a PromQL range: 600 -> "10m"."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def percent_text(ratio: float) -> str:
    """Return a 0-1 ratio as a percentage: 0.05 -> "5%"."""
    return f"{ratio * 100:g}%"


def _product(text: str) -> float:
    value = 1.0
    for factor in text.split("*"):
        value *= float(factor)
    return int(value) if value.is_integer() else value  # 8, not 8.0, in the dashboard JSON


def _duration(text: str) -> float:
    # Prometheus durations as the rules use them: one number and unit ("10m", "90s", "0m").
    match = re.fullmatch(r"(" + _NUMBER + r")(ms|s|m|h|d)", text.strip())
    if not match:
        raise ValueError(f"unsupported duration {text!r} in {RULES}")
    return float(match[1]) * _UNITS[match[2]]
