"""BonitaHook: Bonita's REST API (``/bonita/API/bpm/...``) behind the common BPM hook contract.

Facts used here come from Bonita's OpenAPI spec (each request names its ``paths/*.yaml`` file),
the data-and-documents page of Bonita's documentation (seed 001) and Bonita's case-overview
tutorial (``case/{id}?d=processDefinitionId``, then ``archivedCase?f=sourceObjectId=..``).

Auth: a session (``POST /loginservice`` → ``JSESSIONID`` and ``X-Bonita-API-Token`` cookies; the
token goes back as a header on every request of the session, as the spec's global security
(``openapi.yaml``: bonita_auth + bonita_token) requires, which covers the POST/PUT/DELETE Bonita's
CSRF filter checks), renewed once on a 401 by the base class and ended with ``/logoutservice``
when the hook closes; or, with extra ``auth_type: bearer``, an OIDC
access token in ``Authorization: Bearer`` and no session at all.

Bonita has no business key. With extra ``business_key_variable`` set, ``start_process`` sends the
key as the contract input (or, for ``via="case"``, the process variable) of that name, and
``find_process_by_business_key`` reads that case variable of the process's cases to find it again.
The case variable search filters by ``case_id`` only (seed 001, API@bpm@caseVariable.yaml;
archivedCaseVariable requires it), so no search finds a case by a variable's value. Bonita 2025.1+
filters cases by a search index value (``f=searchIndexNValue=``, API@bpm@case.yaml): with extra
``business_key_search_index`` (1-5, the index that shows the key variable) the lookup is one
search per resource, and ``get_process`` reads the key from the case itself.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

from airflow_bpm_provider.exceptions import (
    BpmAuthError,
    BpmConfigError,
    BpmNotFound,
    scrub,
)
from airflow_bpm_provider.hooks import bonita_values as bv
from airflow_bpm_provider.hooks.answers import AnswerChecks, is_id, kind, parse_json
from airflow_bpm_provider.hooks.base import BpmHook
from airflow_bpm_provider.hooks.bonita_data import BonitaDataMixin, BonitaVariable
from airflow_bpm_provider.hooks.http import Flow, Reply, Request
from airflow_bpm_provider.hooks.paging import PageGuard
from airflow_bpm_provider.models import ProcessFile, ProcessInstance, ProcessState, Task

if TYPE_CHECKING:
    from airflow_bpm_provider.hooks.http import SyncTransport

SESSION_COOKIE = "JSESSIONID"
TOKEN_NAME = "X-Bonita-API-Token"  # cookie set by /loginservice, header on every call (openapi.yaml security)
# The largest page by default. Bonita documents no maximum for a search's ``c``
# (components/parameters/pageCount.yaml: "maximum number of elements to retrieve", an integer with
# no bound) and its REST API applies none, so 1000 is chosen: the same bound as Questetra's API,
# 50,000 cases in 50 requests, and a page of cases stays around a megabyte of JSON.
DEFAULT_PAGE_SIZE = 1000
DEFAULT_BUSINESS_KEY_SCAN = 500
# Bonita's ids are Java longs. The spec's looser path pattern (``^[A-Za-z0-9\_\-\.]{0,250}$``)
# lets "." and ".." through, which URL normalisation turns into another resource
# (``userTask/../execution`` is sent as ``/API/bpm/execution``): only digits may enter a path.
_ID = re.compile(r"^[0-9]{1,19}$")
# Newest first (highest case id), so a business-key scan meets a just-started case on its first page.
# ``id`` orders live cases (the order Bonita's own case lists use); for archived cases the spec's
# order fields (API@bpm@archivedCase.yaml) include ``sourceObjectId``, the id the case had while live.
NEWEST_CASES_FIRST = "id DESC"
NEWEST_ARCHIVED_CASES_FIRST = "sourceObjectId DESC"
# What a live case can map to: "error" (FAILED) and "aborting" (CANCELLED) cases are still live
# (/API/bpm/case), only "completed" is never seen there.
LIVE_STATES = frozenset(ProcessState) - {ProcessState.COMPLETED}
START_VIAS = ("instantiation", "case")
FIND_FILTERS = frozenset({"definition", "states", "business_key", "started_by", "query", "page_size"})
DOCUMENT_VERSIONS = ("latest", "all")


class BonitaHook(AnswerChecks, BonitaDataMixin, BpmHook):
    """Bonita (Community and Subscription editions), connection type ``bonita``.

    Connection: host = the Bonita URL with its context root (``https://host:8080/bonita``), login
    and password of a Bonita user (or ``auth_type: bearer`` and the access token as password).
    Extras: ``tenant`` (sent at login), ``business_key_variable``, ``timezone`` (IANA name of the
    server's clock, for Bonita's zone-less timestamps; default UTC), ``page_size`` and
    ``document_versions`` (``latest`` or ``all``: what :meth:`list_files` returns); ``page_size``
    defaults to 1000 (Bonita documents no maximum for ``c``).
    """

    conn_type = "bonita"
    hook_name = "Bonita"
    system = "Bonita"
    context_roots = ("/bonita",)
    session_cookies = (SESSION_COOKIE, TOKEN_NAME)
    default_conn_name = "bonita_default"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._definitions: dict[str, dict[str, Any]] = {}  # process argument → definition
        self._definition_names: dict[str, str] = {}  # definition id → name
        self._session_info: dict[str, Any] | None = None

    # ---- connection extras ------------------------------------------------------------------

    @cached_property
    def timezone(self) -> tzinfo:
        return self.settings.timezone(UTC) or UTC

    @cached_property
    def page_size(self) -> int:
        return self._positive_int(self.settings.extra_value("page_size", DEFAULT_PAGE_SIZE), "page_size")

    @property
    def business_key_variable(self) -> str | None:
        value = self.settings.extra_value("business_key_variable")
        return str(value).strip() or None if value is not None else None

    @cached_property
    def business_key_search_index(self) -> int | None:
        """The search index (1-5) that shows the business-key variable, if the process defines one."""
        value = self.settings.extra_value("business_key_search_index")
        if value in (None, ""):
            return None
        number = self._positive_int(value, "business_key_search_index")
        if number > 5:
            raise BpmConfigError(
                f"business_key_search_index must be 1 to 5 (Bonita has five search indexes), got {value!r}",
                conn_id=self.bpm_conn_id,
            )
        return number

    def _positive_int(self, value: Any, what: str) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if number < 1:
            raise BpmConfigError(
                f"{what} must be a positive integer, got {value!r}", conn_id=self.bpm_conn_id
            )
        return number

    def _check_id(self, value: Any, what: str) -> str:
        text = str(value).strip() if value is not None else ""
        if not _ID.match(text):
            raise BpmConfigError(
                f"{what} must be a Bonita id (digits only), got {value!r}",
                conn_id=self.bpm_conn_id,
            )
        return text

    def _check_options(self, given: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
        unknown = sorted(set(given) - set(allowed))
        if unknown:
            raise BpmConfigError(
                f"{where} does not know {', '.join(map(repr, unknown))}; "
                f"Bonita accepts: {', '.join(sorted(allowed)) or 'nothing'}",
                conn_id=self.bpm_conn_id,
            )

    # ---- auth: session login or bearer token ------------------------------------------------

    @property
    def _bearer(self) -> bool:
        return self.settings.auth_type == "bearer"

    def _login_flow(self) -> Flow[dict[str, str]] | None:
        return None if self._bearer else self._session_login_flow()

    def _login_flow_available(self) -> bool:
        # A refused bearer token stays refused: logging in again would only repeat the 401.
        return not self._bearer

    def _session_login_flow(self) -> Flow[dict[str, str]]:
        """POST /loginservice (loginservice.yaml): form fields, 204 and the CSRF token cookie."""
        s = self.settings
        form: list[tuple[str, Any]] = [("username", s.login), ("password", s.password), ("redirect", "false")]
        tenant = s.extra_value("tenant")
        if tenant is not None:
            form.append(("tenant", str(tenant)))
        # A login creates only a session: sending it again after a network error is harmless.
        request = Request("POST", "/loginservice", data=form, authenticate=False, idempotent=True)
        try:
            reply = yield request
        except BpmAuthError as exc:
            raise self._login_refused(exc.status, exc.server_message) from None
        if reply.status != 204:
            raise self._login_refused(reply.status, f"expected HTTP 204, got {reply.status}")
        self._session_info = None
        token = reply.cookies.get(TOKEN_NAME) or reply.headers.get(TOKEN_NAME)
        if token:
            return {TOKEN_NAME: token}  # the base hook masks it, with the session cookie
        # Servers with CSRF protection switched off set no token; their session cookie is enough.
        self.log.info("Bonita login of %r set no %s cookie; sending changes without it", s.login, TOKEN_NAME)
        return {}

    def _login_refused(self, status: int | None, server_message: str | None) -> BpmAuthError:
        return BpmAuthError(
            f"Bonita refused the login of user {self.settings.login!r}: check the login, the password"
            + (
                f" and the tenant {self.settings.extra_value('tenant')!r}"
                if self.settings.extra_value("tenant")
                else ""
            )
            + " of the connection",
            system=self.system,
            conn_id=self.bpm_conn_id,
            method="POST",
            path="/loginservice",
            status=status,
            server_message=scrub(server_message, self.settings.secrets) if server_message else None,
        )

    def _auth_headers(self, request: Request, session: Mapping[str, str] | None) -> dict[str, str]:
        if self._bearer:
            return {"Authorization": f"Bearer {self.settings.password}"}
        # Every operation's security is the session cookie AND the token header (openapi.yaml),
        # not only the changes the CSRF filter checks.
        return dict(session or {})

    LOGOUT = Request("GET", "/logoutservice", params=[("redirect", "false")])

    def _logout(self, transport: SyncTransport) -> None:
        """GET /logoutservice?redirect=false (logoutservice.yaml); a failure is logged, never raised."""
        if self._bearer or transport.session_headers is None:
            return
        try:
            reply = transport.send(self.LOGOUT, self._headers_for(self.LOGOUT, transport.session_headers))
            self._report_logout(reply.status, None)
        except Exception as exc:  # the work is done; a failed logout only leaves a session to expire
            self._report_logout(None, exc)
        finally:
            transport.session_headers = None
            transport.clear_cookies()

    async def aclose(self) -> None:
        transport = self._async_transport
        if transport is not None and not self._bearer and transport.session_headers is not None:
            try:
                headers = self._headers_for(self.LOGOUT, transport.session_headers)
                self._report_logout((await transport.send(self.LOGOUT, headers)).status, None)
            except Exception as exc:  # see _logout
                self._report_logout(None, exc)
            finally:
                transport.session_headers = None
                transport.clear_cookies()
        await super().aclose()

    def _report_logout(self, status: int | None, exc: Exception | None) -> None:
        if exc is not None:
            # Scrubbed with the session's own cookie and token: those are what a failed logout shows.
            why = scrub(str(exc), self._secrets())
            self.log.warning("Bonita logout for connection %r failed: %s", self.bpm_conn_id, why)
        elif status is not None and not 200 <= status < 300:
            self.log.warning("Bonita logout for connection %r answered HTTP %s", self.bpm_conn_id, status)

    def session_info(self) -> dict[str, Any]:
        """GET /API/system/session/unusedId (API@system@session@unusedId.yaml): user_id, user_name..."""
        if self._session_info is None:
            request = Request("GET", "/API/system/session/unusedId")
            reply = self.request(request)
            body = self._json(request, reply)
            if not isinstance(body, Mapping) or body.get("user_id") in (None, ""):
                raise self._unexpected(request, reply, "no user_id in the session")
            self._session_info = dict(body)
        return self._session_info

    def _probe(self) -> str:
        info = self.session_info()
        version = f" {info['version']}" if info.get("version") else ""
        return f"Logged in to Bonita{version} as {info.get('user_name')!r} (user id {info.get('user_id')})"

    # ---- errors -----------------------------------------------------------------------------

    def _server_message(self, reply: Reply) -> str:
        """Error.yaml's ``message`` (or the 429 body's reason); the raw text when not JSON."""
        try:
            body = parse_json(reply.body)
        except ValueError:  # not JSON, or nested too deeply to read
            return reply.text
        return bv.error_message(body) or reply.text

    def _error_details(self, reply: Reply) -> list[str]:
        """Every ``explanations`` entry: a contract violation lists each broken rule there."""
        try:
            return bv.contract_explanations(parse_json(reply.body))
        except ValueError:
            return []

    # ---- searches ---------------------------------------------------------------------------

    @staticmethod
    def _search_params(
        page: int,
        count: int,
        filters: Mapping[str, Any] | Sequence[tuple[str, Any]] | None,
        order: str | None,
        search: str | None,
        deploy: Sequence[str],
    ) -> list[tuple[str, Any]]:
        """p, c, one ``f=name=value`` per filter, o, s and d (components/parameters/page*.yaml)."""
        params: list[tuple[str, Any]] = [("p", page), ("c", count)]
        pairs = filters.items() if isinstance(filters, Mapping) else (filters or ())
        for name, value in pairs:
            if value is None:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            params.append(("f", f"{name}={value}"))
        if order:
            params.append(("o", order))
        if search:
            params.append(("s", search))
        params.extend(("d", item) for item in deploy)
        return params

    def _page_flow(
        self,
        resource: str,
        page: int,
        count: int,
        *,
        filters: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        order: str | None = None,
        search: str | None = None,
        deploy: Sequence[str] = (),
        guard: PageGuard | None = None,
    ) -> Flow[tuple[list[dict[str, Any]], int | None]]:
        """One page of a search and the total the server announces in ``Content-Range``; a listing
        of several pages passes its ``guard``."""
        request = Request(
            "GET", f"/API/{resource}", params=self._search_params(page, count, filters, order, search, deploy)
        )
        reply = yield request
        body = self._json(request, reply)
        if not isinstance(body, list):
            raise self._unexpected(request, reply, f"a search must answer a JSON array, got {kind(body)}")
        items = self._need_objects(request, reply, body, "the search result")
        if guard is not None:
            problem = guard.problem(_identity(item) for item in items)
            if problem:
                raise self._unexpected(request, reply, problem)
        return items, bv.total_from_content_range(reply.headers.get("content-range"))

    @staticmethod
    def _last_page(batch: list[Any], total: int | None, count: int, seen: int) -> bool:
        if not batch:
            return True
        if total is not None:
            return seen >= total  # the server may cap c below what was asked: trust the total
        return len(batch) < count

    def _search_all_flow(
        self,
        resource: str,
        *,
        filters: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        order: str | None = None,
        deploy: Sequence[str] = (),
        page_size: int | None = None,
    ) -> Flow[list[dict[str, Any]]]:
        """Every page of a search, as one list (for flows that also run in the triggerer)."""
        count = page_size or self.page_size
        items: list[dict[str, Any]] = []
        page, guard = 0, PageGuard()
        while True:
            batch, total = yield from self._page_flow(
                resource, page, count, filters=filters, order=order, deploy=deploy, guard=guard
            )
            items.extend(batch)
            if self._last_page(batch, total, count, len(items)):
                return items
            page += 1

    def search(
        self,
        resource: str,
        *,
        filters: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        order: str | None = None,
        search: str | None = None,
        deploy: Sequence[str] = (),
        page_size: int | None = None,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every item of ``GET /API/{resource}`` (e.g. ``"bpm/case"``), fetched page by page as iterated.

        ``filters`` become repeated ``f=name=value`` parameters, ``order`` is ``o`` (``"name ASC"``),
        ``search`` is ``s`` and ``deploy`` the ``d`` attributes to expand.
        """
        count = self._positive_int(page_size, "page_size") if page_size is not None else self.page_size
        resource = _resource(resource)

        def pages() -> Iterator[dict[str, Any]]:
            page, seen, guard = 0, 0, PageGuard()
            while True:
                batch, total = self._run(
                    self._page_flow(
                        resource,
                        page,
                        count,
                        filters=filters,
                        order=order,
                        search=search,
                        deploy=deploy,
                        guard=guard,
                    )
                )
                for item in batch:
                    if limit is not None and seen >= limit:
                        return
                    seen += 1
                    yield item
                if self._last_page(batch, total, count, page * count + len(batch)):
                    return
                page += 1

        return pages()

    def count(
        self, resource: str, *, filters: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None
    ) -> int:
        """How many items a search matches, from ``Content-Range`` (one item is fetched)."""
        batch, total = self._run(self._page_flow(_resource(resource), 0, 1, filters=filters))
        return total if total is not None else len(batch)

    # ---- process definitions ----------------------------------------------------------------

    def get_process_definition(self, process: str | int) -> dict[str, Any]:
        """The process definition for ``"Name"`` (latest enabled), ``"Name@1.2"`` or a numeric id.

        GET /API/bpm/process/{id} (API@bpm@process@{id}.yaml) or a search on ``name``, ``version``
        and ``activationState`` ordered by ``deploymentDate DESC`` (API@bpm@process.yaml).
        """
        key = str(process).strip() if process is not None else ""
        if not key:
            raise BpmConfigError(
                "process is required: a process name, 'name@version' or id", conn_id=self.bpm_conn_id
            )
        if key in self._definitions:
            return self._definitions[key]
        if key.isdigit():
            definition = self._definition_by_id(key)
        else:
            name, at, version = key.rpartition("@")
            if not at:
                name, version = key, ""
            if not name or (at and not version):
                raise BpmConfigError(
                    f"process {key!r} is neither 'name', 'name@version' nor a numeric id",
                    conn_id=self.bpm_conn_id,
                )
            definition = self._definition_by_name(name, version or None)
        self._definitions[key] = definition
        self._definition_names[str(definition.get("id"))] = str(definition.get("name"))
        return definition

    def _definition_by_id(self, definition_id: str) -> dict[str, Any]:
        request = Request("GET", f"/API/bpm/process/{definition_id}")
        try:
            reply = self.request(request)
        except BpmNotFound as exc:
            raise self._error(
                BpmNotFound,
                f"no process definition with id {definition_id}",
                request,
                status=exc.status,
            ) from None
        body = self._json(request, reply)
        if not isinstance(body, Mapping):
            raise self._unexpected(
                request, reply, f"a process definition must be a JSON object, got {kind(body)}"
            )
        return self._definition(request, reply, dict(body))

    def _definition(self, request: Request, reply: Reply | None, body: dict[str, Any]) -> dict[str, Any]:
        """A process definition (ProcessDefinition.yaml) with a usable id and text name and version."""
        self._need_id(request, reply, body.get("id"), "the process definition's 'id'")
        for key in ("name", "version", "activationState"):
            self._optional(request, reply, body, key, str, "the process definition")
        return body

    def _definition_by_name(self, name: str, version: str | None) -> dict[str, Any]:
        filters = (
            [("name", name), ("version", version)]
            if version
            else [("name", name), ("activationState", "ENABLED")]
        )
        batch, _ = self._run(
            self._page_flow("bpm/process", 0, 1, filters=filters, order="deploymentDate DESC")
        )
        if batch:
            return self._definition(Request("GET", "/API/bpm/process"), None, dict(batch[0]))
        raise self._unknown_process(name, version)

    def _unknown_process(self, name: str, version: str | None) -> BpmNotFound:
        """Name what exists: the versions of ``name``, or close and available process names."""
        deployed: dict[str, list[str]] = {}
        for item in self.search("bpm/process", order="name ASC", limit=1000):
            deployed.setdefault(str(item.get("name")), []).append(
                f"{item.get('version')} ({item.get('activationState', '?')})"
            )
        details: list[str] = []
        if name in deployed:
            what = (
                f"process {name!r} has no version {version!r}"
                if version
                else f"process {name!r} has no enabled version"
            )
            details.append("deployed versions: " + ", ".join(deployed[name]))
        else:
            what = f"no process named {name!r}" + (f" with version {version!r}" if version else "")
            lowered = {n.lower(): n for n in deployed}
            close = difflib.get_close_matches(name.lower(), list(lowered), n=5, cutoff=0.6)
            if close:
                details.append("did you mean: " + ", ".join(lowered[c] for c in close))
            names = sorted(deployed)
            shown = ", ".join(names[:30]) + (f" and {len(names) - 30} more" if len(names) > 30 else "")
            details.append(f"processes visible to user {self.settings.login!r}: {shown or 'none'}")
        return BpmNotFound(
            what,
            system=self.system,
            conn_id=self.bpm_conn_id,
            method="GET",
            path="/API/bpm/process",
            details=details,
        )

    def get_process_contract(self, process: str | int) -> dict[str, Any]:
        """GET /API/bpm/process/{id}/contract (API@bpm@process@{id}@contract.yaml): inputs, constraints."""
        definition_id = self._check_id(self.get_process_definition(process).get("id"), "process id")
        request = Request("GET", f"/API/bpm/process/{definition_id}/contract")
        reply = self.request(request)
        return self._need_object(request, reply, self._json(request, reply), "the contract")

    # ---- starting -----------------------------------------------------------------------------

    def start_process(
        self,
        process: str,
        *,
        variables: Mapping[str, Any] | None = None,
        business_key: str | None = None,
        **options: Any,
    ) -> ProcessInstance:
        """Start a case of ``process`` (``"Name"``, ``"Name@1.2"`` or an id).

        ``variables`` are the contract inputs sent to POST /API/bpm/process/{id}/instantiation
        (API@bpm@process@{id}@instantiation.yaml; a violated contract raises BpmValidationError
        listing every explanation, a 429 is waited out per Retry-After). With option
        ``via="case"`` they are process variables for POST /API/bpm/case (API@bpm@case.yaml), the
        way to start processes that have no contract.
        """
        self._check_options(options, ("via",), "start_process")
        via = options.get("via", "instantiation")
        if via not in START_VIAS:
            raise BpmConfigError(
                f"option via must be one of {', '.join(START_VIAS)}, got {via!r}", conn_id=self.bpm_conn_id
            )
        inputs = dict(variables or {})
        if business_key is not None:
            key_variable = self._require_business_key_variable("start a process with a business_key")
            if key_variable in inputs and str(inputs[key_variable]) != str(business_key):
                raise BpmConfigError(
                    f"variables[{key_variable!r}] = {inputs[key_variable]!r} contradicts "
                    f"business_key {business_key!r}",
                    conn_id=self.bpm_conn_id,
                )
            inputs[key_variable] = str(business_key)
        definition = self.get_process_definition(process)
        state = definition.get("activationState")
        if state not in (None, "ENABLED"):
            raise BpmConfigError(
                f"process {definition.get('name')!r} version {definition.get('version')!r} is {state}: "
                "enable it in Bonita or start another version",
                conn_id=self.bpm_conn_id,
            )
        definition_id = self._check_id(definition.get("id"), "process id")
        if via == "instantiation":
            request = Request(
                "POST", f"/API/bpm/process/{definition_id}/instantiation", json=contract_json(inputs)
            )
            reply = self.request(request)
            body = self._json(request, reply)
            case_id = body.get("caseId") if isinstance(body, Mapping) else None
            if not is_id(case_id):
                raise self._unexpected(request, reply, f"no caseId in the answer (got {kind(case_id)})")
            case_id = str(case_id)
            instance = ProcessInstance(
                id=case_id,
                state=ProcessState.RUNNING,
                definition=definition_id,
                definition_name=definition.get("name"),
                business_key=business_key,
                url=self.ui_url(case_id),
                raw=body,
            )
        else:
            payload = {
                "processDefinitionId": definition_id,
                "variables": [
                    {"name": name, "value": variable_json(value)} for name, value in inputs.items()
                ],
            }
            request = Request("POST", "/API/bpm/case", json=payload)
            reply = self.request(request)
            body = self._json(request, reply)
            if not isinstance(body, Mapping) or not is_id(body.get("id")):
                raise self._unexpected(request, reply, "no case id in the answer")
            instance = self._instance(body, archived=False, business_key=business_key, where=request)
        self.log.info("Started Bonita case %s of %s", instance.id, definition.get("name"))
        return instance

    def _require_business_key_variable(self, action: str) -> str:
        variable = self.business_key_variable
        if not variable:
            raise BpmConfigError(
                f"Bonita has no business key: to {action}, set the connection's extra field "
                "'business_key_variable' to the contract input / case variable that holds it",
                conn_id=self.bpm_conn_id,
            )
        return variable

    # ---- cases ----------------------------------------------------------------------------------

    def _instance(
        self,
        case: Mapping[str, Any],
        *,
        archived: bool,
        business_key: str | None = None,
        where: Request | None = None,
    ) -> ProcessInstance:
        """A ProcessInstance from a case (ProcessInstance.yaml) or archived case (its sourceObjectId).

        ``where`` is the request that answered it, for the error when the case has the wrong shape.
        """
        where = where or Request("GET", "/API/bpm/archivedCase" if archived else "/API/bpm/case")
        id_key = "sourceObjectId" if archived else "id"
        case_id = self._need_id(where, None, case.get(id_key), f"a case's '{id_key}'")
        for key in ("state", "start", "end_date"):
            self._optional(where, None, case, key, str, f"case {case_id}")
        definition = case.get("processDefinitionId")
        if definition is not None and not isinstance(definition, Mapping) and not is_id(definition):
            raise self._wrong(where, None, f"'processDefinitionId' of case {case_id} is {kind(definition)}")
        if isinstance(definition, Mapping):
            self._optional(where, None, definition, "name", str, f"the process of case {case_id}")
        if isinstance(definition, Mapping):  # expanded by d=processDefinitionId
            definition_id = str(definition.get("id")) if definition.get("id") not in (None, "") else None
            definition_name = definition.get("name")
            if definition_id and definition_name:
                self._definition_names[definition_id] = str(definition_name)
        else:
            definition_id = str(definition) if definition not in (None, "") else None
            definition_name = self._definition_names.get(definition_id or "")
        raw_state = case.get("state")
        if bv.CASE_STATES.get((raw_state or "").strip().lower()) is None:
            raise self._wrong(
                where,
                None,
                f"case {case_id} has the unknown state {raw_state!r}; known: {', '.join(bv.CASE_STATES)}",
            )
        return ProcessInstance(
            id=case_id,
            state=bv.process_state(raw_state, case_id=case_id),
            definition=definition_id,
            definition_name=definition_name,
            business_key=business_key,
            started_at=bv.parse_timestamp(case.get("start"), self.timezone),
            ended_at=bv.parse_timestamp(case.get("end_date"), self.timezone),
            url=self.ui_url(case_id),
            raw=case,
            raw_state=raw_state,
        )

    def _get_process_flow(self, instance_id: str) -> Flow[ProcessInstance]:
        return (yield from self._case_flow(instance_id, with_business_key=True))

    def _get_state_flow(self, instance_id: str) -> Flow[ProcessInstance]:
        return (yield from self._case_flow(instance_id, with_business_key=False))

    def _case_flow(self, instance_id: str, *, with_business_key: bool) -> Flow[ProcessInstance]:
        """The live case, else (it 404s once ended) the archived one with that sourceObjectId;
        with its business key (the key variable: one more request) when asked."""
        case_id = self._check_id(instance_id, "case id")
        live = Request("GET", f"/API/bpm/case/{case_id}", params=[("d", "processDefinitionId")])
        try:
            reply = yield live
        except BpmNotFound:
            pass
        else:
            body = self._json(live, reply)
            if not isinstance(body, Mapping):
                raise self._unexpected(live, reply, f"a case must be a JSON object, got {kind(body)}")
            instance = self._instance(body, archived=False, where=live)
            if not with_business_key:
                return self._key_from_index(instance)
            return (yield from self._business_key_flow(instance, archived=False))
        params = self._search_params(0, 1, [("sourceObjectId", case_id)], None, None, ["processDefinitionId"])
        archived = Request("GET", "/API/bpm/archivedCase", params=params)
        reply = yield archived
        body = self._json(archived, reply)
        if not isinstance(body, list):
            raise self._unexpected(archived, reply, f"a search must answer a JSON array, got {kind(body)}")
        body = self._need_objects(archived, reply, body, "the archived cases")
        if not body:
            raise BpmNotFound(
                f"no case {case_id}: neither a live case nor an archived one",
                system=self.system,
                conn_id=self.bpm_conn_id,
                method="GET",
                path=live.path,
                status=404,
            )
        instance = self._instance(body[0], archived=True, where=archived)
        if not with_business_key:
            return self._key_from_index(instance)
        return (yield from self._business_key_flow(instance, archived=True))

    def fill_business_key(self, instance: ProcessInstance) -> ProcessInstance:
        """A listed case with its key: from the search index (no request), else one read of the
        key variable (``archivedCaseVariable`` for an archived case, known by its sourceObjectId)."""
        if instance.business_key not in (None, "") or not self.business_key_variable:
            return instance
        archived = "sourceObjectId" in instance.raw
        return self._run(self._business_key_flow(instance, archived=archived))

    def _key_from_index(self, instance: ProcessInstance) -> ProcessInstance:
        index = self.business_key_search_index if self.business_key_variable else None
        value = instance.raw.get(f"searchIndex{index}Value") if index is not None else None
        return replace_key(instance, str(value)) if value not in (None, "") else instance

    def _business_key_flow(self, instance: ProcessInstance, *, archived: bool) -> Flow[ProcessInstance]:
        """The case with its business key: the search index that shows it (no request), else the
        key variable (caseVariable, or archivedCaseVariable once ended, Bonita 2022.1+). A case
        without the variable, or a server without the archived resource, has no key."""
        variable = self.business_key_variable
        if not variable:
            return instance
        if self.business_key_search_index is not None:
            return self._key_from_index(instance)
        resource = "archivedCaseVariable" if archived else "caseVariable"
        request = Request(
            "GET", f"/API/bpm/{resource}/{self._check_id(instance.id, 'case id')}/{self._name(variable)}"
        )
        try:
            reply = yield request
        except BpmNotFound:
            return instance
        body = self._json(request, reply)
        if not isinstance(body, Mapping):
            raise self._unexpected(request, reply, "a variable must be a JSON object")
        value = self._checked_variable(request, reply, body).value
        return replace_key(instance, str(value)) if value not in (None, "") else instance

    # ---- batched reads for triggers (see hooks/batch_reads.py) ------------------------------

    def _poll_processes_flow(
        self, ids: Sequence[str], definitions: Sequence[str]
    ) -> Flow[dict[str, ProcessInstance]]:
        """Many cases: the case search has no id filter (API@bpm@case.yaml lists
        processDefinitionId, name, started_by, ...), so the open cases of each process in
        ``definitions`` are listed, with ``d=processDefinitionId`` as ``GET case/{id}`` reads them,
        then its archived cases (API@bpm@archivedCase.yaml), newest first, until older than every
        case still missing. Cases not listed are left out, for the caller to read one by one."""
        from airflow_bpm_provider.hooks.batch_reads import LISTING_PAGE, worth_another_page

        found: dict[str, ProcessInstance] = {}
        missing, pages = set(ids), 0
        for definition in definitions:
            page = seen = 0
            while worth_another_page(pages, len(missing)):
                batch, total = yield from self._page_flow(
                    "bpm/case",
                    page,
                    LISTING_PAGE,
                    filters=[("processDefinitionId", self._check_id(definition, "process definition id"))],
                    order="id ASC",
                    deploy=["processDefinitionId"],
                )
                page, pages, seen = page + 1, pages + 1, seen + len(batch)
                for case in batch:
                    if str(case.get("id")) in missing:
                        instance = self._instance(case, archived=False)
                        missing.discard(instance.id)
                        found[instance.id] = instance
                if self._last_page(batch, total, LISTING_PAGE, seen):
                    break
        # Cases that ended: the archive, newest first, as the single read finds them there
        # (archivedCase with d=processDefinitionId); older than every missing case: stop.
        for definition in definitions:
            page = 0
            while missing and worth_another_page(pages, len(missing)):
                batch, _ = yield from self._page_flow(
                    "bpm/archivedCase",
                    page,
                    LISTING_PAGE,
                    filters=[("processDefinitionId", self._check_id(definition, "process definition id"))],
                    order=NEWEST_ARCHIVED_CASES_FIRST,
                    deploy=["processDefinitionId"],
                )
                page, pages = page + 1, pages + 1
                for case in batch:
                    if str(case.get("sourceObjectId")) in missing:
                        instance = self._instance(case, archived=True)
                        missing.discard(instance.id)
                        found[instance.id] = instance
                oldest = min((_int(case.get("sourceObjectId")) for case in batch), default=0)
                if len(batch) < LISTING_PAGE or oldest < min(_int(pid) for pid in missing or ["0"]):
                    break
        return found

    def _poll_tasks_flow(self, wanted: Mapping[str, str], name: str | None) -> Flow[dict[str, list[Task]]]:
        """Ready tasks of many cases (id -> process definition id): the humanTask search filters
        on one caseId (API@bpm@humanTask.yaml), so each process's ready tasks are listed
        (``f=processDefinitionId``, ``f=state=ready``, ``f=name``). Cases whose listing was cut
        short are left out."""
        from airflow_bpm_provider.hooks.batch_reads import (
            LISTING_PAGE,
            by_definition,
            tasks_of,
            worth_another_page,
        )

        found: dict[str, list[Task]] = {}
        pages = 0
        for definition, ids in by_definition(wanted).items():
            filters: list[tuple[str, Any]] = [
                ("processDefinitionId", self._check_id(definition, "process definition id")),
                ("state", "ready"),
            ]
            if name:
                filters.append(("name", name))
            items: list[dict[str, Any]] = []
            page, complete = 0, False
            while worth_another_page(pages, len(wanted) - len(found)):
                batch, total = yield from self._page_flow(
                    "bpm/humanTask", page, LISTING_PAGE, filters=filters
                )
                page, pages = page + 1, pages + 1
                items.extend(batch)
                if self._last_page(batch, total, LISTING_PAGE, len(items)):
                    complete = True
                    break
            if complete:
                found.update(tasks_of(ids, (self._task(item) for item in items), name))
        return found

    def find_processes(self, **filters: Any) -> Iterator[ProcessInstance]:
        """Cases and archived cases matching ``filters``, page after page (live ones first).

        ``definition``: a process name (every version), ``"name@version"`` or an id; ``states``:
        ProcessState values (archived cases are searched only for ended states; live cases for
        every state but COMPLETED, since a live case in ``error`` is FAILED and one ``aborting`` is
        CANCELLED); ``started_by``: a user id; ``business_key`` (needs the extra
        ``business_key_variable``); ``query``: more ``f`` filters passed through untouched (a dict
        or a list of pairs); ``page_size``.
        """
        self._check_options(filters, FIND_FILTERS, "find_processes")
        states = self._states_filter(filters.get("states"))
        query = filters.get("query") or {}
        if not isinstance(query, Mapping | list | tuple):
            raise BpmConfigError(
                f"filter 'query' must be a dict or a list of pairs, got {query!r}", conn_id=self.bpm_conn_id
            )
        page_size = (
            self._positive_int(filters["page_size"], "page_size") if filters.get("page_size") else None
        )
        common: list[tuple[str, Any]] = []
        definition = filters.get("definition")
        if definition is not None:
            text = str(definition).strip()
            if text.isdigit() or "@" in text:
                common.append(("processDefinitionId", self.get_process_definition(text).get("id")))
            else:
                common.append(("name", text))  # the process name: every version (API@bpm@case.yaml)
        if filters.get("started_by") is not None:
            common.append(("started_by", self._check_id(filters["started_by"], "started_by")))
        common.extend(query.items() if isinstance(query, Mapping) else [tuple(pair) for pair in query])
        business_key = filters.get("business_key")
        key_variable = (
            self._require_business_key_variable("find processes by business_key")
            if business_key is not None
            else None
        )
        if key_variable is not None and self.business_key_search_index is not None:
            # The case search filters by the index that shows the key: no variable read per case.
            common.append((f"searchIndex{self.business_key_search_index}Value", str(business_key)))
            key_variable = None
        want_live = states is None or bool(states & LIVE_STATES)
        want_archived = states is None or any(s.ended for s in states)
        resources = [("bpm/case", False)] if want_live else []
        if want_archived:
            resources.append(("bpm/archivedCase", True))

        def results() -> Iterator[ProcessInstance]:
            # The cases already answered for, shared by both searches: a case that ends between them
            # is yielded live and not again archived. A live case left out is not added: once ended
            # it may match (its new state, or its key no longer readable live).
            settled: set[str] = set()
            for resource, archived in resources:
                for case in self.search(
                    resource, filters=common, deploy=["processDefinitionId"], page_size=page_size
                ):
                    instance = self._instance(case, archived=archived)
                    if instance.id in settled:
                        continue
                    if _keep(instance, states) and self._has_key(
                        instance, key_variable, business_key, archived=archived
                    ):
                        settled.add(instance.id)
                        if business_key is not None:
                            yield replace_key(instance, str(business_key))
                        else:  # the key costs nothing only where a search index shows it
                            yield self._key_from_index(instance)
                    elif archived:  # an archived case does not change any more
                        settled.add(instance.id)

        return results()

    def _has_key(
        self, instance: ProcessInstance, variable: str | None, business_key: Any, *, archived: bool
    ) -> bool:
        if variable is None:
            return True
        value = self._business_key_of(instance, variable, archived=archived)
        return value is not None and str(value) == str(business_key)

    def _business_key_of(self, instance: ProcessInstance, variable: str, *, archived: bool) -> Any:
        """The key variable of a case: caseVariable for a case found live, archivedCaseVariable for
        one found archived. The resource decides, not the state: a live case in "error" is FAILED."""
        try:
            if archived:
                return self.get_archived_case_variable(instance.id, variable).value
            return self.get_case_variable(instance.id, variable).value
        except BpmNotFound:
            return None

    def find_process_by_business_key(self, process: str, business_key: str) -> ProcessInstance | None:
        """The newest case of ``process`` (any version) whose business-key variable equals the key.

        Bonita cannot search cases by a variable's value, so this reads the variable of each case
        of the process, newest first: live cases (``o=id DESC``), then archived ones
        (``o=sourceObjectId DESC``) newer than the live match, at most ``business_key_scan_limit``
        (extra, default 500) of each. Newest first matters: a start retried after an unclear
        failure looks here for the case its first attempt may have created, the newest one.
        """
        variable = self.business_key_variable
        if not variable:
            raise NotImplementedError(
                "Bonita has no business key; set the connection extra 'business_key_variable' to enable this"
            )
        name = self.get_process_definition(process).get("name")
        if self.business_key_search_index is not None:
            return self._find_by_search_index(str(name), str(business_key), self.business_key_search_index)
        limit = self._positive_int(
            self.settings.extra_value("business_key_scan_limit", DEFAULT_BUSINESS_KEY_SCAN),
            "business_key_scan_limit",
        )
        found: ProcessInstance | None = None
        for resource, archived, order in (
            ("bpm/case", False, NEWEST_CASES_FIRST),
            ("bpm/archivedCase", True, NEWEST_ARCHIVED_CASES_FIRST),
        ):
            # Per search: a live case whose variable 404'd because it just ended must be read again archived.
            seen: set[str] = set()
            scanned = 0
            for case in self.search(
                resource, filters=[("name", name)], order=order, deploy=["processDefinitionId"]
            ):
                instance = self._instance(case, archived=archived)
                if found is not None and _int(instance.id) <= _int(found.id):
                    break  # newest first: nothing after this is newer than the match in hand
                if instance.id in seen:
                    continue
                seen.add(instance.id)
                scanned += 1
                if scanned > limit:
                    self.log.warning(
                        "Stopped looking for business key %r after the newest %d %s of %s "
                        "(business_key_scan_limit)",
                        business_key,
                        limit,
                        "archived cases" if archived else "cases",
                        name,
                    )
                    break
                if self._has_key(instance, variable, business_key, archived=archived):
                    found = replace_key(instance, str(business_key))
                    break
        return found

    def _find_by_search_index(self, name: str, business_key: str, index: int) -> ProcessInstance | None:
        """The newest case of ``name`` whose search index ``index`` shows ``business_key``: one
        search of the live cases and one of the archived ones (``f=searchIndexNValue=``), one row
        each, newest first; the newer of the two wins."""
        filters = [("name", name), (f"searchIndex{index}Value", business_key)]
        found: ProcessInstance | None = None
        for resource, archived, order in (
            ("bpm/case", False, NEWEST_CASES_FIRST),
            ("bpm/archivedCase", True, NEWEST_ARCHIVED_CASES_FIRST),
        ):
            batch, _ = self._run(
                self._page_flow(resource, 0, 1, filters=filters, order=order, deploy=["processDefinitionId"])
            )
            for case in batch[:1]:
                instance = self._instance(case, archived=archived)
                # the index shows the key, but a server that ignored the filter must not fool us
                if str(case.get(f"searchIndex{index}Value")) != business_key:
                    continue
                if found is None or _int(instance.id) > _int(found.id):
                    found = replace_key(instance, business_key)
        return found

    def find_unclaimed_starts(self, process: str, started_after: datetime) -> list[ProcessInstance]:
        """Cases of ``process`` (any version) this session's user started at or after
        ``started_after`` whose business-key variable is empty (every such case when the
        connection names no ``business_key_variable``): where a start whose answer was lost would be.

        Bonita cannot search cases by start date, so this reads live cases, then archived ones,
        newest first (``f=name``, ``f=started_by``; API@bpm@case.yaml, API@bpm@archivedCase.yaml)
        and stops at the first one started before ``started_after``.
        """
        if started_after.tzinfo is None:
            started_after = started_after.replace(tzinfo=UTC)  # naive is UTC, as everywhere in Airflow
        name = self.get_process_definition(process).get("name")
        user_id = self._check_id(self.session_info()["user_id"], "user_id")
        variable = self.business_key_variable or None
        found: dict[str, ProcessInstance] = {}
        for resource, archived, order in (
            ("bpm/case", False, NEWEST_CASES_FIRST),
            ("bpm/archivedCase", True, NEWEST_ARCHIVED_CASES_FIRST),
        ):
            cases = self.search(resource, filters=[("name", name), ("started_by", user_id)], order=order)
            for case in cases:
                instance = self._instance(case, archived=archived)
                if instance.started_at is not None and instance.started_at < started_after:
                    break  # newest first: every case after this one is older still
                if instance.id in found:
                    continue
                if variable is None or self._business_key_of(instance, variable, archived=archived) in (
                    None,
                    "",
                ):
                    found[instance.id] = instance
        return list(found.values())

    def cancel_process(self, instance_id: str) -> None:
        """PUT /API/bpm/case/{id} ``{"state": "cancelled"}`` (API@bpm@case@{id}.yaml, Bonita 2025.1+).

        A case that has already ended is left alone (it is logged); an unknown case raises BpmNotFound.
        """
        case_id = self._check_id(instance_id, "case id")
        try:
            self.request(Request("PUT", f"/API/bpm/case/{case_id}", json={"state": "cancelled"}))
        except BpmNotFound:
            instance = self.get_process(case_id)
            if not instance.ended:
                raise
            self.log.info(
                "Bonita case %s had already ended (%s); nothing to cancel", case_id, instance.raw_state
            )

    def delete_case(self, instance_id: str) -> None:
        """DELETE /API/bpm/case/{id} (API@bpm@case@{id}.yaml): the case and its data are gone."""
        case_id = self._check_id(instance_id, "case id")
        self.request(Request("DELETE", f"/API/bpm/case/{case_id}"))

    def ui_url(self, instance_id: str) -> str | None:
        # The "process overview" short URL of Bonita's Applications URLs page.
        return f"{self.base_url}/portal/form/processInstance/{quote(str(instance_id), safe='')}"

    # ---- tasks ----------------------------------------------------------------------------------

    def _task(self, raw: Any, where: Request | None = None, reply: Reply | None = None) -> Task:
        """A Task from a HumanTask (HumanTask.yaml); ``assigned_id`` is "" or "0" when unassigned."""
        where = where or Request("GET", "/API/bpm/humanTask")
        raw = self._need_object(where, reply, raw, "a task")
        self._need_id(where, reply, raw.get("id"), "a task's 'id'")
        for key in ("name", "state"):
            self._optional(where, reply, raw, key, str, "a task")
        assignee = raw.get("assigned_id")
        case = raw.get("caseId") or raw.get("parentCaseId") or raw.get("rootCaseId")
        for value, what in ((assignee, "'assigned_id'"), (case, "'caseId'")):
            if value not in (None, "") and not is_id(value):
                raise self._wrong(where, reply, f"a task's {what} must be an id, got {kind(value)}")
        return Task(
            id=str(raw.get("id")),
            name=raw.get("name"),
            process_instance_id=str(case) if case not in (None, "") else None,
            assignee=str(assignee) if assignee not in (None, "", "0", 0, "-1") else None,
            raw=raw,
            state=raw.get("state"),
        )

    def _list_tasks_flow(
        self, *, process_instance_id: str | None = None, name: str | None = None
    ) -> Flow[list[Task]]:
        """GET /API/bpm/humanTask with f=caseId, f=state=ready and f=name (API@bpm@humanTask.yaml)."""
        filters: list[tuple[str, Any]] = []
        if process_instance_id is not None:
            filters.append(("caseId", self._check_id(process_instance_id, "case id")))
        filters.append(("state", "ready"))
        if name:
            filters.append(("name", name))
        items = yield from self._search_all_flow("bpm/humanTask", filters=filters)
        return [self._task(item) for item in items]

    def get_task(self, task_id: str) -> Task:
        """GET /API/bpm/humanTask/{id} (API@bpm@humanTask@{id}.yaml)."""
        request = Request("GET", f"/API/bpm/humanTask/{self._check_id(task_id, 'task id')}")
        reply = self.request(request)
        return self._task(self._json(request, reply), request, reply)

    def claim_task(self, task_id: str, assignee: str | None = None) -> None:
        """PUT /API/bpm/humanTask/{id} ``{"assigned_id": ...}`` (HumanTaskUpdateRequest.yaml).

        ``assignee`` is a Bonita user id; None (or the logged-in user's name) means the logged-in user.
        """
        task = self._check_id(task_id, "task id")
        if assignee in (None, ""):
            user_id = str(self.session_info()["user_id"])
        elif str(assignee).strip().isdigit():
            user_id = str(assignee).strip()
        elif str(assignee) == str(self.session_info().get("user_name")):
            user_id = str(self.session_info()["user_id"])
        else:
            raise BpmConfigError(
                f"assignee must be a Bonita user id (digits), got {assignee!r}", conn_id=self.bpm_conn_id
            )
        self.request(Request("PUT", f"/API/bpm/humanTask/{task}", json={"assigned_id": user_id}))

    def unassign_task(self, task_id: str) -> None:
        """PUT /API/bpm/humanTask/{id} ``{"assigned_id": ""}``.

        The update request (HumanTaskUpdateRequest.yaml) types ``assigned_id`` as a string and a
        task reads ``0`` once "unassigned" (FlowNode.yaml), but neither says which value releases
        it: the empty id is an assumption (what Bonita's portal sends), unverified on a server.
        """
        task = self._check_id(task_id, "task id")
        self.request(Request("PUT", f"/API/bpm/humanTask/{task}", json={"assigned_id": ""}))

    def complete_task(self, task_id: str, variables: Mapping[str, Any] | None = None, **options: Any) -> None:
        """POST /API/bpm/userTask/{id}/execution (API@bpm@userTask@{id}@execution.yaml).

        ``variables`` are the task's contract inputs; option ``assign=True`` adds ``?assign=true``
        so Bonita assigns the task to the logged-in user first.
        """
        self._check_options(options, ("assign",), "complete_task")
        task = self._check_id(task_id, "task id")
        params = [("assign", "true")] if options.get("assign") else None
        self.request(
            Request(
                "POST",
                f"/API/bpm/userTask/{task}/execution",
                params=params,
                json=contract_json(dict(variables or {})),
            )
        )

    def get_task_contract(self, task_id: str) -> dict[str, Any]:
        """GET /API/bpm/userTask/{id}/contract (API@bpm@userTask@{id}@contract.yaml)."""
        request = Request("GET", f"/API/bpm/userTask/{self._check_id(task_id, 'task id')}/contract")
        reply = self.request(request)
        return self._need_object(request, reply, self._json(request, reply), "the contract")

    # ---- files of a case --------------------------------------------------------------------------

    def list_files(self, instance_id: str, *, all_versions: bool | None = None) -> Iterator[ProcessFile]:
        """The documents of a case, live and archived: the latest version of each by default.

        ``all_versions`` (default: extra ``document_versions`` = ``all``) lists every version.
        External documents (``isInternal`` false) are listed with ``external_url`` set, never dropped.
        """
        case_id = self._check_id(instance_id, "case id")
        if all_versions is None:
            mode = str(self.settings.extra_value("document_versions", "latest")).strip().lower()
            if mode not in DOCUMENT_VERSIONS:
                raise BpmConfigError(
                    f"extra field 'document_versions' must be latest or all, got {mode!r}",
                    conn_id=self.bpm_conn_id,
                )
            all_versions = mode == "all"
        live = list(self.search("bpm/caseDocument", filters=[("caseId", case_id)]))
        archived = list(self.search("bpm/archivedCaseDocument", filters=[("caseId", case_id)]))
        if not live and not archived:
            self.get_process(case_id)  # BpmNotFound for a case that does not exist
        chosen = _pick_versions(live, archived, all_versions=all_versions)
        files = [self._process_file(case_id, document) for document in chosen]
        external = [f.name for f in files if f.external_url]
        if external:
            self.log.info(
                "Case %s has %d external document(s) Bonita only links to: %s",
                case_id,
                len(external),
                external,
            )
        return iter(files)

    def _process_file(self, case_id: str, document: Mapping[str, Any]) -> ProcessFile:
        where = Request("GET", "/API/bpm/caseDocument")
        if not is_id(document.get("sourceObjectId") or document.get("id")):
            raise self._wrong(where, None, "a document has no usable 'id'")
        for key in ("url", "fileName", "name", "contentMimetype", "contentStorageId"):
            self._optional(where, None, document, key, (str, int), "a document")
        url = str(document.get("url") or "") or None
        internal = bv.is_true(document.get("isInternal", True))
        name = document.get("fileName") or (urlsplit(url).path.rsplit("/", 1)[-1] if url else None)
        return ProcessFile(
            name=str(name or document.get("name") or f"document-{document.get('id')}"),
            size=None,  # Bonita does not tell the size of a document before its download
            content_type=document.get("contentMimetype") or None,
            process_instance_id=str(document.get("caseId") or case_id),
            ref={
                "document_id": str(document.get("sourceObjectId") or document.get("id")),
                "version": document.get("version"),
                "url": url,
                "contentStorageId": document.get("contentStorageId"),
                "fileName": document.get("fileName"),
            },
            raw=document,
            group=document.get("name"),
            external_url=None if internal else url,
        )

    @contextmanager
    def _open_reply(self, file: ProcessFile, *, offset: int = 0) -> Iterator[Reply]:
        """GET /portal/documentDownload?fileName=..&contentStorageId=.. streamed (the document's ``url``)."""
        if file.external_url:
            raise BpmNotFound(
                f"document {file.group!r} ({file.name}) is external: Bonita stores only its link "
                f"{file.external_url}, download it from there",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        headers = {"Range": f"bytes={int(offset)}-"} if offset else {}
        params = self._download_params(file)
        request = Request("GET", "/portal/documentDownload", params=params, headers=headers, stream=True)
        reply = self.request(request)
        try:
            yield reply
        finally:
            reply.close()

    def _download_params(self, file: ProcessFile) -> list[tuple[str, str]]:
        ref = file.ref or {}
        url = str(ref.get("url") or "")
        if url.split("?", 1)[0].endswith("documentDownload") and "?" in url:
            params = parse_qsl(url.split("?", 1)[1], keep_blank_values=True)
            if any(key == "contentStorageId" for key, _ in params):
                return params
        storage = ref.get("contentStorageId")
        if storage in (None, ""):
            raise BpmConfigError(
                f"file {file.name!r} has no contentStorageId: it does not come from BonitaHook.list_files",
                conn_id=self.bpm_conn_id,
            )
        return [("fileName", str(ref.get("fileName") or file.name)), ("contentStorageId", str(storage))]


# ---- helpers ------------------------------------------------------------------------------------


def contract_json(value: Any) -> Any:
    """Contract inputs as JSON: dates in ISO 8601 (LOCALDATE / OFFSETDATETIME inputs), Decimal as number."""
    if isinstance(value, Mapping):
        return {str(k): contract_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [contract_json(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def variable_json(value: Any) -> Any:
    """Variables for POST /API/bpm/case: dates in epoch milliseconds (ProcessInstanceCreateRequest.yaml)."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp() * 1000)
    return contract_json(value)


def _resource(resource: str) -> str:
    """``"bpm/case"`` from ``"bpm/case"``, ``"/API/bpm/case"`` or ``"API/bpm/case/"``."""
    text = resource.strip("/")
    return text[4:] if text.startswith("API/") else text


def _identity(item: Mapping[str, Any]) -> str:
    """What tells one search item from another for the page guard: its id, else (variables) its name."""
    return f"{item.get('id')}|{item.get('sourceObjectId')}|{item.get('case_id')}|{item.get('name')}"


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _pick_versions(
    live: list[Mapping[str, Any]], archived: list[Mapping[str, Any]], *, all_versions: bool
) -> list[Mapping[str, Any]]:
    """One entry per document (the highest version) or every version, in name/index/version order.

    A live document's ``id`` is the ``sourceObjectId`` of its archived versions; a case that ended
    has only archived entries.
    """
    versions: dict[tuple[str, int], tuple[bool, Mapping[str, Any]]] = {}
    for is_live, documents in ((False, archived), (True, live)):
        for document in documents:
            identity = str(
                document.get("id") if is_live else (document.get("sourceObjectId") or document.get("id"))
            )
            versions[(identity, _int(document.get("version")))] = (is_live, document)  # live wins a tie
    if not all_versions:
        latest: dict[str, tuple[int, Mapping[str, Any]]] = {}
        for (identity, version), (_, document) in versions.items():
            if identity not in latest or version >= latest[identity][0]:
                latest[identity] = (version, document)
        chosen = [document for _, document in latest.values()]
    else:
        chosen = [document for _, document in versions.values()]
    return sorted(
        chosen,
        key=lambda d: (str(d.get("name")), _int(d.get("index")), _int(d.get("version")), str(d.get("id"))),
    )


def _keep(instance: ProcessInstance, states: frozenset[ProcessState] | None) -> bool:
    return states is None or instance.state in states


def replace_key(instance: ProcessInstance, business_key: str) -> ProcessInstance:
    from dataclasses import replace

    return replace(instance, business_key=business_key)


__all__ = ["BonitaHook", "BonitaVariable", "contract_json", "variable_json"]
