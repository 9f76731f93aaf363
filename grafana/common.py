"""Building blocks shared by every dashboard: datasource, queries, panel kinds, links, variables."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DynamicConfigValue,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.dashboard import Threshold as ThresholdStep
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

# The uid grafana/provisioning/datasources/prometheus.yml gives the Prometheus datasource.
DATASOURCE_UID = "prometheus"
DATASOURCE = DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
TAG = "ml-monitoring"
# The batch flow's HTML reports, served by the reports container (port 8080 in the contract).
REPORTS_URL = "http://localhost:8080/"
MODEL = 'model="$model"'


def query(expr: str, legend: str = "__auto", ref: str = "A") -> prometheus.Dataquery:
    """Return a Prometheus range query against the provisioned datasource."""
    return (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend)
        .ref_id(ref)
        .range()
        .datasource({"type": "prometheus", "uid": DATASOURCE_UID})
    )


def _legend() -> common_builders.VizLegendOptions:
    return (
        common_builders.VizLegendOptions()
        .display_mode(common_models.LegendDisplayMode.LIST)
        .placement(common_models.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def _tooltip() -> common_builders.VizTooltipOptions:
    return (
        common_builders.VizTooltipOptions()
        .mode(common_models.TooltipDisplayMode.MULTI)
        .sort(common_models.SortOrder.DESCENDING)
    )


def timeseries_panel(title: str, description: str, unit: str, *queries: prometheus.Dataquery) -> timeseries.Panel:
    """Return a time series panel of `queries`, half the dashboard wide."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .legend(_legend())
        .tooltip(_tooltip())
        .line_width(1)
        .fill_opacity(10)
        .span_nulls(False)
        .height(8)
        .span(12)
    )
    for target in queries:
        panel = panel.with_target(target)
    return panel


def dashed_series(panel: timeseries.Panel, *refs: str) -> timeseries.Panel:
    """Draw the series of the queries `refs` as dashed lines (thresholds and minimums)."""
    for ref in refs:
        panel = panel.override_by_query(
            ref,
            [DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})],
        )
    return panel


def threshold_line(panel: timeseries.Panel, value: float, color: str = "red") -> timeseries.Panel:
    """Draw a dashed horizontal line at `value` (an alert threshold)."""
    steps = [ThresholdStep(value=None, color="transparent"), ThresholdStep(value=value, color=color)]
    return panel.thresholds(dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)).thresholds_style(
        common_builders.GraphThresholdsStyleConfig().mode(common_models.GraphTresholdsStyleMode.DASHED)
    )


def _reduce_last() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def stat_panel(title: str, description: str, unit: str, *queries: prometheus.Dataquery) -> stat.Panel:
    """Return a single-value panel showing the last value of `queries`."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .reduce_options(_reduce_last())
        .graph_mode(common_models.BigValueGraphMode.AREA)
        .color_mode(common_models.BigValueColorMode.BACKGROUND)
        .height(4)
        .span(6)
    )
    for target in queries:
        panel = panel.with_target(target)
    return panel


def state_timeline_panel(title: str, description: str, *queries: prometheus.Dataquery) -> statetimeline.Panel:
    """Return a state timeline (one lane per series) for 0/1 verdicts."""
    panel = (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .unit("none")
        .datasource(DATASOURCE)
        .legend(_legend())
        .tooltip(_tooltip())
        .fill_opacity(70)
        .line_width(0)
        .height(8)
        .span(12)
    )
    for target in queries:
        panel = panel.with_target(target)
    return panel


def table_panel(title: str, description: str, *queries: prometheus.Dataquery) -> table.Panel:
    """Return a table of the labels and last value of `queries` (instant)."""
    panel = (
        (table.Panel().title(title).description(description).unit("none").datasource(DATASOURCE).show_header(True))
        .height(6)
        .span(12)
    )
    for target in queries:
        panel = panel.with_target(target.instant().format(PromQueryFormat.TABLE))
    return panel


def value_text(mapping: dict[int, tuple[str, str]]) -> list[ValueMap]:
    """Return value mappings {value: (text, colour)} for 0/1 states."""
    options = {
        str(value): ValueMappingResult(text=text, color=color, index=index)
        for index, (value, (text, color)) in enumerate(sorted(mapping.items()))
    }
    return [ValueMap(options=options)]


def model_variable(metric: str) -> dashboard.QueryVariable:
    """Return the `model` template variable over the models `metric` is exported for."""
    return (
        dashboard.QueryVariable("model")
        .label("Model")
        .description("The model whose monitoring is shown.")
        .datasource(DATASOURCE)
        .query(f"label_values({metric}, model)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )


def links() -> list[dashboard.DashboardLink]:
    """Return links to the other dashboards of the stack and to the batch reports."""
    return [
        dashboard.DashboardLink("Model monitoring dashboards")
        .type(DashboardLinkType.DASHBOARDS)
        .tags([TAG])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True),
        dashboard.DashboardLink("Batch reports")
        .type(DashboardLinkType.LINK)
        .url(REPORTS_URL)
        .icon("doc")
        .tooltip("Evidently HTML reports of the batch monitoring flow")
        .target_blank(True),
    ]


def new_dashboard(uid: str, title: str, description: str, tags: list[str]) -> dashboard.Dashboard:
    """Return a dashboard with the stack's uid, tags, links, time range and refresh."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG, *tags])
        .timezone("utc")
        .time("now-3h", "now")
        .refresh("30s")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .readonly()
        .links(links())
    )


def row(title: str) -> dashboard.Row:
    """Return a row header grouping the panels that follow it."""
    return dashboard.Row(title)
