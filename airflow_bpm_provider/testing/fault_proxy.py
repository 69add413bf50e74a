"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1, to put a flaky network in front of the emulator.

from airflow_bpm_provider.testing import Emulator
from airflow_bpm_provider.testing.fault_proxy import FaultProxy

with Emulator.start() as emu, FaultProxy.start(emu.url, rate=0.1, seed=7) as proxy:
    ...  # point connections at proxy.url instead of emu.url
    proxy.force("reset", after="^POST .*/ProcessInstance/start$")  # break the call after a start
    print(proxy.counts())   # every fault injected, by kind

A chosen share of requests (seeded, so a run can be repeated) gets one fault:

- ``reset``: the server's answer starts, then the connection is reset (RST) mid-body
- ``truncate``: the answer stops short of its Content-Length or chunked end, then a clean close
- ``5xx``: 500, 502 or 503 in place of the answer, the request never reaches the server; 504
  after the server answered (a gateway that gave up), so the server has acted
- ``429``: Too Many Requests with a small ``Retry-After``; the request never reaches the server
- ``latency``: the answer is held back for a moment, then delivered whole
- ``lost``: the request reaches the server, which acts and answers, and the client's connection
  is closed before a byte of that answer is sent

Every exchange is recorded (:class:`Exchange`): whether the server received the request, what it
answered, and whether the client got that whole answer. Keep-alive is kept on both sides: a
request without a fault, or with a status fault, leaves the client's connection open.

``python -m airflow_bpm_provider.testing.fault_proxy --upstream URL`` runs one in the foreground.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import socket
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

RESET, TRUNCATE, STATUS, RATE_LIMIT, LATENCY, LOST = "reset", "truncate", "5xx", "429", "latency", "lost"
KINDS = (RESET, TRUNCATE, STATUS, RATE_LIMIT, LATENCY, LOST)
DEFAULT_WEIGHTS: Mapping[str, float] = {kind: 1.0 for kind in KINDS}
STATUSES = (500, 502, 503, 504)
FORWARDED_STATUSES = frozenset({504})  # a gateway timeout: the server got the request and acted
REASONS = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
MAX_HEAD = 64 * 1024
MAX_BODY_HELD = 16 * 1024 * 1024  # a chunked answer held to be cut; longer ones are cut at this point
PIECE = 64 * 1024
UPSTREAM_IDLE = 2.0  # uvicorn drops idle keep-alive connections after 5 s: reconnect before that


class ProtocolError(Exception):
    """The peer did not speak HTTP/1.1 as the proxy expects."""


@dataclass
class Exchange:
    """One request through the proxy and what became of it."""

    number: int
    method: str
    path: str  # without the query string
    fault: str | None = None
    detail: str | None = None  # "503", "Retry-After 1", "0.4 s", "cut at 120 of 300 bytes", ...
    forwarded: bool = False  # the server received the request
    status: int | None = None  # what the server answered (None: never asked, or no answer)
    delivered: bool = False  # the client got the server's whole answer
    request_headers: tuple[tuple[str, str], ...] = ()
    reply_headers: tuple[tuple[str, str], ...] = ()  # the server's, as it sent them
    finished: bool = field(default=False, compare=False)  # the proxy is done with it

    @property
    def answer_lost(self) -> bool:
        """The server received the request and answered, but the client never saw that answer."""
        return self.forwarded and self.status is not None and not self.delivered


@dataclass
class _Rule:
    kind: str
    path_contains: str
    method: str | None
    times: int
    status: int | None
    after: re.Pattern[str] | None  # armed by a request whose "METHOD /path" matches (then ``skip`` pass)
    skip: int
    armed: bool


@dataclass
class _Decision:
    kind: str | None
    status: int = 0
    retry_after: str | None = None
    delay: float = 0.0
    cut: float = 0.0  # share of the body sent before cutting


