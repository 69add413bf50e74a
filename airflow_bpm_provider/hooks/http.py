"""Requests and replies as plain values, and the two transports that send them.

Hook methods describe their HTTP exchanges as *flows*: generators that yield :class:`Request`
objects and receive :class:`Reply` objects (or have a :class:`~airflow_bpm_provider.exceptions.BpmError`
thrown in). The same flow then runs on a worker through ``requests`` and in the triggerer through
``httpx``, so auth, retries and error mapping are written once.
"""

from __future__ import annotations

import contextlib
import functools
import json as jsonlib
import logging
import os
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_bpm_provider.exceptions import BpmError, BpmTransferError
from airflow_bpm_provider.hooks.bounds import (
    READ_PIECE,
    BodyError,
    BodyLimits,
    BodyReader,
    BoundedDecoder,
    Progress,
    check_announced_length,
    parse_content_length,
)

if TYPE_CHECKING:
    import ssl

T = TypeVar("T")

Params = Mapping[str, Any] | Sequence[tuple[str, Any]]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
ASYNC_KEEPALIVE = 120.0  # seconds an idle connection of the async transport stays open


@dataclass(frozen=True)
class Request:
    """One HTTP request, relative to the connection's base URL.

    ``idempotent`` says whether re-sending after an unclear failure (read timeout, 502/504) is
    safe. It defaults from the method; a POST that only reads (Questetra searches) sets it True,
    and nothing that starts a process may.
    """

    method: str
    path: str
    params: Params | None = None
    data: Params | None = None
    json: Any = None
    files: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotent: bool | None = None
    stream: bool = False
    authenticate: bool = True

    @property
    def safe_to_repeat(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method.upper() in IDEMPOTENT_METHODS

    def with_headers(self, extra: Mapping[str, str]) -> Request:
        return replace(self, headers={**self.headers, **extra})


class Headers(dict):
    """Case-insensitive read access to reply headers."""

    def __init__(self, items: Mapping[str, str] | Sequence[tuple[str, str]] = ()) -> None:
        super().__init__()
        pairs = items.items() if isinstance(items, Mapping) else items
        for key, value in pairs:
            self[key.lower()] = value

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


@dataclass
class Reply:
    """A server's answer. ``body`` is empty for streamed replies; read them through ``iter_bytes``.

    Iterating a streamed reply raises only :class:`BpmTransferError` (built by ``broken``, which
    the hook sets so the error names its system, connection, method and path).
    """

    status: int
    headers: Headers
    body: bytes = b""
    url: str = ""
    stream: Any = None  # the live body of a streamed request: iter_content(chunk_size) and close()
    cookies: Mapping[str, str] = field(default_factory=dict)
    broken: Callable[[str], BpmTransferError] | None = field(default=None, repr=False)
    _pieces: Any = field(default=None, init=False, repr=False, compare=False)
    _direct_bytes: int = field(default=0, init=False, repr=False, compare=False)

    @property
    def content_length(self) -> int | None:
        """The announced size; the transports have already refused a malformed one."""
        try:
            return parse_content_length(self.headers.get("content-length"))
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        # Redirects are not followed (a POST must not turn into a GET), so a 3xx is no success:
        # it is usually an SSO login page or a base URL missing its context root.
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        charset = "utf-8"
        content_type = self.headers.get("content-type", "")
        if "charset=" in content_type:
            charset = content_type.split("charset=", 1)[1].split(";", 1)[0].strip() or "utf-8"
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The decoded body; ValueError (never RecursionError) for anything that is not JSON."""
        try:
            text = self.body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValueError(f"the body is not UTF-8 (byte {exc.start})") from None
        try:
            return jsonlib.loads(text or "null")
        except RecursionError:
            raise ValueError("the JSON is nested too deeply") from None

    def iter_bytes(self, chunk_size: int) -> Iterator[bytes]:
        if self.stream is None:
            yield self.body
            return
        received = 0
        try:
            for chunk in self.stream.iter_content(chunk_size=chunk_size):
                received += len(chunk)
                yield chunk
        except BpmTransferError:
            raise
        except Exception as exc:
            reason = exc.args[0] if isinstance(exc, BpmError | BodyError) and exc.args else _describe(exc)
            message = f"the download broke off after {received} bytes: {reason}"
            raise (self.broken(message) if self.broken else BpmTransferError(message)) from exc

    def readinto(self, buffer: memoryview) -> int:
        """Up to ``len(buffer)`` bytes of the body into ``buffer``; 0 at its end.

        One network read straight into the caller's buffer where the transport can (a body sent
        as it is), so a large download needs no new bytes object per read; raises like iter_bytes.
        """
        if self._pieces is None:
            direct = getattr(self.stream, "readinto", None)
            self._pieces = direct if direct is not None else _PieceReader(self.iter_bytes(len(buffer)))
        if not isinstance(self._pieces, _PieceReader):
            try:
                count = self._pieces(buffer)
            except BpmTransferError:
                raise
            except Exception as exc:
                reason = exc.args[0] if isinstance(exc, BpmError | BodyError) and exc.args else _describe(exc)
                message = f"the download broke off after {self._direct_bytes} bytes: {reason}"
                raise (self.broken(message) if self.broken else BpmTransferError(message)) from exc
            self._direct_bytes += count
            return count
        return self._pieces.readinto(buffer)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


class _PieceReader:
    """``readinto`` over an iterator of byte strings (a decoded or chunked body, a fake stream)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._left = memoryview(b"")

    def readinto(self, buffer: memoryview) -> int:
        while not self._left:
            piece = next(self._pieces, None)
            if piece is None:
                return 0
            self._left = memoryview(piece)
        count = min(len(buffer), len(self._left))
        buffer[:count] = self._left[:count]
        self._left = self._left[count:]
        return count


