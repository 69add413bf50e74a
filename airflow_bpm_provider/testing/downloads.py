"""How every dialect of the emulator serves a file's bytes: whole, from a ``Range``, or cut short.

Real servers differ here, so the emulator can play each: ``FaultPlan.ranges`` off makes it ignore
``Range`` (a 200 with the whole file, as many BPM servers do), and a truncation fault announces
the full length, sends half of what it owes and closes the connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_bpm_provider.testing.engine import StoredFile
    from airflow_bpm_provider.testing.faults import FaultPlan

# Big enough that one 1 GiB download is a few thousand writes, not tens of thousands.
SERVE_CHUNK = 1 << 20
_RANGE = re.compile(r"^\s*bytes=(\d+)-(\d*)\s*$")


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) of a single ``bytes=N-[M]`` range within ``size``, else None."""
    match = _RANGE.match(header or "")
    if match is None:
        return None
    start = int(match.group(1))
    end = int(match.group(2)) + 1 if match.group(2) else size
    if start >= size or end <= start:
        return None
    return start, min(end, size)


def file_response(
    request: Any,
    stored: StoredFile,
    faults: FaultPlan,
    *,
    media_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """A StreamingResponse for ``stored``: 200, or 206 for a satisfiable ``Range`` when allowed."""
    from fastapi.responses import StreamingResponse

    out = dict(headers or {})
    start, end, status = 0, stored.size, 200
    if faults.ranges:
        out["Accept-Ranges"] = "bytes"
        wanted = requested_range(request.headers.get("range"), stored.size)
        if wanted is not None:
            start, end = wanted
            status = 206
            out["Content-Range"] = f"bytes {start}-{end - 1}/{stored.size}"
            faults.served_ranges.append((request.url.path, start))
    out["Content-Length"] = str(end - start)
    truncated = faults.take(request.method, request.url.path, truncation=True) is not None
    stop = end
    if truncated:
        stop = start + (end - start) // 2
        out["Connection"] = "close"  # the client must see the body end early
    return StreamingResponse(
        byte_range(stored, start, stop),
        status_code=status,
        media_type=media_type or stored.content_type,
        headers=out,
    )


def byte_range(stored: StoredFile, start: int, stop: int) -> Iterator[bytes]:
    """The bytes ``[start, stop)`` of ``stored``, in chunks of about ``SERVE_CHUNK``."""
    position, pending, held = 0, [], 0
    for chunk in stored.chunks(SERVE_CHUNK):
        end = position + len(chunk)
        if end > start and position < stop:
            piece = chunk[max(0, start - position) : min(len(chunk), stop - position)]
            pending.append(piece)
            held += len(piece)
            if held >= SERVE_CHUNK:  # generated content comes in 64 KiB blocks: send fewer, larger writes
                yield b"".join(pending)
                pending, held = [], 0
        position = end
        if position >= stop:
            break
    if pending:
        yield b"".join(pending)