@dataclass
class _Head:
    first_line: str
    headers: list[tuple[str, str]]
    raw: bytes

    def get(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def has_token(self, name: str, token: str) -> bool:
        return any(
            token in (part.strip().lower() for part in value.split(","))
            for key, value in self.headers
            if key.lower() == name
        )


@dataclass
class FaultProxy:
    """The proxy; ``rate`` and ``weights`` may be changed while it runs (e.g. ``rate = 0`` to pause)."""

    upstream: str
    rate: float = 0.1
    seed: int = 0
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    retry_after: Sequence[str] = ("0", "1")
    latency: tuple[float, float] = (0.2, 0.8)
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {self.upstream!r}")
        unknown = set(self.weights) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
        if not 0 <= self.rate <= 1:
            raise ValueError(f"rate must be between 0 and 1, got {self.rate}")
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or 80
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._exchanges: list[Exchange] = []
        self._rules: list[_Rule] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._clients: set[asyncio.Task[Any]] = set()
        self.connections = 0  # client connections accepted: keep-alive reuse shows as few
        self.errors: list[str] = []  # tracebacks of the proxy's own failures (none expected)

    # ---- life cycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def start(cls, upstream: str, **options: Any) -> FaultProxy:
        proxy = cls(upstream, **options)
        proxy.serve_in_background()
        return proxy

    def serve_in_background(self, timeout: float = 10.0) -> None:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve_client, self.host, self.port)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="bpm-fault-proxy", daemon=True)
        self._thread.start()
        if not started.wait(timeout) or failure:
            raise RuntimeError(f"the fault proxy did not start on {self.host}:{self.port}") from (
                failure[0] if failure else None
            )

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._clients):
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        thread.join(timeout=10)
        self._loop = self._thread = self._server = None

    def __enter__(self) -> FaultProxy:
        if self._thread is None:
            self.serve_in_background()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what happened ------------------------------------------------------------------------

    def exchanges(self, settle: float = 2.0) -> list[Exchange]:
        return self.exchanges_since(0, settle)

    def mark(self) -> int:
        """A position in the record, to read only what came after it with ``exchanges_since``."""
        with self._lock:
            return len(self._exchanges)

    def exchanges_since(self, mark: int, settle: float = 2.0) -> list[Exchange]:
        """The exchanges after ``mark``, once the proxy is done with each (waiting ``settle`` s at most).

        A client may hold the last byte of an answer a moment before the proxy records it as delivered.
        """
        with self._settled:
            self._settled.wait_for(lambda: all(e.finished for e in self._exchanges[mark:]), timeout=settle)
            return self._exchanges[mark:]

    def counts(self, since: int = 0) -> Counter[str]:
        """Faults injected, by kind."""
        with self._lock:
            return Counter(e.fault for e in self._exchanges[since:] if e.fault is not None)

    # ---- the decision -------------------------------------------------------------------------

    def force(
        self,
        kind: str,
        path_contains: str = "",
        *,
        method: str | None = None,
        times: int = 1,
        status: int | None = None,
        after: str | None = None,
        skip: int = 0,
    ) -> None:
        """Fault the next ``times`` requests whose path contains ``path_contains``, whatever the rate.

        With ``after`` (a regular expression searched in ``"METHOD /path"``), only once such a
        request has passed, and then ``skip`` more: ``force("reset", after="^POST .*/start$")``
        breaks the call that follows a start.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status}")
        pattern = re.compile(after) if after is not None else None
        rule = _Rule(
            kind, path_contains, method.upper() if method else None, times, status, pattern, skip, not after
        )
        with self._lock:
            self._rules.append(rule)

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    def _forced(self, method: str, path: str) -> _Rule | None:
        fired = None
        for rule in list(self._rules):
            if not rule.armed:
                if rule.after is not None and rule.after.search(f"{method} {path}"):
                    rule.armed = True
                continue
            if fired is not None or rule.path_contains not in path or rule.method not in (None, method):
                continue
            if rule.skip > 0:
                rule.skip -= 1
                continue
            rule.times -= 1
            if rule.times <= 0:
                self._rules.remove(rule)
            fired = rule
        return fired

    def _decide(self, method: str, path: str) -> _Decision:
        with self._lock:
            rng = self._rng
            # Draw the same numbers whatever the outcome, so one seed gives one sequence of faults.
            roll, pick, status, retry_after, delay, cut = (rng.random() for _ in range(6))
            rule = self._forced(method, path)
            weights = {k: w for k, w in self.weights.items() if w > 0}
            if rule is None and (roll >= self.rate or not weights):
                return _Decision(None)
            kinds, values = zip(*sorted(weights.items()), strict=True) if weights else ((), ())
            total = sum(values)
            kind, acc = kinds[-1] if kinds else LATENCY, 0.0
            for name, weight in zip(kinds, values, strict=True):
                acc += weight / total
                if pick < acc:
                    kind = name
                    break
            if rule is not None:
                kind = rule.kind
            low, high = self.latency
            return _Decision(
                kind,
                status=rule.status
                if rule is not None and rule.status is not None
                else STATUSES[int(status * len(STATUSES)) % len(STATUSES)],
                retry_after=self.retry_after[int(retry_after * len(self.retry_after)) % len(self.retry_after)]
                if self.retry_after
                else None,
                delay=low + (high - low) * delay,
                cut=cut,
            )

    def _record(self, method: str, target: str) -> Exchange:
        with self._lock:
            exchange = Exchange(len(self._exchanges) + 1, method, urlsplit(target).path)
            self._exchanges.append(exchange)
            return exchange

    # ---- one client connection ----------------------------------------------------------------

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        self.connections += 1
        upstream = _Upstream(self._upstream_host, self._upstream_port)
        try:
            while True:
                head = await _read_head(reader)
                if head is None:
                    return
                body = await _read_request_body(reader, head)
                exchange = self._record(*_request_line(head))
                try:
                    keep_open = await self._exchange(exchange, head, body, writer, upstream)
                finally:
                    with self._settled:
                        exchange.finished = True
                        self._settled.notify_all()
                if not keep_open:
                    return
        except (ProtocolError, ConnectionError, asyncio.IncompleteReadError, OSError):
            return
        except asyncio.CancelledError:
            return
        except Exception:  # the proxy's own bug: recorded, so a campaign cannot blame the client
            import traceback

            with self._lock:
                self.errors.append(traceback.format_exc())
        finally:
            self._clients.discard(task)
            upstream.close()
            if not writer.is_closing():
                writer.close()

    async def _exchange(
        self, exchange: Exchange, head: _Head, body: bytes, client: asyncio.StreamWriter, upstream: _Upstream
    ) -> bool:
        """Answer one request; False when the client's connection must close afterwards."""
        method = exchange.method
        exchange.request_headers = tuple(head.headers)
        decision = self._decide(method, exchange.path)
        exchange.fault = decision.kind
        client_wants_close = head.has_token("connection", "close")

        if decision.kind == RATE_LIMIT or (
            decision.kind == STATUS and decision.status not in FORWARDED_STATUSES
        ):
            status = 429 if decision.kind == RATE_LIMIT else decision.status
            headers = (
                {"Retry-After": decision.retry_after}
                if decision.kind == RATE_LIMIT and decision.retry_after
                else {}
            )
            exchange.detail = f"{status}" + (f", Retry-After {decision.retry_after}" if headers else "")
            await _send_status(client, status, headers, close=client_wants_close)
            return not client_wants_close

        if decision.kind == LATENCY:
            exchange.detail = f"{decision.delay:.2f} s"
            await asyncio.sleep(decision.delay)

        reply = await upstream.send(head, body)
        exchange.forwarded = True
        if reply is None:  # the server dropped the connection without answering
            return False
        exchange.status = reply.status
        exchange.reply_headers = tuple(reply.head.headers)
        no_body = method == "HEAD" or reply.status in (204, 304) or 100 <= reply.status < 200
        server_closes = reply.head.has_token("connection", "close") or (
            not no_body and reply.framing == "close"
        )

        if decision.kind == LOST or (decision.kind == STATUS and decision.status in FORWARDED_STATUSES):
            await reply.drain(no_body)  # the server has acted and answered in full
            upstream.close()
            if decision.kind == LOST:
                exchange.detail = f"the server's {reply.status} dropped"
                _abort(client, reset=False)
                return False
            exchange.detail = f"{decision.status} in place of the server's {reply.status}"
            await _send_status(client, decision.status, {}, close=client_wants_close)
            return not client_wants_close

        if decision.kind in (RESET, TRUNCATE):
            await self._cut(reply, client, decision, exchange, no_body)
            upstream.close()
            return False

        client.write(reply.head.raw)
        await reply.relay(client, no_body)
        await client.drain()
        exchange.delivered = True
        if server_closes:
            upstream.close()
        return not (client_wants_close or server_closes)

    async def _cut(
        self,
        reply: _Reply,
        client: asyncio.StreamWriter,
        decision: _Decision,
        exchange: Exchange,
        no_body: bool,
    ) -> None:
        """Send part of the answer, then close (truncate) or reset (reset) the client's connection."""
        reset = decision.kind == RESET
        if no_body:
            await reply.drain(no_body)
            cut = int(decision.cut * len(reply.head.raw))
            exchange.detail = f"head cut at {cut} of {len(reply.head.raw)} bytes"
            client.write(reply.head.raw[:cut])
        elif reply.framing == "chunked":
            data = await reply.hold(MAX_BODY_HELD)
            cut = int(decision.cut * len(data))
            exchange.detail = f"chunked body cut at {cut} of {len(data)} bytes"
            client.write(reply.head.raw)
            if data:
                # One chunk that announces everything held, and stops short of it.
                client.write(f"{len(data):x}\r\n".encode() + data[:cut])
        else:
            length = reply.length if reply.framing == "length" else len(await reply.hold(MAX_BODY_HELD))
            cut = int(decision.cut * length)
            exchange.detail = f"body cut at {cut} of {length} bytes"
            client.write(reply.head.raw)
            await reply.relay(client, no_body, limit=cut)
        with contextlib.suppress(ConnectionError, OSError):
            await client.drain()
        _abort(client, reset=reset)


