"""A stand-in metrics service for tests and benchmarks: an HTTP server in a thread that records POSTed JSON."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from local_stack.processes import free_port


class Recorder:
    """Answers POST with 200 (GET /health too) and keeps every JSON body by path; stoppable and restartable."""

    def __init__(self, port: int | None = None, keep_bodies: bool = True) -> None:
        self.port = port or free_port()
        self.keep_bodies = keep_bodies
        self.bodies: dict[str, list] = {}
        self.counts: dict[str, int] = {}
        # (status, JSON body) every POST gets instead of 200, recording nothing: a service refusing the rows.
        self.refusal: tuple[int, object] | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rows(self, path: str) -> list:
        """Return every item of every JSON list POSTed to `path`, in arrival order."""
        with self._lock:
            return [item for body in self.bodies.get(path, []) for item in (body if isinstance(body, list) else [body])]

    def _record(self, path: str, body: object) -> None:
        with self._lock:
            self.counts[path] = self.counts.get(path, 0) + (len(body) if isinstance(body, list) else 1)
            if self.keep_bodies:
                self.bodies.setdefault(path, []).append(body)

    def start(self) -> Recorder:
        """Listen on the port (again, after a stop)."""
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if len(raw) < length:  # the sender died mid-body (a SIGKILL test): nothing was delivered
                    self.close_connection = True
                    return
                if recorder.refusal is not None:
                    status, answer = recorder.refusal
                    self._answer(status, json.dumps(answer).encode())
                    return
                try:
                    recorder._record(self.path, json.loads(raw or b"null"))
                    self._answer(200, b'{"status": "ok"}')
                except ValueError:
                    self._answer(400, b'{"error": "invalid json"}')

            def do_GET(self) -> None:  # noqa: N802
                self._answer(200, b'{"status": "ok"}')

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="recorder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; connections are refused until `start` is called again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
