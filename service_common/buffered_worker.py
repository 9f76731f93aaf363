"""gunicorn's gthread worker, except that a pool thread only ever gets a request that has fully arrived.

gthread hands every new connection to a pool thread at once, and the thread then blocks reading the
request: a few dozen connections that send nothing, or a head one byte at a time, hold every thread
(docs/reliability.md "Slow and idle clients"). Here the worker's event loop (the selector gthread
already runs for kept-alive connections) reads the head, and a body up to `MAX_BUFFERED_BODY`
(declared or chunked; `Expect: 100-continue` is answered here), without blocking; only then does a
thread parse and serve it. A connection whose head has not arrived within `HEAD_TIMEOUT`, or whose
body not within `BODY_TIMEOUT` after it, is closed. The threads, the app and the background threads
are exactly gthread's: nothing is patched. Errors gunicorn answers itself (414 request line too
long, 431 headers too large, 400 for an unparsable request) get the contract's JSON body instead of
gunicorn's HTML page. An answer given without reading the whole body (413, 415, 401 ...) says
`Connection: close` when gunicorn will close the connection after it: gunicorn drains at most 64 KiB of a
body left unread before reusing a connection, and a client told "keep-alive" would send its next request
into a closed socket. Written against gunicorn 27.0.1 (the pin): it relies on `ThreadWorker.accept`,
`on_client_socket_readable`, `murder_pending`, `handle`, `load_wsgi`, `TConn`, the body readers
(`LengthReader.length`, `ChunkedReader.parser`) and the response's `force_close`.
"""

from __future__ import annotations

import errno
import html
import json
import re
import selectors
import time
from functools import partial
from typing import Any

from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.workers.gthread import TConn, ThreadWorker

HEAD_TIMEOUT = 5.0  # seconds for a whole request head, from the connection's first wait
BODY_TIMEOUT = 10.0  # seconds for a whole buffered body, from the end of its head
MAX_HEAD = 64 * 1024  # a head larger than this (real ones are < 8 KiB) closes the connection
# Bodies up to this (declared or chunked) are read by the event loop: every /predict body, the
# forwarder's batches. A larger declared one is read by the thread, as in gthread (only the metrics
# service accepts one, up to 32 MiB; the prediction service refuses it from its Content-Length).
MAX_BUFFERED_BODY = 1024 * 1024
_SCAN_INTERVAL = 0.5  # how often deadlines are checked
# The most of an unread body gunicorn drains to keep a connection (gunicorn.http.parser._DRAIN_MAX_BYTES);
# with more left it closes the connection after the answer.
DRAIN_MAX_BYTES = 64 * 1024

_END_OF_HEAD = b"\r\n\r\n"
# A line ended by a bare LF: gunicorn refuses such a head (400 "bare LF as line terminator"), and it never
# ends with CRLF CRLF, so waiting for that would close the connection at the deadline without an answer.
_BARE_LF = re.compile(rb"(?<!\r)\n")
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding[ \t]*:[^\r\n]*chunked", re.IGNORECASE)
_EXPECT_CONTINUE = re.compile(rb"\r\nexpect[ \t]*:[ \t]*100-continue[ \t]*(?=\r\n)", re.IGNORECASE)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def chunked_end(buffer: bytes | bytearray, start: int) -> int | None:
    """Return the offset just past a whole chunked body that begins at `start`, or None while incomplete."""
    pos = start
    while True:
        eol = buffer.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(bytes(buffer[pos:eol]).split(b";", 1)[0].strip(), 16)
        except ValueError:
            return len(buffer)  # malformed: hand it over, gunicorn's parser answers 400
        if size == 0:  # the last chunk; optional trailers end with an empty line
            end = buffer.find(_END_OF_HEAD, eol)
            return None if end < 0 else end + len(_END_OF_HEAD)
        pos = eol + 2 + size + 2
        if pos > len(buffer):
            return None


_HTML_MESSAGE = re.compile(r"</h1>\s*(.*?)\s*</body>", re.DOTALL)
# The field a gunicorn error is about, by status (the contract names a field in every error).
_ERROR_FIELD = {414: "request_line", 431: "headers", 417: "headers", 501: "headers"}