@dataclass
class _Reply:
    head: _Head
    status: int
    framing: str  # "length", "chunked" or "close"
    length: int
    reader: asyncio.StreamReader

    async def relay(self, client: asyncio.StreamWriter, no_body: bool, *, limit: int | None = None) -> None:
        """Copy the body as framed (stopping after ``limit`` body bytes when given)."""
        if no_body:
            return
        if self.framing == "length":
            left = self.length if limit is None else min(limit, self.length)
            while left > 0:
                piece = await self.reader.read(min(PIECE, left))
                if not piece:
                    raise asyncio.IncompleteReadError(b"", left)
                client.write(piece)
                left -= len(piece)
                await client.drain()
            return
        if self.framing == "chunked":
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = _chunk_size(size_line)
                client.write(size_line)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        line = await self.reader.readuntil(b"\r\n")
                        client.write(line)
                        if line == b"\r\n":
                            return
                client.write(await self.reader.readexactly(size + 2))
                await client.drain()
        while piece := await self.reader.read(PIECE):  # close-delimited
            client.write(piece)
            await client.drain()

    async def hold(self, cap: int) -> bytes:
        """The body decoded (chunked) or read to its end (close-delimited), at most ``cap`` bytes."""
        data = bytearray()
        if self.framing == "chunked":
            while len(data) < cap:
                size = _chunk_size(await self.reader.readuntil(b"\r\n"))
                if size == 0:
                    break
                data += (await self.reader.readexactly(size + 2))[:-2]
        else:
            while len(data) < cap and (piece := await self.reader.read(PIECE)):
                data += piece
        return bytes(data[:cap])

    async def drain(self, no_body: bool) -> None:
        """Read the whole answer and forget it."""
        if no_body:
            return
        if self.framing == "length":
            await self.reader.readexactly(self.length)
        else:
            await self.hold(sys.maxsize)


