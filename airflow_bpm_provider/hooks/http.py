"""Requests and replies as plain values, and the two transports that send them.

Hook methods describe their HTTP exchanges as *flows*: generators that yield :class:`Request`
objects and receive :class:`Reply` objects (or have a :class:`~airflow_bpm_provider.exceptions.BpmError`
thrown in). The same flow then runs on a worker through ``requests`` and in the triggerer through
``httpx``, so auth, retries and error mapping are written once.
"""

from __future__ import annotations

import functools
import json as jsonlib
import os
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

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
    """A server's answer. ``body`` is empty for streamed replies; read them through ``stream``."""

    status: int
    headers: Headers
    body: bytes = b""
    url: str = ""
    stream: Any = None  # the live response of a streamed request (requests.Response)
    cookies: Mapping[str, str] = field(default_factory=dict)

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
        return jsonlib.loads(self.body.decode("utf-8-sig") or "null")

    def iter_bytes(self, chunk_size: int) -> Iterator[bytes]:
        if self.stream is None:
            yield self.body
            return
        yield from self.stream.iter_content(chunk_size=chunk_size)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


Flow = Generator[Request, Reply, T]


class TransportError(Exception):
    """The request got no HTTP answer. ``sent`` says whether it may have reached the server."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


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
    """Sends requests with one ``requests.Session`` (connection pooling, cookies)."""

    def __init__(self, base_url: str, *, verify: bool | str, timeout: tuple[float, float]) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session_headers: dict[str, str] | None = None  # set once the hook has logged in
        self.session = requests.Session()
        self.session.verify = verify
        self.session.headers["User-Agent"] = "airflow-bpm-provider"

    def send(self, request: Request, headers: Mapping[str, str]) -> Reply:
        import requests

        url = self.base_url + request.path
        try:
            response = self.session.request(
                request.method,
                url,
                params=_encode_params(request.params),
                data=_encode_params(request.data) if request.files is None else request.data,
                json=request.json,
                files=request.files,
                headers=dict(headers),
                timeout=self.timeout,
                stream=request.stream,
                allow_redirects=False,
            )
        except (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError) as exc:
            raise TransportError(_describe(exc), sent=False) from exc
        except requests.exceptions.ConnectionError as exc:
            raise TransportError(_describe(exc), sent=not _refused(exc)) from exc
        except requests.exceptions.Timeout as exc:
            raise TransportError(_describe(exc), sent=True) from exc
        reply = Reply(
            status=response.status_code,
            headers=Headers(response.headers),
            url=url,
            cookies=_cookie_values(self.session.cookies),
        )
        if request.stream and response.status_code < 400:
            reply.stream = response
        else:
            try:
                reply.body = response.content
            except requests.exceptions.RequestException as exc:
                raise TransportError(_describe(exc), sent=True) from exc
        return reply

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
    """Sends requests with one ``httpx.AsyncClient``; used by triggers in the triggerer's event loop."""

    def __init__(self, base_url: str, *, verify: bool | str, timeout: tuple[float, float]) -> None:
        import asyncio

        import httpx

        self.base_url = base_url.rstrip("/")
        self.session_headers: dict[str, str] | None = None
        self.login_lock = asyncio.Lock()  # the triggers sharing this transport log in once
        self.client = httpx.AsyncClient(
            verify=shared_ssl_context(verify),
            timeout=httpx.Timeout(timeout[1], connect=timeout[0]),
            # Triggers poll every 30 s by default: keep idle connections past that (httpx keeps
            # 5 s), so the next poll reuses one unless the server closed it first.
            limits=httpx.Limits(max_connections=100, keepalive_expiry=ASYNC_KEEPALIVE),
            headers={"User-Agent": "airflow-bpm-provider"},
            follow_redirects=False,
        )

    async def send(self, request: Request, headers: Mapping[str, str]) -> Reply:
        import httpx

        url = self.base_url + request.path
        try:
            response = await self.client.request(
                request.method,
                url,
                params=_encode_params(request.params),
                data=_form_fields(request.data),
                json=request.json,
                headers=dict(headers),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TransportError(_describe(exc), sent=False) from exc
        except httpx.TransportError as exc:
            raise TransportError(_describe(exc), sent=True) from exc
        return Reply(
            status=response.status_code,
            headers=Headers(response.headers.multi_items()),
            body=response.content,
            url=url,
            cookies=_cookie_values(self.client.cookies.jar),
        )

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


def _describe(exc: Exception) -> str:
    # The exception text of requests/urllib3 contains the URL but never the auth header.
    return f"{type(exc).__name__}: {exc}"