Flow = Generator[Request, Reply, T]


class TransportError(Exception):
    """The request got no usable HTTP answer. ``sent`` says whether it may have reached the server.

    ``kind`` says what went wrong: ``connect`` (no connection), ``unsendable`` (the request could
    not be built), ``no_answer`` (no status line), ``broken`` (the body broke off, stalled or
    missed the deadline), ``malformed`` (undecodable body, bad framing or size header) or
    ``too_large`` (over ``max_response_bytes``, which a repeat would only download again).
    """

    def __init__(self, message: str, *, sent: bool, kind: str = "no_answer") -> None:
        super().__init__(message)
        self.sent = sent
        self.kind = kind

    @property
    def retryable(self) -> bool:
        return self.kind not in ("unsendable", "too_large")


def _encode_params(params: Params | None) -> list[tuple[str, str]] | None:
    """Flatten lists into repeated keys and drop ``None`` values: every dialect here wants that."""
    if params is None:
        return None
    pairs = params.items() if isinstance(params, Mapping) else params
    out: list[tuple[str, str]] = []
    for key, value in pairs:
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if item is None:
                continue
            if isinstance(item, bool):
                item = "true" if item else "false"
            out.append((key, str(item)))
    return out


class SyncTransport:
    """Sends requests with one ``requests.Session`` (connection pooling, cookies).

    Bodies are always read here, piece by piece, so the caps and deadlines of ``limits`` apply
    (``requests`` itself would read a whole body, of any size and at any pace, in one call).
    """

    def __init__(
        self,
        base_url: str,
        *,
        verify: bool | str,
        timeout: tuple[float, float],
        limits: BodyLimits | None = None,
    ) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.limits = limits or BodyLimits()
        self.session_headers: dict[str, str] | None = None  # set once the hook has logged in
        self.session = requests.Session()
        self.session.verify = verify
        self.session.headers["User-Agent"] = "airflow-bpm-provider"
        self.session.headers["Accept-Encoding"] = "gzip, deflate"  # what BoundedDecoder inflates

    def send(self, request: Request, headers: Mapping[str, str]) -> Reply:
        import requests

        url = self.base_url + request.path
        started = time.monotonic()
        try:
            prepared = self.session.prepare_request(
                requests.Request(
                    request.method,
                    url,
                    params=_encode_params(request.params),
                    data=_encode_params(request.data) if request.files is None else request.data,
                    json=request.json,
                    files=request.files,
                    headers=dict(headers),
                )
            )
        except (requests.exceptions.RequestException, ValueError, TypeError) as exc:
            raise TransportError(_describe(exc), sent=False, kind="unsendable") from exc
        try:
            # What session.request would add: proxies and CA bundle from the environment.
            settings = self.session.merge_environment_settings(prepared.url, {}, True, None, None)
            response = self.session.send(prepared, timeout=self.timeout, allow_redirects=False, **settings)
        except (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError) as exc:
            raise TransportError(_describe(exc), sent=False, kind="connect") from exc
        except requests.exceptions.InvalidHeader as exc:
            raise TransportError(_describe(exc), sent=True, kind="malformed") from exc
        except requests.exceptions.ConnectionError as exc:
            refused = _refused(exc)
            raise TransportError(
                _describe(exc), sent=not refused, kind="connect" if refused else "no_answer"
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise TransportError(_describe(exc), sent=True) from exc
        reply = Reply(
            status=response.status_code,
            headers=Headers(response.headers),
            url=url,
            cookies=_cookie_values(self.session.cookies),
        )
        streamed = request.stream and response.status_code < 400
        try:
            check_announced_length(
                reply.headers.get("content-length"),
                self.limits,
                encoded=bool(reply.headers.get("content-encoding")),
                stream=streamed or request.method.upper() == "HEAD",  # HEAD: the size of what it would get
            )
            if streamed:
                reply.stream = _SyncStream(response, self.limits)
                return reply
            reply.body = self._read_body(
                response, BodyReader(reply.headers.get("content-encoding"), self.limits, started)
            )
        except BodyError as exc:
            response.close()
            raise TransportError(str(exc), sent=True, kind=exc.kind) from None
        except Exception as exc:
            response.close()
            raise TransportError(_describe(exc), sent=True, kind=_body_kind(exc)) from exc
        response.raw.release_conn()
        return reply

    def _read_body(self, response: Any, reader: BodyReader) -> bytes:
        # The socket's timeout shrinks to what is left of the deadline, so neither a trickle nor
        # a pause longer than that outlasts response_timeout; read1 makes one network read per call.
        sock = _socket_of(response.raw)
        budget = reader.budget
        while True:
            budget.check_time()
            if sock is not None:
                with contextlib.suppress(OSError):  # a socket closed under us: read1 will say so
                    sock.settimeout(max(0.001, min(self.timeout[1], budget.deadline - time.monotonic())))
            try:
                raw = response.raw.read1(READ_PIECE, decode_content=False)
            except Exception:
                budget.check_time()  # a timeout at the deadline is named as one
                raise
            if not raw:
                if sock is not None:
                    with contextlib.suppress(OSError):  # leave the pooled socket as urllib3 set it
                        sock.settimeout(self.timeout[1])
                return reader.finish()
            reader.feed(raw)

    def cookie(self, name: str) -> str | None:
        return next(iter(self.cookie_values(name)), None)

    def cookie_values(self, name: str) -> list[str]:
        """Every value held for ``name`` (a server may set one cookie name for two paths)."""
        return [cookie.value for cookie in self.session.cookies if cookie.name == name and cookie.value]

    def clear_cookies(self) -> None:
        self.session.cookies.clear()

    def close(self) -> None:
        self.session.close()


class AsyncTransport:
    """Sends requests with one ``httpx.AsyncClient``; used by triggers in the triggerer's event loop.

    The whole exchange runs under ``response_timeout`` (asyncio.timeout), and the raw body is
    inflated by :class:`BoundedDecoder`, never beyond ``max_response_bytes``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        verify: bool | str,
        timeout: tuple[float, float],
        limits: BodyLimits | None = None,
    ) -> None:
        import asyncio

        import httpx

        _hide_httpcore_headers()
        self.base_url = base_url.rstrip("/")
        self.limits = limits or BodyLimits()
        self.session_headers: dict[str, str] | None = None
        self.login_lock = asyncio.Lock()  # the triggers sharing this transport log in once
        self.client = httpx.AsyncClient(
            verify=shared_ssl_context(verify),
            timeout=httpx.Timeout(timeout[1], connect=timeout[0]),
            # Triggers poll every 30 s by default: keep idle connections past that (httpx keeps
            # 5 s), so the next poll reuses one unless the server closed it first.
            limits=httpx.Limits(max_connections=100, keepalive_expiry=ASYNC_KEEPALIVE),
            # Only what BoundedDecoder can inflate with a bound.
            headers={"User-Agent": "airflow-bpm-provider", "Accept-Encoding": "gzip, deflate"},
            follow_redirects=False,
        )

    async def send(self, request: Request, headers: Mapping[str, str]) -> Reply:
        import asyncio

        started = time.monotonic()
        state = {"answered": False}
        try:
            async with asyncio.timeout(self.limits.response_timeout):
                return await self._exchange(request, headers, started, state)
        except TimeoutError:
            raise TransportError(
                f"the answer took longer than response_timeout={self.limits.response_timeout:g} s",
                sent=True,
                kind="broken" if state["answered"] else "no_answer",
            ) from None

    async def _exchange(
        self, request: Request, headers: Mapping[str, str], started: float, state: dict[str, bool]
    ) -> Reply:
        import httpx

        url = self.base_url + request.path
        try:
            prepared = self.client.build_request(
                request.method,
                url,
                params=_encode_params(request.params),
                data=_form_fields(request.data),
                json=request.json,
                headers=dict(headers),
            )
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise TransportError(_describe(exc), sent=False, kind="unsendable") from exc
        try:
            response = await self.client.send(prepared, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransportError(_describe(exc), sent=False, kind="connect") from exc
        except (httpx.LocalProtocolError, httpx.UnsupportedProtocol) as exc:
            raise TransportError(_describe(exc), sent=False, kind="unsendable") from exc
        except httpx.RemoteProtocolError as exc:
            # Either the server hung up before answering, or h11 refused a malformed status line
            # or size header (a negative Content-Length, say) before any answer was seen.
            kind = "no_answer" if "without sending" in str(exc) else "malformed"
            raise TransportError(_describe(exc), sent=True, kind=kind) from exc
        except httpx.TransportError as exc:
            raise TransportError(_describe(exc), sent=True) from exc
        state["answered"] = True
        try:
            reply = Reply(
                status=response.status_code,
                headers=Headers(response.headers.multi_items()),
                url=url,
                cookies=_cookie_values(self.client.cookies.jar),
            )
            encoding = reply.headers.get("content-encoding")
            check_announced_length(
                reply.headers.get("content-length"),
                self.limits,
                encoded=bool(encoding),
                stream=request.method.upper() == "HEAD",
            )
            reader = BodyReader(encoding, self.limits, started)
            async for raw in response.aiter_raw():
                reader.feed(raw)
            reply.body = reader.finish()
            return reply
        except BodyError as exc:
            raise TransportError(str(exc), sent=True, kind=exc.kind) from None
        except httpx.DecodingError as exc:
            raise TransportError(_describe(exc), sent=True, kind="malformed") from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise TransportError(_describe(exc), sent=True, kind="broken") from exc
        finally:
            await response.aclose()

    def cookie(self, name: str) -> str | None:
        return next(iter(self.cookie_values(name)), None)

    def cookie_values(self, name: str) -> list[str]:
        return [cookie.value for cookie in self.client.cookies.jar if cookie.name == name and cookie.value]

    def clear_cookies(self) -> None:
        self.client.cookies.clear()

    async def close(self) -> None:
        await self.client.aclose()


@functools.lru_cache(maxsize=8)
def shared_ssl_context(verify: bool | str) -> ssl.SSLContext:
    """One TLS context per ``verify`` value for all async clients of the process.

    Building a context loads the CA bundle (about 40 ms of CPU); a triggerer starts a client per
    trigger, so building one each time would stall its event loop. A context is safe to share.
    """
    import ssl

    import httpx

    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    return httpx.create_ssl_context(verify=verify)


def _form_fields(data: Params | None) -> dict[str, list[str]] | None:
    """Form fields for httpx, which takes repeated keys as a list per key."""
    pairs = _encode_params(data)
    if not pairs:
        return None
    fields: dict[str, list[str]] = {}
    for key, value in pairs:
        fields.setdefault(key, []).append(value)
    return fields


def _cookie_values(jar: Any) -> dict[str, str]:
    """Name → value; iterating avoids the conflict errors ``.items()`` raises for a name set on two paths."""
    return {cookie.name: cookie.value for cookie in jar if cookie.value is not None}


def _refused(exc: Exception) -> bool:
    """True when the TCP connection was never made, so the server cannot have seen the request."""
    text = repr(exc)
    return any(
        marker in text
        for marker in ("NewConnectionError", "Connection refused", "NameResolutionError", "Errno 111")
    )


class _SyncStream:
    """The body of a streamed download, read as it arrives and held to a minimum pace.

    A whole-body deadline would kill a legitimate 1 GiB export, so streams get a progress bound
    instead: at least ``MIN_DOWNLOAD_RATE`` bytes/s over every ``stall_timeout`` window (and the
    read timeout for a server that sends nothing at all).
    """

    def __init__(self, response: Any, limits: BodyLimits) -> None:
        self.response = response
        self.limits = limits
        self._plain: Any = None
        self._pieces: _PieceReader | None = None

    @property
    def raw(self) -> Any:
        """The urllib3 response underneath (whether it is closed, say)."""
        return self.response.raw

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        progress = Progress(self.limits.stall_timeout)
        decoder = BoundedDecoder(self.response.headers.get("content-encoding"))
        while True:
            try:
                raw = self.response.raw.read1(chunk_size, decode_content=False)
            except Exception as exc:
                raise BodyError(_describe(exc), kind=_body_kind(exc)) from exc
            if raw:
                progress.add(len(raw))
            piece = decoder.decode(raw, chunk_size)
            if piece:
                yield piece
            while decoder.pending:
                yield decoder.decode(b"", chunk_size)
            if not raw:
                decoder.finish()
                return

    def readinto(self, buffer: memoryview) -> int:
        """One network read into ``buffer`` (0 at the end of the body), for a body sent as it is.

        http.client's own buffered socket reader fills the caller's buffer directly; a body with
        a Content-Encoding or in chunks goes through ``iter_content`` (decoded, bounded) instead.
        """
        if self._plain is None:
            self._plain = self._plain_body()
        if self._plain is False:
            if self._pieces is None:
                self._pieces = _PieceReader(self.iter_content(len(buffer)))
            return self._pieces.readinto(buffer)
        body = self._plain
        left = body.length
        if not left:
            return 0
        try:
            count = body.fp.readinto1(buffer[: min(len(buffer), left)])
        except Exception as exc:
            raise BodyError(_describe(exc), kind=_body_kind(exc)) from exc
        if not count:
            raise BodyError(
                f"the connection closed with {left} bytes of the body still to come", kind="broken"
            )
        body.length = left - count
        self._progress.add(count)
        return count

    def _plain_body(self) -> Any:
        """http.client's response when the body comes as it is with a known length, else False."""
        encoding = (self.response.headers.get("content-encoding") or "identity").strip().lower()
        body = getattr(self.response.raw, "_fp", None)
        if encoding != "identity" or body is None or getattr(body, "chunked", True):
            return False
        if not isinstance(getattr(body, "length", None), int) or getattr(body, "fp", None) is None:
            return False
        if not hasattr(body.fp, "readinto1"):
            return False
        self._progress = Progress(self.limits.stall_timeout)
        return body

    def close(self) -> None:
        self.response.close()


def _socket_of(raw: Any) -> Any:
    """The socket under a urllib3 response, or None (then the read timeout bounds a silence).

    A kept-alive connection holds it; an answer with ``Connection: close`` hands it to
    http.client's response object, reachable only through its file object.
    """
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is None or sock.fileno() == -1:
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock if hasattr(sock, "settimeout") else None


def _body_kind(exc: Exception) -> str:
    """A body that cannot be decoded is malformed; any other read failure broke off."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & {"DecodeError", "ContentDecodingError", "DecodingError"}:
        return "malformed"
    return "broken"


class _HideHeaders(logging.Filter):
    """httpcore's DEBUG trace prints every response header; a server may echo credentials there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("receive_response_headers.complete"):
            record.msg, record.args = "receive_response_headers.complete (headers not logged)", ()
        return True


@functools.cache
def _hide_httpcore_headers() -> None:
    for name in ("httpcore.http11", "httpcore.http2"):
        logging.getLogger(name).addFilter(_HideHeaders())


def _describe(exc: Exception) -> str:
    # The exception text of requests/urllib3 contains the URL but never the auth header.
    return f"{type(exc).__name__}: {exc}"