class _Upstream:
    """The proxy's own keep-alive connection to the server, one per client connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.idle_since = 0.0

    async def send(self, head: _Head, body: bytes) -> _Reply | None:
        stale = time.monotonic() - self.idle_since > UPSTREAM_IDLE
        reply_head = None
        for _ in range(2):
            reused = self.writer is not None and not stale
            if not reused:
                self.close()
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None and self.writer is not None
            try:
                self.writer.write(head.raw + body)
                await self.writer.drain()
                reply_head = await _read_head(self.reader)
            except (ConnectionError, OSError, asyncio.IncompleteReadError, ProtocolError):
                reply_head = None
            if reply_head is not None:
                break
            self.close()
            if not reused:
                return None
            # A reused connection the server had closed meanwhile: it never read the request.
        if reply_head is None or self.reader is None:
            return None
        status = _status(reply_head)
        while 100 <= status < 200 and status != 101:  # interim answers (100 Continue): keep reading
            reply_head = await _read_head(self.reader)
            if reply_head is None:
                return None
            status = _status(reply_head)
        self.idle_since = time.monotonic()
        if reply_head.has_token("transfer-encoding", "chunked"):
            return _Reply(reply_head, status, "chunked", 0, self.reader)
        length = reply_head.get("content-length")
        if length is not None:
            return _Reply(reply_head, status, "length", _content_length(length), self.reader)
        return _Reply(reply_head, status, "close", 0, self.reader)

    def close(self) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.close()
        self.reader = self.writer = None


# ---- HTTP/1.1 framing ---------------------------------------------------------------------------


async def _read_head(reader: asyncio.StreamReader) -> _Head | None:
    """A request or status line with its headers; None when the peer closed before sending one."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise ProtocolError("the connection closed in the middle of a message head") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError("message head too long") from None
    if len(raw) > MAX_HEAD:
        raise ProtocolError("message head too long")
    lines = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"bad header line {line!r}")
        headers.append((name.strip(), value.strip()))
    return _Head(lines[0], headers, raw)


