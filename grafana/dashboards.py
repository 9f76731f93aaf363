"""Write the dashboards' JSON into grafana/dashboards/ (`python -m grafana.dashboards [--check]`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard, RowPanel

from grafana import data_drift, data_quality, model_quality, service_health

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
# File name -> builder; the file names are what the Grafana provider loads.
BUILDERS = {
    "service-health.json": service_health.build,
    "data-drift.json": data_drift.build,
    "data-quality.json": data_quality.build,
    "model-quality.json": model_quality.build,
}


def _number_panels(board: Dashboard) -> Dashboard:
    # Stable ids in layout order: Grafana keys panel links and repeats on them.
    for number, panel in enumerate(board.panels or [], start=1):
        panel.id_val = number
        if isinstance(panel, RowPanel):
            panel.collapsed = False
    return board


def render(name: str) -> str:
    """Return the JSON text of dashboard file `name`, keys sorted."""
    board = _number_panels(BUILDERS[name]().build())
    return json.dumps(board, cls=JSONEncoder, sort_keys=True, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write every dashboard, or with --check report the files that differ from the generator."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare the committed files; exit 1 on a diff")
    parser.add_argument("--out-dir", type=Path, default=DASHBOARDS_DIR, help="where to write the JSON files")
    args = parser.parse_args(argv)
    stale = []
    for name in BUILDERS:
        path = args.out_dir / name
        text = render(name)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print(f"out of date (run python -m grafana.dashboards): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
