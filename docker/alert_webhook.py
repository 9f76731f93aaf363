"""Receive Alertmanager webhook notifications and log each alert as one JSON line on stdout.

`python alert_webhook.py [--host H] [--port 5001]` -- stdlib only. Alertmanager posts to
`/alerts/<severity>` (alertmanager/alertmanager.yml); `docker compose logs -f alert-webhook` then shows
every notification. Replace it with your paging or chat bridge in production.
"""

from __future__ import annotations

import argparse
import json
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY_BYTES = 1024 * 1024  # Alertmanager batches alerts; a megabyte holds thousands of them


def alert_lines(route: str, payload: dict) -> list[str]:
    """Return one compact JSON line per alert of an Alertmanager webhook payload."""
    lines = []
    for alert in payload.get("alerts", []):
        labels, annotations = alert.get("labels", {}), alert.get("annotations", {})
        record = {
            "route": route,
            "status": alert.get("status"),
            "alertname": labels.get("alertname"),
            "severity": labels.get("severity"),
            "model": labels.get("model"),
            "summary": annotations.get("summary"),
            "startsAt": alert.get("startsAt"),
            "receiver": payload.get("receiver"),
        }
        lines.append(json.dumps(record, sort_keys=True))
    return lines


class Handler(BaseHTTPRequestHandler):
    """POST /alerts/<severity> logs the alerts; GET /health answers 200."""

    server_version = "alert-webhook"

    def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
        if self.path == "/health":
            self._reply(HTTPStatus.OK, {"status": "ok"})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802 -- http.server's naming
        if not self.path.startswith("/alerts/"):
            self._reply(HTTPStatus.NOT_FOUND, {"error": "post to /alerts/<severity>"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body must be 0..{MAX_BODY_BYTES} bytes"})
            return
        try:
            payload = json.loads(self.rfile.read(length) or b"{}")
            lines = alert_lines(self.path.removeprefix("/alerts/"), payload)
        except (ValueError, AttributeError) as exc:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": f"not an Alertmanager webhook payload: {exc}"})
            return
        for line in lines:
            print(line, flush=True)
        self._reply(HTTPStatus.OK, {"received": len(lines)})

    def _reply(self, status: HTTPStatus, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 -- http.server's signature
        """Keep stdout for alerts: request lines are noise here."""


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=5001, help="port to listen on")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(json.dumps({"event": "listening", "port": server.server_address[1]}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
