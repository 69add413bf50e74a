"""BpmHook: the connection, HTTP session, auth, retries, error mapping and paging every hook shares."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

from airflow.providers.common.compat.sdk import BaseHook

from airflow_bpm_provider.exceptions import (
    BpmConfigError,
    BpmConnectionError,
    BpmError,
    BpmServerError,
    BpmTransferError,
    error_class_for_status,
    scrub,
    shorten,
)
from airflow_bpm_provider.hooks.http import Flow, Reply, Request, TransportError
from airflow_bpm_provider.hooks.retry import RetryPolicy, parse_retry_after
from airflow_bpm_provider.hooks.settings import ConnectionSettings
from airflow_bpm_provider.models import ProcessState

if TYPE_CHECKING:
    from airflow_bpm_provider.hooks.file_stream import FileStream
    from airflow_bpm_provider.hooks.http import AsyncTransport, SyncTransport
    from airflow_bpm_provider.models import ProcessFile, ProcessInstance, Task

T = TypeVar("T")
E = TypeVar("E", bound=BpmError)

# What a flow's own parsing raises on an answer of the wrong shape that no explicit check caught.
PARSE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError)


class BpmHook(BaseHook, abc.ABC):
    """The contract every BPM hook implements; operators, sensors and triggers only use this.

    Subclasses describe each API call as a flow (see :mod:`airflow_bpm_provider.hooks.http`), so
    :meth:`get_process` and :meth:`list_tasks` also have async twins for triggers at no extra cost.
    """

    conn_name_attr = "bpm_conn_id"
    default_conn_name = "bpm_default"
    conn_type = ""
    hook_name = ""
    system = "BPM"
    session_cookies: tuple[str, ...] = ()  # cookies that carry a session: as secret as a password
    # Where the vendor's API usually lives under the host: a 404 before anything answered, from a
    # base URL with no path at all, asks whether one of them is missing.
    context_roots: tuple[str, ...] = ()
    hosts_without_context_root: tuple[str, ...] = ()  # host suffixes served at "/" (a cloud)

    def __init__(
        self,
        bpm_conn_id: str = default_conn_name,
        *,
        connection: Any = None,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        if not bpm_conn_id or not isinstance(bpm_conn_id, str):
            raise BpmError(f"a connection id is required, got {bpm_conn_id!r}")
        self.bpm_conn_id = bpm_conn_id
        self._connection = connection
        self._retry_policy = retry_policy
        self._sleep = sleep
        self._transport: SyncTransport | None = None
        self._async_transport: AsyncTransport | None = None
        self._answered = False  # a request has succeeded: a 404 is then no sign of a wrong base URL

    # ---- connection -------------------------------------------------------------------------

    @cached_property
    def settings(self) -> ConnectionSettings:
        conn = self._connection if self._connection is not None else self.get_connection(self.bpm_conn_id)
        settings = ConnectionSettings.from_connection(conn, conn_id=self.bpm_conn_id)
        for secret in settings.secrets:
            self._mask(secret)
        return settings

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        if self._retry_policy is not None:
            return self._retry_policy
        s = self.settings
        return RetryPolicy(
            max_attempts=s.max_retries, initial_delay=s.retry_delay, max_delay=s.retry_max_delay
        )

    def _session_secrets(self, transport: SyncTransport | AsyncTransport) -> list[str]:
        """What a login just gave this transport: extra headers and the named session cookies."""
        values = list((transport.session_headers or {}).values())
        for name in self.session_cookies:
            values.extend(transport.cookie_values(name))
        return values

    @staticmethod
    async def _amask(secret: str) -> None:
        # On the triggerer's event loop the sync masker would need Airflow's greenback portal.
        from airflow.sdk.log import amask_secret

        await amask_secret(secret)

    @staticmethod
    def _mask(secret: str | None) -> None:
        if not secret:
            return
        from airflow.providers.common.compat.sdk import mask_secret

        mask_secret(secret)

    def _auth_headers(self, request: Request, session: Mapping[str, str] | None) -> dict[str, str]:
        """Pre-emptive credentials for every request (Questetra sends no challenge to answer)."""
        if self.settings.auth_type == "bearer":
            return {"Authorization": f"Bearer {self.settings.password}"}
        return {"Authorization": f"Basic {self.settings.basic_credentials}"}

    def _login_flow(self) -> Flow[dict[str, str]] | None:
        """Session-based dialects return a flow that logs in and yields the session's extra headers."""
        return None

    # ---- running flows ----------------------------------------------------------------------

    def _sync_transport(self) -> SyncTransport:
        if self._transport is None:
            from airflow_bpm_provider.hooks.http import SyncTransport

            s = self.settings
            self._transport = SyncTransport(s.base_url, verify=s.verify, timeout=s.timeout, limits=s.limits)
        return self._transport

    def _async_transport_for_loop(self) -> AsyncTransport:
        if self._async_transport is None:
            from airflow_bpm_provider.hooks.http import AsyncTransport

            s = self.settings
            self._async_transport = AsyncTransport(
                s.base_url, verify=s.verify, timeout=s.timeout, limits=s.limits
            )
        return self._async_transport

    def _run(self, flow: Flow[T]) -> T:
        """Drive a flow with the blocking transport."""
        last: tuple[Request, Reply] | None = None
        try:
            request = next(flow)
            while True:
                try:
                    reply = self._send(request)
                except BpmError as exc:
                    request = self._step(flow.throw, exc, last)
                else:
                    last = (request, reply)
                    request = self._step(flow.send, reply, last)
        except StopIteration as stop:
            return stop.value

    async def _arun(self, flow: Flow[T]) -> T:
        """Drive a flow with the async transport (triggers)."""
        last: tuple[Request, Reply] | None = None
        try:
            request = next(flow)
            while True:
                try:
                    reply = await self._asend(request)
                except BpmError as exc:
                    request = self._step(flow.throw, exc, last)
                else:
                    last = (request, reply)
                    request = self._step(flow.send, reply, last)
        except StopIteration as stop:
            return stop.value

    def _step(
        self, step: Callable[[Any], Request], value: Any, last: tuple[Request, Reply] | None
    ) -> Request:
        """Advance a flow; a parsing error on an answer it received becomes a BpmServerError.

        Dialects validate the shapes they know; this net catches what they miss, so an answer of
        the wrong shape never leaves a public method as KeyError or AttributeError.
        """
        try:
            return step(value)
        except PARSE_ERRORS as exc:
            if last is None:
                raise
            request, reply = last
            reason = (
                "nested too deeply" if isinstance(exc, RecursionError) else f"{type(exc).__name__}: {exc}"
            )
            raise self._unexpected(request, reply, shorten(scrub(reason, self._secrets()), 200)) from None

    def request(self, request: Request) -> Reply:
        """Send one request with auth, retries and error mapping; raises BpmError on failure."""
        return self._send(request)

    def _send(self, request: Request) -> Reply:
        transport = self._sync_transport()
        attempt, relogged, reached = 0, False, False  # reached: an attempt may have got there
        while True:
            attempt += 1
            if request.authenticate and transport.session_headers is None:
                login = self._login_flow()
                transport.session_headers = self._run(login) if login is not None else {}
                for secret in self._session_secrets(transport):
                    self._mask(secret)
            headers = self._headers_for(request, transport.session_headers)
            try:
                reply = transport.send(request, headers)
            except TransportError as exc:
                reached = reached or exc.sent
                delay = self.retry_policy.delay_after_error(request, exc, attempt)
                if delay is None:
                    raise self._transport_failure(request, exc, attempt, reached=reached) from None
                self._log_retry(request, str(exc), delay, attempt)
                self._sleep(delay)
                continue
            reached = True
            action = self._after_reply(request, reply, attempt, relogged)
            if action == "relogin":
                relogged = True
                transport.session_headers = None
                transport.clear_cookies()
                continue
            if isinstance(action, float):
                reply.close()
                self._log_retry(request, self._why(reply), action, attempt)
                self._sleep(action)
                continue
            if reply.stream is not None:
                reply.broken = self._stream_error_factory(request, reply)
            return reply

    async def _asend(self, request: Request) -> Reply:
        import asyncio

        transport = self._async_transport_for_loop()
        attempt, relogged, reached = 0, False, False  # reached: an attempt may have got there
        while True:
            attempt += 1
            if request.authenticate and transport.session_headers is None:
                # Triggers share one transport per connection: one of them logs in, the rest wait.
                async with transport.login_lock:
                    if transport.session_headers is None:
                        login = self._login_flow()
                        transport.session_headers = await self._arun(login) if login is not None else {}
                        for secret in self._session_secrets(transport):
                            await self._amask(secret)
            sent_with = transport.session_headers
            headers = self._headers_for(request, sent_with)
            try:
                reply = await transport.send(request, headers)
            except TransportError as exc:
                reached = reached or exc.sent
                delay = self.retry_policy.delay_after_error(request, exc, attempt)
                if delay is None:
                    raise self._transport_failure(request, exc, attempt, reached=reached) from None
                self._log_retry(request, str(exc), delay, attempt)
                await asyncio.sleep(delay)
                continue
            reached = True
            action = self._after_reply(request, reply, attempt, relogged)
            if action == "relogin":
                relogged = True
                if transport.session_headers is sent_with:  # else another request already logged in again
                    transport.session_headers = None
                    transport.clear_cookies()
                continue
            if isinstance(action, float):
                self._log_retry(request, self._why(reply), action, attempt)
                await asyncio.sleep(action)
                continue
            return reply

    def _headers_for(self, request: Request, session: Mapping[str, str] | None) -> dict[str, str]:
        headers = dict(request.headers)
        if request.authenticate:
            headers.update(self._auth_headers(request, session))
        return headers

    def _after_reply(
        self, request: Request, reply: Reply, attempt: int, relogged: bool
    ) -> Reply | str | float:
        """What to do with an answer: keep it, log in again, wait and retry (seconds), or raise."""
        if reply.ok:
            self._answered = True
            return reply
        if reply.status == 401 and request.authenticate and not relogged and self._login_flow_available():
            self.log.info("%s session expired (HTTP 401); logging in again once", self.system)
            return "relogin"
        delay = self.retry_policy.delay_after_reply(request, reply, attempt)
        if delay is not None:
            return float(delay)
        if reply.stream is not None:
            reply.close()
        raise self._error_for(request, reply)

    def _stream_error_factory(self, request: Request, reply: Reply) -> Callable[[str], BpmTransferError]:
        def broken(message: str) -> BpmTransferError:
            return self._error(
                BpmTransferError, shorten(scrub(message, self._secrets()), 400), request, status=reply.status
            )

        return broken

    def _why(self, reply: Reply) -> str:
        """Why an answer is retried, for the log: the status and what Retry-After said (scrubbed)."""
        value = reply.headers.get("retry-after")
        if value is None:
            return f"HTTP {reply.status}"
        shown = self._header_text(value)
        if parse_retry_after(value) is None:
            return f"HTTP {reply.status}; ignoring Retry-After {shown}, which is neither seconds nor a date"
        return f"HTTP {reply.status}; Retry-After {shown}"

    def _header_text(self, value: str) -> str:
        """A header a server chose, fit for an error or a log line: scrubbed and short."""
        return repr(shorten(scrub(str(value), self._secrets()), 120))

    def _login_flow_available(self) -> bool:
        return type(self)._login_flow is not BpmHook._login_flow

    def _log_retry(self, request: Request, why: str, delay: float, attempt: int) -> None:
        self.log.warning(
            "%s %s %s failed (%s); retrying in %.1f s (attempt %d of %d)",
            self.system,
            request.method,
            request.path,
            scrub(why, self._secrets()),
            delay,
            attempt + 1,
            self.retry_policy.max_attempts,
        )

    # ---- errors -----------------------------------------------------------------------------

    def _secrets(self) -> tuple[str, ...]:
        """Everything no log line or error may show: the connection's secrets, the session's extra
        headers (a CSRF token) and the cookies named in ``session_cookies`` (servers echo them)."""
        values = list(self.settings.secrets)
        for transport in (self._transport, self._async_transport):
            if transport is not None:
                values.extend(self._session_secrets(transport))
        return tuple(values)

    def _server_message(self, reply: Reply) -> str:
        """The server's own explanation; dialects with a known error body override this."""
        try:
            body = reply.json()
        except ValueError:
            return reply.text
        if isinstance(body, dict):
            for key in ("message", "errorMessage", "error_description", "error", "exception"):
                if body.get(key):
                    return str(body[key])
            if body.get("errors"):
                return str(body["errors"])
        return reply.text

    def _error_details(self, reply: Reply) -> list[str]:
        return []

    def _error(self, cls: type[E], message: str, request: Request, **fields: Any) -> E:
        """An error of ``cls`` about ``request`` on this hook's system and connection."""
        return cls(
            message,
            system=self.system,
            conn_id=self.bpm_conn_id,
            method=request.method,
            path=request.path,
            **fields,
        )

    def _error_for(self, request: Request, reply: Reply) -> BpmError:
        secrets = self._secrets()
        message = shorten(scrub(self._server_message(reply), secrets))
        details = [shorten(scrub(detail, secrets), 300) for detail in self._error_details(reply)]
        cls = error_class_for_status(reply.status)
        summary = {
            401: "authentication failed: check the connection's login and password or token",
            403: "permission denied for this user",
            404: "not found",
            409: "conflict with the current state",
            **dict.fromkeys(
                (301, 302, 303, 307, 308),
                f"redirected to {self._location(reply)}: "
                "a login page, or a base URL without its context root?",
            ),
            429: "rate limited by the server",
        }.get(reply.status, "request failed")
        if reply.status == 404 and (hint := self._context_root_hint()):
            summary += f"; {hint}"
        if reply.status == 429:
            retry_after = reply.headers.get("retry-after")
            if not retry_after:
                summary += " after every retry"
            elif parse_retry_after(retry_after) is None:
                summary += f"; its Retry-After {self._header_text(retry_after)} is neither seconds nor a date"
            else:
                shown = shorten(scrub(retry_after, secrets), 120)
                wait = f"{shown} s" if shown.isdigit() else f"until {shown}"
                summary += f"; it asks to wait {wait}"
        return self._error(
            cls,
            summary,
            request,
            status=reply.status,
            server_message=message or None,
            details=details,
        )

    def _context_root_hint(self) -> str | None:
        """For a 404 before any success: does the base URL lack the API's context root?"""
        if self._answered or not self.context_roots:
            return None
        parts = urlsplit(self.base_url)
        host = (parts.hostname or "").lower()
        if parts.path.strip("/") or host.endswith(self.hosts_without_context_root):
            return None
        roots = ", ".join(self.context_roots)
        example = f"{parts.scheme}://{parts.netloc}{self.context_roots[0]}"
        return f"is the context root ({roots}) missing from the connection's host? e.g. {example}"

    def _location(self, reply: Reply) -> str:
        location = reply.headers.get("location")
        return shorten(scrub(location, self._secrets()), 200) if location else "(no Location)"

    def _transport_failure(
        self, request: Request, exc: TransportError, attempt: int, *, reached: bool = False
    ) -> BpmError:
        """The final error once a transport failure is not (or no longer) retried."""
        hint = (
            ""
            if request.safe_to_repeat or not exc.sent or not exc.retryable
            else " (not re-sent: the server may have acted on it)"
        )
        cls: type[BpmError]
        if exc.kind == "broken":
            cls, what = BpmTransferError, "the answer broke off"
        elif exc.kind in ("malformed", "too_large"):
            cls, what = BpmServerError, "the answer cannot be read"
        elif exc.kind == "unsendable":
            cls, what = BpmConnectionError, "the request could not be sent"
        else:
            cls, what = BpmConnectionError, "no answer"
        # sent=False: no attempt of this request can have reached the server (``reached``: an
        # earlier one may have, or got an answer).
        fields: dict[str, Any] = {"sent": exc.sent or reached} if cls is BpmConnectionError else {}
        return self._error(
            cls,
            f"{what} after {attempt} attempt(s){hint}",
            request,
            server_message=shorten(scrub(str(exc), self._secrets())),
            **fields,
        )

    def _unexpected(self, request: Request, reply: Reply, what: str) -> BpmError:
        return self._error(
            BpmServerError,
            f"unexpected answer: {what}",
            request,
            status=reply.status,
            server_message=shorten(scrub(reply.text, self._secrets()), 300) or None,
        )

    def _json(self, request: Request, reply: Reply) -> Any:
        try:
            return reply.json()
        except ValueError as exc:
            raise self._unexpected(request, reply, f"the body is not JSON ({exc})") from None

    # ---- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        if self._transport is not None:
            self._logout(self._transport)
            self._transport.close()
            self._transport = None

    async def aclose(self) -> None:
        if self._async_transport is not None:
            await self._async_transport.close()
            self._async_transport = None

    def _logout(self, transport: SyncTransport) -> None:
        """Session-based dialects end their server session here."""

    def __enter__(self) -> BpmHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_conn(self) -> SyncTransport:
        return self._sync_transport()

    def test_connection(self) -> tuple[bool, str]:
        """The UI's "Test" button: one cheap call, then close the session so none is left open."""
        try:
            message = self._probe()
        except BpmError as exc:
            return False, str(exc)
        finally:
            self.close()
        return True, message

    # ---- the contract -----------------------------------------------------------------------

    @abc.abstractmethod
    def _probe(self) -> str:
        """One cheap authenticated call; returns a short success message."""

    @abc.abstractmethod
    def start_process(
        self,
        process: str,
        *,
        variables: Mapping[str, Any] | None = None,
        business_key: str | None = None,
        **options: Any,
    ) -> ProcessInstance:
        """Start ``process``; ``options`` are vendor-specific (a hook rejects those it does not know)."""

    def _states_filter(self, value: Any) -> frozenset[ProcessState] | None:
        """The ``states`` filter of find_processes: one state or several, by name or enum."""
        if value is None:
            return None
        items = [value] if isinstance(value, str | ProcessState) else list(value)
        try:
            return frozenset(ProcessState.parse(item) for item in items)
        except ValueError as exc:
            raise BpmConfigError(
                f"filter 'states': {exc}", system=self.system, conn_id=self.bpm_conn_id
            ) from None

    def resume_start(
        self, instance: ProcessInstance, *, variables: Mapping[str, Any] | None = None, **options: Any
    ) -> ProcessInstance:
        """Finish a start an earlier try began but did not complete; return the instance.

        Most systems start in one request, so there is nothing to finish. Where a start takes
        several (Questetra: start, then submit the first task), the start operator calls this
        when a retry finds the process its earlier try started.
        """
        return instance

    @abc.abstractmethod
    def _get_process_flow(self, instance_id: str) -> Flow[ProcessInstance]:
        """The process, also after it ended (fall back to history/archive where the vendor needs it)."""

    def fill_business_key(self, instance: ProcessInstance) -> ProcessInstance:
        """``instance`` (from a listing) with its business key, where a listing leaves the key out
        and reading it costs another request (Bonita's key variable); the others return it as is."""
        return instance

    def _get_state_flow(self, instance_id: str) -> Flow[ProcessInstance]:
        """The process as a wait needs it (its state). Hooks whose business key costs another
        request (Bonita's key variable) leave the key out here; the others read the same."""
        return self._get_process_flow(instance_id)

    def get_process(self, instance_id: str, *, with_business_key: bool = True) -> ProcessInstance:
        """The process. Waits pass ``with_business_key=False``: its state is all they read, and on
        Bonita the key variable would double every poll."""
        flow = self._get_process_flow if with_business_key else self._get_state_flow
        return self._run(flow(str(instance_id)))

    async def aget_process(self, instance_id: str, *, with_business_key: bool = True) -> ProcessInstance:
        flow = self._get_process_flow if with_business_key else self._get_state_flow
        return await self._arun(flow(str(instance_id)))

    @abc.abstractmethod
    def find_processes(self, **filters: Any) -> Iterator[ProcessInstance]:
        """Every matching process, page after page."""

    def find_process_by_business_key(self, process: str, business_key: str) -> ProcessInstance | None:
        """The newest instance of ``process`` with ``business_key``; used to make starts retry-safe."""
        raise NotImplementedError(f"{type(self).__name__} cannot search by business key")

    @abc.abstractmethod
    def cancel_process(self, instance_id: str) -> None: ...

    @abc.abstractmethod
    def _list_tasks_flow(
        self, *, process_instance_id: str | None = None, name: str | None = None
    ) -> Flow[list[Task]]:
        """Open (not yet completed) tasks, optionally of one process and with one name."""

    def list_tasks(
        self, *, process_instance_id: str | None = None, name: str | None = None
    ) -> Iterator[Task]:
        pid = str(process_instance_id) if process_instance_id is not None else None
        return iter(self._run(self._list_tasks_flow(process_instance_id=pid, name=name)))

    async def alist_tasks(
        self, *, process_instance_id: str | None = None, name: str | None = None
    ) -> list[Task]:
        pid = str(process_instance_id) if process_instance_id is not None else None
        return await self._arun(self._list_tasks_flow(process_instance_id=pid, name=name))

    @abc.abstractmethod
    def claim_task(self, task_id: str, assignee: str | None = None) -> None: ...

    def unassign_task(self, task_id: str) -> None:
        """Release a claimed task: no one holds it, and those it is offered to may claim it again.

        Releasing a task no one holds is no error. Systems whose API has no such call raise
        :class:`BpmConfigError` saying so.
        """
        raise BpmConfigError(
            f"releasing a claimed task is not supported by the {self.system} API",
            system=self.system,
            conn_id=self.bpm_conn_id,
        )

    @abc.abstractmethod
    def complete_task(self, task_id: str, variables: Mapping[str, Any] | None = None, **options: Any) -> None:
        """Complete an open task; ``options`` are vendor-specific (Questetra's ``flow``, ...)."""

    @abc.abstractmethod
    def list_files(self, instance_id: str) -> Iterator[ProcessFile]: ...

    @contextmanager
    def open_file(self, file: ProcessFile, *, offset: int = 0) -> Iterator[FileStream]:
        """A context manager yielding the file's content as a binary file object.

        The :class:`~airflow_bpm_provider.hooks.file_stream.FileStream` reads like an open file
        (``read(n)``, ``read()``, ``readinto``; fit for ``shutil.copyfileobj`` and boto3's
        ``upload_fileobj``) and still offers the reply's ``iter_bytes``, ``status`` and
        ``headers``. It streams with bounded memory; a body that breaks off raises
        :class:`BpmTransferError`.

        With ``offset`` the request asks for the bytes from there on (``Range: bytes=N-``); the
        server may answer 206 with that range or ignore it (200, the whole file): check ``status``.
        """
        from airflow_bpm_provider.hooks.file_stream import FileStream

        with self._open_reply(file, offset=offset) as reply, FileStream(reply) as stream:
            yield stream

    def _open_reply(self, file: ProcessFile, *, offset: int = 0) -> AbstractContextManager[Reply]:
        """A context manager yielding the file's streamed :class:`Reply`; each dialect's download."""
        raise NotImplementedError(f"{type(self).__name__} cannot download files")

    def ui_url(self, instance_id: str) -> str | None:
        """Where a person sees this process in the BPM system's UI: the ``ui_url`` extra's page.

        The REST API does not say where a web UI (Flowable's or Activiti's apps, the yuuvis
        client) is deployed, if at all, so without the extra there is no address.
        """
        template = self.settings.ui_url
        if template is None:
            return None
        return template.replace("{id}", quote(str(instance_id), safe=""))