def json_error_response(data: bytes) -> bytes:
    """Rewrite gunicorn's HTML error response (`util.write_error`) as the contract's JSON error body."""
    head, _, page = data.partition(b"\r\n\r\n")
    try:
        _, code, phrase = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        status = int(code)
    except ValueError:
        return data  # not the page we know: send it as it is
    found = _HTML_MESSAGE.search(page.decode("latin-1"))
    message = html.unescape(found.group(1)) if found else ""
    body = json.dumps(
        {
            "error": phrase.lower(),
            "details": [
                {
                    "field": _ERROR_FIELD.get(status, "request"),
                    "message": message or phrase,
                    "reason": phrase.lower().replace(" ", "_"),
                }
            ],
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _JsonErrorSocket:
    """The client socket as gunicorn's error writer sees it: what it sends is rewritten as JSON."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(json_error_response(bytes(data)))

    def send(self, data: bytes) -> int:
        self.sendall(data)
        return len(data)


def body_left_beyond_drain(wsgi_environ: dict[str, Any]) -> bool:
    """Return whether the request's body has more unread than gunicorn drains before reusing the connection."""
    reader = getattr(wsgi_environ.get("wsgi.input"), "reader", None)
    if isinstance(reader, LengthReader):
        return reader.length > DRAIN_MAX_BYTES
    if isinstance(reader, ChunkedReader):
        return reader.parser is not None  # not read to its last chunk: what is left is unknown
    return False


class CloseWhenBodyLeft:
    """WSGI wrapper: an answer that leaves more of the body unread than gunicorn drains says `Connection: close`.

    Without it the answer (a 413 for a body over the limit, a 415 or 401 sent before reading it) said
    `Connection: keep-alive` and gunicorn closed the connection anyway: a client reusing it (requests,
    httpx) lost its next request to "Remote end closed connection without response".
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        # The worker hooks reach the Flask app through `worker.wsgi` (`extensions` ...).
        return getattr(self.app, name)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        result = self.app(environ, start_response)
        # gunicorn sends the head at the first body write, after this returns: the header is still open.
        response = getattr(start_response, "__self__", None)
        if hasattr(response, "force_close") and body_left_beyond_drain(environ):
            response.force_close()
        return result


class BufferingThreadWorker(ThreadWorker):
    """gthread with request heads (and small bodies) read by the event loop under deadlines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading: dict[TConn, None] = {}  # connections whose request is still arriving
        self._next_scan = 0.0

    def load_wsgi(self) -> None:
        """Load the app, wrapped so that an answer leaving a large body unread closes its connection openly."""
        super().load_wsgi()
        self.wsgi = CloseWhenBodyLeft(self.wsgi)

    def accept(self, listener: Any) -> None:
        """Accept a connection and wait for its request in the event loop, not in a thread."""
        if self.cfg.is_ssl:  # TLS must be unwrapped before a head can be read: gthread's own path
            super().accept(listener)
            return
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self._await_request(TConn(self.cfg, sock, addr, listener.getsockname()))  # TConn makes it non-blocking

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:
        """A kept-alive connection has data: buffer its next request too (it may be just as slow).

        The data is there now: it is read at once (a whole small request is dispatched without another
        turn of the loop), and the socket stays registered, its callback swapped (one `epoll_ctl`
        instead of an unregister and a register per request).
        """
        self.keepalived_conns.remove(conn)
        self._await_request(conn, registered=True)
        self._on_readable(conn, client)

    def _await_request(self, conn: TConn, registered: bool = False) -> None:
        conn.buffered = bytearray()
        conn.body_start = 0
        conn.body_end = None  # where the buffered body ends ("chunked": when its last chunk arrives)
        conn.deadline = time.monotonic() + HEAD_TIMEOUT
        self.reading[conn] = None
        if registered:
            self.poller.modify(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))
        else:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn: TConn, _client: Any) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away before its request was whole
            self._drop(conn)
            return
        conn.buffered += data
        if conn.body_end is None and not self._read_head(conn):
            return
        if conn.body_end == "chunked":
            end = chunked_end(conn.buffered, conn.body_start)
            if end is not None or len(conn.buffered) - conn.body_start > MAX_BUFFERED_BODY:
                self._dispatch(conn)
        elif len(conn.buffered) >= conn.body_end:
            self._dispatch(conn)

    def _read_head(self, conn: TConn) -> bool:
        """Once the head is whole, decide how its body is read; return whether the loop reads it."""
        end = conn.buffered.find(_END_OF_HEAD)
        if end < 0:
            if len(conn.buffered) > MAX_HEAD:
                self._drop(conn)
            elif _BARE_LF.search(conn.buffered):
                self._dispatch(conn)  # gunicorn's parser answers its 400 (as JSON, see handle_error)
            return False
        head = bytes(conn.buffered[: end + 2])
        expect = _EXPECT_CONTINUE.search(head)
        if expect:
            # Answered here so the client sends its body to the loop; the header goes, so gunicorn
            # does not send a second 100.
            del conn.buffered[expect.start() : expect.end()]
            end -= expect.end() - expect.start()
            try:
                conn.sock.send(_CONTINUE)
            except OSError:
                self._drop(conn)
                return False
        conn.body_start = end + len(_END_OF_HEAD)
        length = _CONTENT_LENGTH.search(head)
        if _CHUNKED.search(head):
            conn.body_end = "chunked"
        elif length is not None and int(length.group(1)) <= MAX_BUFFERED_BODY:
            conn.body_end = conn.body_start + int(length.group(1))
        else:
            self._dispatch(conn)  # no body, or a large one the thread reads
            return False
        conn.deadline = time.monotonic() + BODY_TIMEOUT
        return True

    def _dispatch(self, conn: TConn) -> None:
        self.poller.unregister(conn.sock)
        del self.reading[conn]
        conn.prefetched, conn.buffered = bytes(conn.buffered), None
        conn.data_ready = True  # gthread's handle() must not wait for data again
        self.enqueue_req(conn)

    def _drop(self, conn: TConn) -> None:
        self.poller.unregister(conn.sock)
        self.reading.pop(conn, None)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Close connections whose request missed its deadline (gthread's own pending ones too)."""
        super().murder_pending()
        now = time.monotonic()
        if now < self._next_scan:
            return
        self._next_scan = now + _SCAN_INTERVAL
        for conn in [c for c in self.reading if c.deadline <= now]:
            self._drop(conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer what gunicorn itself refuses (414, 431, a bad request line ...) with the contract's JSON body."""
        super().handle_error(req, _JsonErrorSocket(client), addr, exc)

    def handle(self, conn: TConn) -> Any:
        """Serve a connection in a pool thread, its buffered bytes handed to gunicorn's parser first."""
        prefetched = getattr(conn, "prefetched", b"")
        if prefetched:
            conn.prefetched = b""
            conn.sock.setblocking(True)
            conn.init()  # creates the parser on a new connection; a kept-alive one keeps its own
            conn.parser.unreader.unread(prefetched)
        return super().handle(conn)
