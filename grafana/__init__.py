"""Grafana dashboards of the stack, generated with grafana-foundation-sdk (`python -m grafana.dashboards`)."""