async def _read_request_body(reader: asyncio.StreamReader, head: _Head) -> bytes:
    """The request body as sent, framing included, so it is forwarded unchanged."""
    if head.has_token("transfer-encoding", "chunked"):
        raw = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            raw += size_line
            size = _chunk_size(size_line)
            if size == 0:
                while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                    raw += line
                raw += b"\r\n"
                return bytes(raw)
            raw += await reader.readexactly(size + 2)
    length = head.get("content-length")
    return await reader.readexactly(_content_length(length)) if length else b""


def _request_line(head: _Head) -> tuple[str, str]:
    parts = head.first_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ProtocolError(f"bad request line {head.first_line!r}")
    return parts[0].upper(), parts[1]


def _status(head: _Head) -> int:
    parts = head.first_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ProtocolError(f"bad status line {head.first_line!r}")
    return int(parts[1])


def _chunk_size(line: bytes) -> int:
    try:
        return int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        raise ProtocolError(f"bad chunk size {line!r}") from None


def _content_length(value: str) -> int:
    if not value.strip().isdigit():
        raise ProtocolError(f"bad Content-Length {value!r}")
    return int(value)


async def _send_status(
    client: asyncio.StreamWriter, status: int, headers: Mapping[str, str], *, close: bool
) -> None:
    body = f"{status} {REASONS.get(status, 'Error')} (injected by the fault proxy)\n".encode()
    lines = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    if close:
        lines.append("Connection: close")
    client.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await client.drain()


def _abort(client: asyncio.StreamWriter, *, reset: bool) -> None:
    if reset:
        sock = client.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() sends RST instead of FIN, as a crashed middlebox would.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.transport.abort()
    else:
        client.close()


# ---- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_bpm_provider.testing.fault_proxy",
        description="A fault-injecting HTTP/1.1 proxy in front of the BPM emulator (or any http:// server).",
    )
    parser.add_argument(
        "--upstream", required=True, help="the server to forward to, e.g. http://127.0.0.1:8765"
    )
    parser.add_argument(
        "--port", type=int, default=8766, help="port to listen on at 127.0.0.1 (default 8766)"
    )
    parser.add_argument("--rate", type=float, default=0.1, help="share of requests faulted (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault sequence (default 0)")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help=f"comma-separated fault kinds (default {','.join(KINDS)})"
    )
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    try:
        proxy = FaultProxy(
            args.upstream, rate=args.rate, seed=args.seed, weights=dict.fromkeys(kinds, 1.0), port=args.port
        )
    except ValueError as exc:
        parser.error(str(exc))
    proxy.serve_in_background()
    print(f"fault proxy on {proxy.url} -> {args.upstream}, {args.rate:.0%} of requests faulted", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
        print(f"faults injected: {dict(proxy.counts())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
