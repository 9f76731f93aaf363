"""Data quality: are the requests well-formed, and which inputs are being rejected?"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, table, timeseries

from grafana.alert_rules import duration_text, for_seconds, percent_text, threshold
from grafana.common import (
    MODEL,
    model_variable,
    new_dashboard,
    query,
    row,
    table_panel,
    threshold_line,
    timeseries_panel,
)

UID = "ride-data-quality"
REJECTED_SHARE = "model:prediction_rejected_inputs:ratio_rate5m"


def missing_share() -> timeseries.Panel:
    """Share of window rows with a field missing."""
    return timeseries_panel(
        "Missing values",
        "Share of window rows with the field missing (null), per field.",
        "percentunit",
        query(f"evidently_feature_missing_share{{{MODEL}}}", "{{feature}}"),
    ).min(0)


def out_of_range_share() -> timeseries.Panel:
    """Share of numerical values outside the reference range."""
    return timeseries_panel(
        "Out of reference range",
        "Share of window rows whose numerical field lies outside the reference's min..max.",
        "percentunit",
        query(f"evidently_feature_out_of_range_share{{{MODEL}}}", "{{feature}}"),
    ).min(0)


def new_category_share() -> timeseries.Panel:
    """Share of categorical values the reference never saw."""
    return timeseries_panel(
        "New categories",
        "Share of window rows whose categorical field never appears in the reference.",
        "percentunit",
        query(f"evidently_feature_new_category_share{{{MODEL}}}", "{{feature}}"),
    ).min(0)


def rejected_by_reason() -> timeseries.Panel:
    """Inputs rejected by the prediction service, by reason."""
    return timeseries_panel(
        "Rejected inputs by reason",
        "Inputs the prediction service rejected per second, by endpoint and reason (missing_field, wrong_type, "
        "out_of_range, ...). A new reason appearing usually means an upstream schema change.",
        "ops",
        query(f"model_endpoint_reason:prediction_rejected_inputs:rate5m{{{MODEL}}}", "{{endpoint}} {{reason}}"),
    )


def rejected_share() -> timeseries.Panel:
    """Share of inputs rejected."""
    share = threshold("HighInputErrorRate", REJECTED_SHARE)
    return threshold_line(
        timeseries_panel(
            "Rejected input share",
            "Share of the model's inputs to its prediction service that failed validation; HighInputErrorRate fires "
            f"above the dashed line ({percent_text(share)}) for {duration_text(for_seconds('HighInputErrorRate'))}.",
            "percentunit",
            query(f"{REJECTED_SHARE}{{{MODEL}}}", "rejected share"),
        ),
        share,
    ).min(0)


def rows_received() -> timeseries.Panel:
    """Rows the metrics service accepts and rejects."""
    return timeseries_panel(
        "Rows reaching the metrics service",
        "Rows per second accepted by the metrics service's /iterate, and rejected ones by reason (B).",
        "ops",
        query(f"model:evidently_rows_received:rate5m{{{MODEL}}}", "accepted"),
        query(f"model_reason:evidently_rows_rejected:rate5m{{{MODEL}}}", "rejected {{reason}}", "B"),
    )


def rows_per_segment() -> timeseries.Panel:
    """Window rows per segment."""
    return timeseries_panel(
        "Window rows per segment",
        "Rows in the window per segment of the model's segment rule: a segment vanishing or appearing is a data "
        "quality signal.",
        "short",
        query(f"evidently_segment_window_rows{{{MODEL}}}", "{{segment}}"),
    )


def new_fields_seen() -> table.Panel:
    """Which field names outside the schema the rows carry (the metrics service's top-K)."""
    return table_panel(
        "New fields seen",
        "Fields outside the schema that served requests carried, by name, with the rows that carried each since the "
        "metrics service started (its 20 most frequent names; approximate beyond 100 distinct names). A new name "
        "means clients started sending a new column: an upstream schema change. Serving goes on "
        "(UNKNOWN_FIELDS=keep keeps the values on the logged document, under extra_fields).",
        query(f"topk(20, evidently_unknown_field_rows{{{MODEL}}})", "{{field}}"),
    )


def unknown_fields_rate() -> timeseries.Panel:
    """Fields outside the schema per second, by what the prediction service did with them."""
    return timeseries_panel(
        "Fields outside the schema",
        "Fields outside the schema per second in served requests, by outcome: kept on the logged document, ignored "
        "(UNKNOWN_FIELDS=ignore) or dropped over the 50-per-request bound. With UNKNOWN_FIELDS=reject they are "
        "rejected instead (reason unknown_field, in Rejected inputs by reason).",
        "ops",
        query(f"sum by (outcome) (rate(prediction_unknown_fields_total{{{MODEL}}}[5m]))", "{{outcome}}"),
    )


def build() -> dashboard.Dashboard:
    """Return the data quality dashboard."""
    return (
        new_dashboard(
            UID,
            "Data quality",
            "Are the requests well-formed: missing values, values outside the reference range, unseen categories, and "
            "inputs rejected by validation?",
            ["quality"],
        )
        .with_variable(model_variable("evidently_window_rows"))
        .with_row(row("Window"))
        .with_panel(missing_share())
        .with_panel(out_of_range_share())
        .with_panel(new_category_share())
        .with_panel(rows_per_segment())
        .with_row(row("Validation"))
        .with_panel(rejected_by_reason())
        .with_panel(rejected_share())
        .with_panel(rows_received())
        .with_row(row("Schema changes"))
        .with_panel(new_fields_seen())
        .with_panel(unknown_fields_rate())
    )
