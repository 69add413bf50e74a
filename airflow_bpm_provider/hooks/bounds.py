"""Limits on what a server controls: how long an answer may take, how big it may get, its size header.

Both transports read bodies piece by piece through these checks, so a body trickling a byte a
second, a gzip answer inflating to gigabytes or a nonsense ``Content-Length`` fails fast, with
memory bounded by the cap plus one piece, instead of hanging or filling the worker's memory.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import Any

DEFAULT_RESPONSE_TIMEOUT = 300.0
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
DEFAULT_STALL_TIMEOUT = 60.0
# A streamed download must deliver at least this many bytes per second, averaged over each
# ``stall_timeout`` window: slow links pass, a server dripping bytes to hold the worker does not.
MIN_DOWNLOAD_RATE = 1024
# No real file is a petabyte; a bigger Content-Length is a broken or hostile server.
ABSURD_LENGTH = 1 << 50
READ_PIECE = 64 * 1024


class BodyError(Exception):
    """A body could not be read within the limits. ``kind`` is one of the TransportError kinds."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class BodyLimits:
    """``response_timeout``: seconds for a whole non-streamed answer (connect, headers, body).
    ``max_response_bytes``: decoded bytes a non-streamed answer may have.
    ``stall_timeout``: the window over which a streamed download must keep ``MIN_DOWNLOAD_RATE``.
    """

    response_timeout: float = DEFAULT_RESPONSE_TIMEOUT
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    stall_timeout: float = DEFAULT_STALL_TIMEOUT


def parse_content_length(value: str | None) -> int | None:
    """The byte count a ``Content-Length`` announces; ValueError with a clear message when it is
    not one (negative, not a number, differing repeated values, absurdly large)."""
    if value is None:
        return None
    values = {part.strip() for part in str(value).split(",")}
    if len(values) != 1:
        raise ValueError(f"Content-Length {_show(value)} holds differing values")
    text = values.pop()
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"Content-Length {_show(value)} is not a byte count")
    length = int(text)
    if length > ABSURD_LENGTH:
        raise ValueError(f"Content-Length {_show(value)} is absurdly large")
    return length


def check_announced_length(
    value: str | None, limits: BodyLimits, *, encoded: bool, stream: bool
) -> int | None:
    """Validate ``Content-Length`` before reading; refuse at once an identity body over the cap."""
    try:
        length = parse_content_length(value)
    except ValueError as exc:
        raise BodyError(str(exc), kind="malformed") from None
    if length is not None and not stream and not encoded and length > limits.max_response_bytes:
        raise BodyError(_too_large(limits, f"it announces {length} bytes"), kind="too_large")
    return length


class BodyBudget:
    """Counts a non-streamed body against the cap and the deadline while it arrives."""

    def __init__(self, limits: BodyLimits, started: float) -> None:
        self.limits = limits
        self.deadline = started + limits.response_timeout
        self.size = 0

    def add(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self.limits.max_response_bytes:
            raise BodyError(_too_large(self.limits, "the decoded body passed the cap"), kind="too_large")
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise BodyError(
                f"the answer took longer than response_timeout={self.limits.response_timeout:g} s "
                f"({self.size} bytes had arrived)",
                kind="broken",
            )


class Progress:
    """Checks that a streamed download keeps moving (see ``MIN_DOWNLOAD_RATE``)."""

    def __init__(self, stall_timeout: float) -> None:
        self.window = stall_timeout
        self.window_start = time.monotonic()
        self.window_bytes = 0

    def add(self, size: int) -> None:
        self.window_bytes += size
        now = time.monotonic()
        elapsed = now - self.window_start
        if elapsed < self.window:
            return
        if self.window_bytes < MIN_DOWNLOAD_RATE * elapsed:
            raise BodyError(
                f"the download stalled: {self.window_bytes} bytes in {elapsed:.1f} s, less than "
                f"{MIN_DOWNLOAD_RATE} bytes/s over stall_timeout={self.window:g} s",
                kind="broken",
            )
        self.window_start, self.window_bytes = now, 0


class BoundedDecoder:
    """Undoes ``Content-Encoding`` gzip/deflate without ever producing more than asked for.

    Both transports read raw bytes and inflate them here with zlib's ``max_length``: httpx would
    inflate a whole 64 KiB network piece at once (up to 64 MiB), and neither library notices a
    gzip stream that ends early inside a complete HTTP message.
    """

    def __init__(self, encoding: str | None) -> None:
        codings = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise BodyError(f"unsupported Content-Encoding {_show(encoding or '')}", kind="malformed")
        self.coding = codings[0] if codings else None
        self._zlib = self._new()
        self._fed = False

    def _new(self, raw_deflate: bool = False) -> Any:
        if self.coding is None:
            return None
        if self.coding in ("gzip", "x-gzip"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS if raw_deflate else zlib.MAX_WBITS)

    @property
    def pending(self) -> bool:
        """Whether input already fed may still give output (call ``decode(b"", n)`` for it)."""
        z = self._zlib
        return z is not None and bool(z.unconsumed_tail or (z.eof and z.unused_data))

    def decode(self, data: bytes, limit: int) -> bytes:
        """At most ``limit`` decoded bytes; the rest stays inside for the next call."""
        if self._zlib is None:
            return data
        out = bytearray()
        try:
            while len(out) < limit:
                z = self._zlib
                if z.eof:
                    data = z.unused_data + data
                    if not data or self.coding == "deflate":
                        break  # deflate has one stream; bytes after its end are ignored
                    self._zlib = self._new()  # the next member of a multi-member gzip body
                    continue
                data = z.unconsumed_tail + data
                if not data:
                    break
                out += self._inflate(data, limit - len(out))
                data = b""
                if not self._zlib.eof and not self._zlib.unconsumed_tail:
                    break
        except zlib.error as exc:
            raise BodyError(f"the {self.coding} body cannot be decoded: {exc}", kind="malformed") from None
        return bytes(out)

    def _inflate(self, data: bytes, limit: int) -> bytes:
        first, self._fed = not self._fed, True
        try:
            return self._zlib.decompress(data, limit)
        except zlib.error:
            if not (first and self.coding == "deflate"):
                raise
            # Some servers send raw deflate without the zlib header RFC 9110 asks for.
            self._zlib = self._new(raw_deflate=True)
            return self._zlib.decompress(data, limit)

    def finish(self) -> None:
        if self._zlib is not None and self._fed and not self._zlib.eof:
            raise BodyError(f"the {self.coding} body is cut short", kind="broken")


class BodyReader:
    """Collects a non-streamed body from raw network pieces, within the cap and the deadline."""

    def __init__(self, encoding: str | None, limits: BodyLimits, started: float) -> None:
        self.decoder = BoundedDecoder(encoding)
        self.budget = BodyBudget(limits, started)
        self.limits = limits
        self.body = bytearray()

    def feed(self, raw: bytes) -> None:
        piece = self.decoder.decode(raw, self.limits.max_response_bytes - self.budget.size + 1)
        self.budget.add(piece)
        self.body += piece
        self.budget.check_time()

    def finish(self) -> bytes:
        self.decoder.finish()
        return bytes(self.body)


def _too_large(limits: BodyLimits, what: str) -> str:
    return f"the answer is too large ({what}; max_response_bytes={limits.max_response_bytes})"


def _show(value: str) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:39] + "…")
