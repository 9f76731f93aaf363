"""The buffering worker's chunked-body framing: when a chunked body is whole (the real-process cases are in
tests/reliability/test_slow_clients.py)."""

from __future__ import annotations

import pytest

from service_common.buffered_worker import chunked_end

WHOLE = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    ("buffer", "start", "end"),
    [
        (WHOLE, 0, len(WHOLE)),
        (b"HEAD" + WHOLE, 4, 4 + len(WHOLE)),
        (WHOLE + b"POST /next", 0, len(WHOLE)),  # a pipelined request behind it stays outside
        (b"0\r\nX-Trailer: 1\r\n\r\n", 0, 19),
        (b"5\r\nhel", 0, None),
        (b"5\r\nhello\r\n", 0, None),
        (b"5\r\nhello\r\n0\r\n", 0, None),
        (b"5\r\n0\r\n\r\n\r\n", 0, None),  # "0\r\n\r\n" inside a chunk's data is data, not the end
        (b"zz\r\n", 0, 4),  # malformed size: handed over whole, gunicorn answers 400
    ],
)
def test_chunked_end(buffer: bytes, start: int, end: int | None) -> None:
    assert chunked_end(buffer, start) == end
