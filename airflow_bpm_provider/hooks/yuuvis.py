"""YuuvisBpmHook: the yuuvis Momentum BPM engine (Flowable inside) behind the yuuvis API gateway.

Every call carries Basic (or Bearer) credentials plus the tenant in ``X-ID-TENANT-NAME``; the
gateway answers with a ``GWSESSIONID`` cookie that the transport's session sends back, so one
hook keeps one gateway session. Lists come in the envelope
``{objects, numItems, totalNumItems?, hasMoreItems}`` and are paged with ``page`` (0-based) and
``size`` until ``hasMoreItems`` is false. Files of a process are the DMS objects it references
(a ``documentId``-style variable, or attachments), read from ``/api/dms/objects/{id}``.

Facts not confirmed by the vendor documentation are marked "(unverified)" and each sits behind
one function, so a correction touches one place.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from itertools import count
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_bpm_provider.exceptions import (
    BpmAuthError,
    BpmConfigError,
    BpmError,
    BpmNotFound,
    BpmValidationError,
)
from airflow_bpm_provider.hooks.answers import AnswerChecks, is_id, kind
from airflow_bpm_provider.hooks.base import BpmHook
from airflow_bpm_provider.hooks.disposition import content_length, file_name_from_reply
from airflow_bpm_provider.hooks.http import Flow, Reply, Request
from airflow_bpm_provider.hooks.paging import PageGuard
from airflow_bpm_provider.hooks.yuuvis_mapping import (
    DEFINITION_FILTERS,
    PROCESS_FILTERS,
    TASK_FILTERS,
    content_stream,
    definition_key,
    document_references,
    first_object,
    has_more_items,
    int_or_none,
    parse_timestamp,
    positive_page_size,
    process_state,
    state_params,
    task_from,
    task_query,
    typed_variables,
    vendor_params,
)
from airflow_bpm_provider.models import ProcessFile, ProcessInstance, ProcessState, Task

if TYPE_CHECKING:
    pass

API = "/bpm-engine/api"
DMS_OBJECTS = "/api/dms/objects"
# (unverified) The current user's own record. Neither the reference (docs/bpm-api-reference.md
# section 4) nor seed 002 documents this endpoint or its answer; the user id is taken from its
# ``id`` field. Seed 002 only says startedBy takes a userId (``startUserId``, UUID-like), which is
# not the login name. Set extra ``user_id`` to skip this call.
CURRENT_USER = "/tenant-management/api/idm/me"
TENANT_HEADER = "X-ID-TENANT-NAME"
SESSION_COOKIE = "GWSESSIONID"
# The largest page by default. yuuvis documents no maximum for ``size`` (seed 002 shows only
# ``page`` and ``size``; the engine inside is Flowable, which applies none either), so 1000 is
# chosen: Questetra's documented bound, 50,000 processes in 50 requests, pages near a megabyte.
DEFAULT_PAGE_SIZE = 1000
DEFAULT_DOCUMENT_VARIABLES = ("documentId",)
TASK_ACTIONS = ("claim", "complete", "delegate", "resolve")
UNASSIGNED = "\x00unassigned"  # sentinel of _task_action: send ``"assignee": null``
GENERIC_PROCESS_FILTERS = ("definition", "states", "query", "page_size")
VISIBILITY_HINT = "yuuvis shows a user only the processes they started and the tasks they may act on"
START_PERMISSION_HINT = (
    "starting needs the start permission on the definition: "
    "list_process_definitions(startable_by_user=<user id>) shows the definitions a user may start"
)
READ_PERMISSION_HINT = (
    "the yuuvis DMS lets a user read an object only when one of the user's roles grants read permission on it"
)


class YuuvisBpmHook(AnswerChecks, BpmHook):
    """Starts, finds, cancels processes, works on tasks and downloads the DMS documents of a process.

    Connection: host = the API gateway (``https://host``), login + password (Basic) or a token in
    the password field with extra ``auth_type: bearer``, extra ``tenant`` (required). Optional
    extras: ``document_variables`` (variable names holding DMS object ids, default
    ``["documentId"]``) and ``user_id`` (the yuuvis user id: ``startedBy`` when adopting lost
    starts and the assignee when claiming a task for oneself; when unset it is read once from
    ``GET /tenant-management/api/idm/me``; a login is never sent in its place).
    """

    conn_name_attr = "bpm_conn_id"
    default_conn_name = "yuuvis_bpm_default"
    conn_type = "yuuvis_bpm"
    hook_name = "yuuvis Momentum BPM engine"
    system = "yuuvis Momentum"
    session_cookies = (SESSION_COOKIE,)

    # ---- connection -------------------------------------------------------------------------

    @cached_property
    def tenant(self) -> str:
        value = self.settings.extra_value("tenant")
        if not value or not str(value).strip():
            raise BpmConfigError(
                "extra field 'tenant' is required: the yuuvis tenant name, sent as the "
                f"{TENANT_HEADER} header on every call",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        return str(value).strip()

    @cached_property
    def page_size(self) -> int:
        """The connection's ``page_size`` extra: default 1000, lower to ask for smaller pages."""
        return positive_page_size(
            self.settings.extra_value("page_size", DEFAULT_PAGE_SIZE), conn_id=self.bpm_conn_id
        )

    @cached_property
    def document_variables(self) -> tuple[str, ...]:
        raw = self.settings.extra_value("document_variables", DEFAULT_DOCUMENT_VARIABLES)
        if isinstance(raw, str):
            text = raw.strip()
            if text.startswith("["):
                try:
                    raw = json.loads(text)
                except ValueError:
                    raise BpmConfigError(
                        f"extra field 'document_variables' is not a JSON list: {raw!r}",
                        conn_id=self.bpm_conn_id,
                    ) from None
            else:
                raw = [part for part in (p.strip() for p in text.split(",")) if part]
        if not isinstance(raw, list | tuple) or not all(isinstance(n, str) and n for n in raw):
            raise BpmConfigError(
                "extra field 'document_variables' must be a list of variable names "
                f"(or a comma-separated string), got {raw!r}",
                conn_id=self.bpm_conn_id,
            )
        return tuple(raw)

    def _auth_headers(self, request: Request, session: Mapping[str, str] | None) -> dict[str, str]:
        return {**super()._auth_headers(request, session), TENANT_HEADER: self.tenant}

    def _error_details(self, reply: Reply) -> list[str]:
        if reply.status == 401:
            return [
                f"the gateway checks the credentials within tenant '{self.tenant}' "
                f"(extra field 'tenant', sent as {TENANT_HEADER})"
            ]
        if reply.status == 403:
            hint = permission_hint(self._path_of(reply))
            return [hint] if hint else []
        return []

    def _path_of(self, reply: Reply) -> str:
        """The API path a reply answers (its URL without the connection's base URL)."""
        base = self.base_url.rstrip("/")
        url = reply.url.split("?", 1)[0]
        return url[len(base) :] if url.startswith(base) else url

    def _who(self) -> str:
        login = self.settings.login if self.settings.auth_type == "basic" else None
        return f"user '{login}'" if login else "this user"

    def _invisible(self, exc: BpmError, what: str) -> BpmError:
        """A 404/403 on a process: yuuvis hides processes other users started, so say both causes.

        A 401 (credentials refused) stays as it is.
        """
        if _refused_credentials(exc):
            return exc
        return _rephrase(
            exc,
            f"{what} does not exist or {self._who()} may not see it "
            "(yuuvis shows a user only the processes they started)",
        )

    def _task_invisible(self, exc: BpmError, task_id: str) -> BpmError:
        """A 404/403 on a task: it ended, never existed, or is not this user's to see or act on."""
        if _refused_credentials(exc):
            return exc
        who = self._who()
        return _rephrase(exc, f"task '{task_id}' does not exist, has ended, or {who} may not act on it")

    def _unreadable(self, exc: BpmError, what: str) -> BpmError:
        """A 404/403 on a DMS object: the DMS answers both for objects the user may not read."""
        if _refused_credentials(exc):
            return exc
        return _rephrase(exc, f"{what} does not exist or {self._who()} may not read it")

    # ---- probe and definitions --------------------------------------------------------------

    def _probe(self) -> str:
        reply = self.request(Request("GET", f"{API}/process-definitions", params={"page": 0, "size": 1}))
        body = self._json_object(Request("GET", f"{API}/process-definitions"), reply)
        total = body.get("totalNumItems", body.get("numItems"))
        seen = (
            f"{total} process definition(s) visible" if total is not None else "process definitions readable"
        )
        return f"{self.system} BPM engine reachable as tenant '{self.tenant}': {seen}"

    def list_process_definitions(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every process definition matching ``filters`` (``key``, ``latest``, ``name_like``, ...)."""
        params = vendor_params(
            filters,
            DEFINITION_FILTERS,
            what="process definition filter",
            system=self.system,
            conn_id=self.bpm_conn_id,
        )
        yield from self._pages(f"{API}/process-definitions", params, self.page_size)

    def latest_process_definition(self, key: str) -> dict[str, Any]:
        """The newest deployed version of the definition ``key``; BpmNotFound when there is none."""
        found = list(self._pages(f"{API}/process-definitions", {"key": key, "latest": "true"}, 10))
        where = Request("GET", f"{API}/process-definitions")
        for definition in found:
            version = definition.get("version")
            if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
                raise self._wrong(
                    where, None, f"'version' of definition '{key}' must be a number, got {kind(version)}"
                )
        if not found:
            raise BpmNotFound(
                f"no process definition with key '{key}' is deployed (or visible)",
                system=self.system,
                conn_id=self.bpm_conn_id,
                method="GET",
                path=f"{API}/process-definitions",
            )
        return max(found, key=lambda d: int(d.get("version") or 0))

    # ---- processes --------------------------------------------------------------------------

    def start_process(
        self,
        process: str,
        *,
        variables: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        business_key: str | None = None,
        **options: Any,
    ) -> ProcessInstance:
        """Start the latest version of the definition with key ``process``.

        ``variables`` is a mapping (typed from the Python values, see :func:`typed_variables`) or a
        list of ready ``{name, type, value}`` dicts. Option ``name`` names the instance.
        """
        unknown = sorted(set(options) - {"name"})
        if unknown:
            raise BpmConfigError(
                f"unknown start option(s) for {self.system}: {', '.join(unknown)}; known: name",
                conn_id=self.bpm_conn_id,
            )
        if not process or not str(process).strip():
            raise BpmConfigError("a process definition key is required", conn_id=self.bpm_conn_id)
        body: dict[str, Any] = {"processDefinitionKey": str(process)}
        if business_key is not None:
            body["businessKey"] = str(business_key)
        if options.get("name") is not None:
            body["name"] = str(options["name"])
        typed = typed_variables(variables, conn_id=self.bpm_conn_id)
        if typed:
            body["variables"] = typed
        request = Request("POST", f"{API}/processes", json=body)  # never idempotent: it starts a process
        try:
            reply = self.request(request)
        except BpmValidationError as exc:
            raise _rephrase(
                exc,
                f"yuuvis refused to start process definition '{process}': the definition key is "
                "unknown or a variable was refused",
            ) from None
        except BpmAuthError as exc:
            if _refused_credentials(exc):
                raise
            raise _rephrase(
                exc,
                f"permission denied: {self._who()} may not start process definition '{process}'",
                details=[*exc.details, START_PERMISSION_HINT],
            ) from None
        return self._instance(first_object(self._json(request, reply)), request, reply)

    def _get_process_flow(self, instance_id: str) -> Flow[ProcessInstance]:
        request = Request("GET", f"{API}/processes/{segment(instance_id)}")
        try:
            reply = yield request
        except (BpmNotFound, BpmAuthError) as exc:
            raise self._invisible(exc, f"process instance '{instance_id}'") from None
        return self._instance(first_object(self._json(request, reply)), request, reply)

    # ---- batched reads for triggers (see hooks/batch_reads.py) ------------------------------

    def _poll_processes_flow(
        self, ids: Sequence[str], definitions: Sequence[str]
    ) -> Flow[dict[str, ProcessInstance]]:
        """Many processes: ``GET processes`` has no id filter (seed 002), so the running processes
        of each definition key in ``definitions`` are listed (``processDefinitionKey``,
        ``isCompleted=false``), then its completed ones, newest first (``sort=desc``), where the
        processes just completed are. Processes not listed (of another definition, or completed
        long ago) are left out, for the caller to read one by one."""
        from airflow_bpm_provider.hooks.batch_reads import LISTING_PAGE, worth_another_page

        found: dict[str, ProcessInstance] = {}
        missing, pages = set(ids), 0
        listing = Request("GET", f"{API}/processes")
        running = [{"processDefinitionKey": key, "isCompleted": False} for key in definitions]
        newest_completed = [
            {"processDefinitionKey": key, "isCompleted": True, "sort": "desc"} for key in definitions
        ]
        for params in running + newest_completed:
            page, more = 0, True
            while more and missing and worth_another_page(pages, len(missing)):
                objects, more = yield from self._page_flow(listing.path, params, page, LISTING_PAGE)
                page, pages = page + 1, pages + 1
                more = more and bool(objects)
                for raw in objects:
                    if isinstance(raw, Mapping) and str(raw.get("id")) in missing:
                        instance = self._instance(raw, listing, None)
                        missing.discard(instance.id)
                        found[instance.id] = instance
        return found

    def _poll_tasks_flow(self, wanted: Mapping[str, str], name: str | None) -> Flow[dict[str, list[Task]]]:
        """Open tasks of many processes (id -> definition key): each definition's tasks are listed
        (``GET tasks?processDefinitionKey=..``, bpm-api-reference), ``name`` filtered here too.
        Processes whose listing was cut short are left out."""
        from airflow_bpm_provider.hooks.batch_reads import (
            LISTING_PAGE,
            by_definition,
            tasks_of,
            worth_another_page,
        )

        found: dict[str, list[Task]] = {}
        pages = 0
        listing = Request("GET", f"{API}/tasks")
        for key, ids in by_definition(wanted).items():
            params = {"processDefinitionKey": key, **({"name": name} if name is not None else {})}
            objects: list[dict[str, Any]] = []
            page, more = 0, True
            while more and worth_another_page(pages, len(wanted) - len(found)):
                batch, more = yield from self._page_flow(listing.path, params, page, LISTING_PAGE)
                page, pages = page + 1, pages + 1
                more = more and bool(batch)
                objects.extend(batch)
            if not more:
                found.update(tasks_of(ids, (self._task(raw, listing, None) for raw in objects), name))
        return found

    def get_process_raw(self, instance_id: str, *, include_variables: bool = True) -> dict[str, Any]:
        """The vendor's process instance, with its variables unless told otherwise."""
        request = Request(
            "GET",
            f"{API}/processes/{segment(instance_id)}",
            params={"includeProcessVariables": True} if include_variables else None,
        )
        try:
            reply = self.request(request)
        except (BpmNotFound, BpmAuthError) as exc:
            raise self._invisible(exc, f"process instance '{instance_id}'") from None
        return self._need_object(
            request, reply, first_object(self._json(request, reply)), "the process instance"
        )

    def find_processes(self, **filters: Any) -> Iterator[ProcessInstance]:
        """Every visible process matching ``filters``, page after page.

        Generic filters: ``definition`` (definition key), ``business_key``, ``states`` (ProcessState
        values), ``query`` (a dict of vendor query parameters passed through untouched) and
        ``page_size``. Every filter of GET /bpm-engine/api/processes is accepted under its
        Pythonic name (``started_after``, ``name_like``, ...) or its vendor name (``startedAfter``).
        Filters given explicitly win over those derived from ``states``; the states are then
        also checked on each result, because the API cannot tell COMPLETED from CANCELLED.
        """
        filters = dict(filters)
        definition = filters.pop("definition", None)
        states = self._states_filter(filters.pop("states", None))
        query = filters.pop("query", None) or {}
        page_size = positive_page_size(filters.pop("page_size", self.page_size), conn_id=self.bpm_conn_id)
        if not isinstance(query, Mapping):
            raise BpmConfigError(f"filter 'query' must be a dict, got {query!r}", conn_id=self.bpm_conn_id)
        params: dict[str, Any] = dict(state_params(states))
        if definition is not None:
            params["processDefinitionKey"] = str(definition)
        params.update(
            vendor_params(
                filters,
                PROCESS_FILTERS,
                what="process filter",
                system=self.system,
                conn_id=self.bpm_conn_id,
                also_known=GENERIC_PROCESS_FILTERS,
            )
        )
        params.update(query)
        return self._find_processes(params, states, page_size)

    def _find_processes(
        self, params: dict[str, Any], states: frozenset[ProcessState] | None, page_size: int
    ) -> Iterator[ProcessInstance]:
        request = Request("GET", f"{API}/processes")
        try:
            for raw in self._pages(f"{API}/processes", params, page_size):
                instance = self._instance(raw, request, None)
                if states is None or instance.state in states:
                    yield instance
        except (BpmValidationError, BpmAuthError) as exc:
            started_by = params.get("startedBy")
            if started_by is None or exc.status not in (400, 403):
                raise
            # Seed 002: without admin access only the own user id is allowed as startedBy.
            raise _rephrase(
                exc,
                f"yuuvis refused to list the processes started by '{started_by}': only admins may "
                f"list processes started by other users; {self._who()} may pass only their own "
                "user id as startedBy",
            ) from None

    def find_process_by_business_key(self, process: str, business_key: str) -> ProcessInstance | None:
        params = {"businessKey": str(business_key), "processDefinitionKey": str(process)}
        request = Request("GET", f"{API}/processes")
        found = [
            self._instance(raw, request, None) for raw in self._pages(request.path, params, self.page_size)
        ]
        if not found:
            return None
        epoch = datetime.min.replace(tzinfo=UTC)
        return max(found, key=lambda p: (p.started_at or epoch, p.id))

    def find_unclaimed_starts(self, process: str, started_after: datetime) -> list[ProcessInstance]:
        """Instances of definition ``process`` this user started after ``started_after`` without a
        business key: where a start whose answer was lost would be.

        GET /bpm-engine/api/processes with ``processDefinitionKey``, ``startedBy`` (the user id:
        extra ``user_id``, else :attr:`current_user_id`; seed 002: a userId, and a non-admin may
        name only themselves) and ``startedAfter``; the missing key is checked here.
        """
        filters: dict[str, Any] = {
            "definition": process,
            "started_after": started_after,
            "started_by": self.current_user_id,
        }
        return [p for p in self.find_processes(**filters) if p.business_key in (None, "")]

    @cached_property
    def current_user_id(self) -> str:
        """The yuuvis user id of this connection's user: extra ``user_id``, else read once per hook
        from GET /tenant-management/api/idm/me (``id``, unverified). Never the login: seed 002's
        userIds (``startUserId``) are the identity provider's ids, not login names."""
        configured = self.settings.extra_value("user_id")
        if configured is not None and str(configured).strip():
            return str(configured).strip()
        request = Request("GET", CURRENT_USER)
        try:
            reply = self.request(request)
        except (BpmNotFound, BpmAuthError) as exc:
            if _refused_credentials(exc):
                raise
            raise BpmConfigError(
                f"the yuuvis user id of {self._who()} could not be read from GET {CURRENT_USER} "
                f"(HTTP {exc.status}): set extra field 'user_id' to the user's yuuvis user id "
                "(not the login name)",
                system=self.system,
                conn_id=self.bpm_conn_id,
            ) from exc
        body = self._json(request, reply)
        user_id = body.get("id") if isinstance(body, Mapping) else None
        if not isinstance(user_id, str) or not user_id.strip():
            raise BpmConfigError(
                f"GET {CURRENT_USER} answered no user id ('id'): set extra field 'user_id' to the "
                "user's yuuvis user id (not the login name)",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        return user_id.strip()

    def cancel_process(self, instance_id: str) -> None:
        try:
            self.request(Request("DELETE", f"{API}/processes/{segment(instance_id)}"))
        except (BpmNotFound, BpmAuthError) as exc:
            raise self._invisible(exc, f"process instance '{instance_id}'") from None

    def _instance(self, raw: Any, request: Request, reply: Reply | None) -> ProcessInstance:
        if not isinstance(raw, Mapping) or not is_id(raw.get("id")):
            raise self._wrong(request, reply, "a process instance without an id")
        for key in ("name", "businessKey", "processDefinitionName", "startTime", "endTime", "deleteReason"):
            self._optional(request, reply, raw, key, str, f"process instance {raw['id']}")
        for key in ("processDefinitionKey", "processDefinitionId"):
            self._optional(request, reply, raw, key, (str, int), f"process instance {raw['id']}")
        state, raw_state = process_state(raw)
        return ProcessInstance(
            id=str(raw["id"]),
            state=state,
            raw_state=raw_state,
            definition=definition_key(raw),
            definition_name=raw.get("processDefinitionName"),
            title=raw.get("name"),
            business_key=raw.get("businessKey"),
            started_at=parse_timestamp(raw.get("startTime")),
            ended_at=parse_timestamp(raw.get("endTime")),
            url=self.ui_url(str(raw["id"])),
            raw=dict(raw),
        )

    # ---- paging -----------------------------------------------------------------------------

    def _page_flow(
        self, path: str, params: Mapping[str, Any], page: int, size: int, guard: PageGuard | None = None
    ) -> Flow[tuple[list[dict[str, Any]], bool]]:
        request = Request("GET", path, params={**params, "page": page, "size": size})
        reply = yield request
        body = self._json_object(request, reply)
        # {objects, numItems, totalNumItems?, hasMoreItems} (seed 002); an empty page may leave
        # the list out, but null or anything else is not a list of objects.
        objects = self._need_objects(request, reply, body.get("objects", []), "'objects'", id_key="id")
        more = body.get("hasMoreItems")
        if more is not None and not isinstance(more, bool | str):
            raise self._unexpected(request, reply, f"'hasMoreItems' must be true or false, got {kind(more)}")
        if guard is not None:
            problem = guard.problem(item["id"] for item in objects)
            if problem:
                raise self._unexpected(request, reply, problem)
        return objects, has_more_items(body, len(objects), size)

    def _pages_flow(self, path: str, params: Mapping[str, Any], size: int) -> Flow[list[dict[str, Any]]]:
        collected: list[dict[str, Any]] = []
        page, more, guard = 0, True, PageGuard()
        while more:
            objects, more = yield from self._page_flow(path, params, page, size, guard)
            collected.extend(objects)
            more = more and bool(objects)
            page += 1
        return collected

    def _pages(self, path: str, params: Mapping[str, Any], size: int) -> Iterator[dict[str, Any]]:
        """Lazily, page after page, until ``hasMoreItems`` is false (``totalNumItems`` is optional)."""
        guard = PageGuard()
        for page in count():
            objects, more = self._run(self._page_flow(path, params, page, size, guard))
            yield from objects
            if not more:
                return
            if not objects:
                self.log.warning(
                    "%s GET %s: page %d is empty but hasMoreItems is true; stopping", self.system, path, page
                )
                return

    def _json_object(self, request: Request, reply: Reply) -> dict[str, Any]:
        body = self._json(request, reply)
        if not isinstance(body, dict):
            raise self._unexpected(request, reply, f"the body is not a JSON object, got {kind(body)}")
        return body

    # ---- tasks ------------------------------------------------------------------------------

    def _list_tasks_flow(
        self, *, process_instance_id: str | None = None, name: str | None = None
    ) -> Flow[list[Task]]:
        params = task_query(process_instance_id=process_instance_id, name=name)
        # (unverified) The task list is taken to answer the same objects/hasMoreItems envelope as
        # the process list; the documentation excerpts show its parameters, not its answer.
        objects = yield from self._pages_flow(f"{API}/tasks", params, self.page_size)
        request = Request("GET", f"{API}/tasks")
        tasks = [self._task(raw, request, None) for raw in objects]
        # The list endpoint may not filter by process instance (unverified): filter here as well.
        return [
            t
            for t in tasks
            if (process_instance_id is None or t.process_instance_id == str(process_instance_id))
            and (name is None or t.name == name)
        ]

    def find_tasks(self, **filters: Any) -> Iterator[Task]:
        """Open tasks this user may act on: ``process_instance_id``, ``process_definition_key``,
        ``name``, ``name_like``, ... (Pythonic or vendor names), page after page."""
        page_size = positive_page_size(filters.pop("page_size", self.page_size), conn_id=self.bpm_conn_id)
        params = vendor_params(
            filters, TASK_FILTERS, what="task filter", system=self.system, conn_id=self.bpm_conn_id
        )
        request = Request("GET", f"{API}/tasks")
        for raw in self._pages(request.path, params, page_size):
            yield self._task(raw, request, None)

    def get_task(self, task_id: str) -> Task:
        request = Request("GET", f"{API}/tasks/{segment(task_id)}")
        try:
            reply = self.request(request)
        except (BpmNotFound, BpmAuthError) as exc:
            raise self._task_invisible(exc, task_id) from None
        return self._task(first_object(self._json(request, reply)), request, reply)

    def _task(self, raw: Any, request: Request, reply: Reply | None) -> Task:
        if not isinstance(raw, Mapping) or not is_id(raw.get("id")):
            raise self._wrong(request, reply, "a task without an id")
        for key in ("name", "assignee"):
            self._optional(request, reply, raw, key, str, f"task {raw['id']}")
        if raw.get("processInstanceId") is not None:
            self._need_id(
                request, reply, raw["processInstanceId"], f"'processInstanceId' of task {raw['id']}"
            )
        return task_from(raw)

    def claim_task(self, task_id: str, assignee: str | None = None) -> None:
        """Claim for ``assignee``, else for this user (:attr:`current_user_id`: extra ``user_id``,
        else GET /tenant-management/api/idm/me).

        yuuvis user ids are the identity provider's ids, not login names: the login is never sent.
        """
        user = assignee or self.current_user_id
        self._task_action(task_id, "claim", assignee=str(user))

    def unassign_task(self, task_id: str) -> None:
        """POST tasks/{id} ``{"action": "claim", "assignee": null}``: the engine is Flowable, whose
        claim with a null assignee leaves the task to no one, claimable again."""
        self._task_action(task_id, "claim", assignee=UNASSIGNED)

    def complete_task(self, task_id: str, variables: Mapping[str, Any] | None = None, **options: Any) -> None:
        if options:
            raise BpmConfigError(
                f"unknown complete option(s) for {self.system}: {', '.join(sorted(options))}",
                conn_id=self.bpm_conn_id,
            )
        self._task_action(task_id, "complete", variables=variables)

    def delegate_task(self, task_id: str, assignee: str, variables: Mapping[str, Any] | None = None) -> None:
        """Hand the task to ``assignee``; it comes back to its owner on :meth:`resolve_task`."""
        if not assignee:
            raise BpmConfigError("delegating needs an assignee", conn_id=self.bpm_conn_id)
        self._task_action(task_id, "delegate", assignee=str(assignee), variables=variables)

    def resolve_task(self, task_id: str, variables: Mapping[str, Any] | None = None) -> None:
        """Give a delegated task back to its owner (variables are stored even if resolving fails)."""
        self._task_action(task_id, "resolve", variables=variables)

    def _task_action(
        self,
        task_id: str,
        action: str,
        *,
        assignee: str | None = None,
        variables: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        if action not in TASK_ACTIONS:
            raise BpmConfigError(f"unknown task action {action!r}", conn_id=self.bpm_conn_id)
        body: dict[str, Any] = {"action": action}
        if assignee is UNASSIGNED:
            body["assignee"] = None
        elif assignee is not None:
            body["assignee"] = assignee
        typed = typed_variables(variables, conn_id=self.bpm_conn_id)
        if typed:
            body["variables"] = typed
        try:
            self.request(Request("POST", f"{API}/tasks/{segment(task_id)}", json=body))
        except (BpmNotFound, BpmAuthError) as exc:
            raise self._task_invisible(exc, task_id) from None
        except BpmValidationError as exc:
            raise _rephrase(exc, f"yuuvis refused to {action} task '{task_id}'") from None

    # ---- files ------------------------------------------------------------------------------

    def list_files(self, instance_id: str) -> Iterator[ProcessFile]:
        """The DMS documents the process references, named and sized from their DMS metadata."""
        process = self.get_process_raw(str(instance_id))
        refs = document_references(process, self.document_variables)
        return self._files(str(instance_id), refs)

    def _files(self, instance_id: str, refs: list[tuple[str, str]]) -> Iterator[ProcessFile]:
        for object_id, group in refs:
            metadata = self._metadata_or_empty(object_id, group, instance_id)
            stream = content_stream(metadata)
            if metadata and stream is None:
                self.log.info("%s: DMS object %s has no content file; skipped", self.system, object_id)
                continue
            stream = stream or {}
            where = Request("GET", f"{DMS_OBJECTS}/{segment(object_id)}")
            for key in ("fileName", "mimeType"):
                self._optional(where, None, stream, key, str, f"the content of DMS object {object_id}")
            self._optional(
                where, None, stream, "length", (int, str), f"the content of DMS object {object_id}"
            )
            name, size = stream.get("fileName"), int_or_none(stream.get("length"))
            content_type = stream.get("mimeType")
            if not name:
                # The rule: name and size from the download's headers when the metadata
                # (missing, unreadable or without a file name) does not give them.
                announced, announced_size, announced_type = self._announced(object_id, group, instance_id)
                name = announced
                size = size if size is not None else announced_size
                content_type = content_type or announced_type
            yield ProcessFile(
                name=str(name or object_id),
                size=size,
                content_type=content_type,
                process_instance_id=instance_id,
                ref={"object_id": object_id},
                raw=metadata,
                group=group,
            )

    def _metadata_or_empty(self, object_id: str, group: str, instance_id: str) -> dict[str, Any]:
        """The object's metadata, or ``{}`` when the DMS hides it (404, 403): one file must not
        abort the listing; its download then fails with the DMS's own message."""
        try:
            metadata = self.get_object_metadata(object_id)
        except (BpmNotFound, BpmAuthError) as exc:
            if _refused_credentials(exc):
                raise
            self.log.warning(
                "%s: metadata of DMS object %s referenced by %s of process %s not readable (HTTP %s); "
                "naming it from its download's headers",
                self.system,
                object_id,
                group,
                instance_id,
                exc.status,
            )
            return {}
        return dict(metadata) if isinstance(metadata, Mapping) else {}

    def _announced(
        self, object_id: str, group: str, instance_id: str
    ) -> tuple[str | None, int | None, str | None]:
        """Name, size and type the content download announces; all None when it is hidden too."""
        try:
            with self._open_object(object_id) as reply:
                return file_name_from_reply(reply), content_length(reply), reply.headers.get("content-type")
        except (BpmNotFound, BpmAuthError) as exc:
            if _refused_credentials(exc):
                raise
            self.log.warning(
                "%s: content of DMS object %s referenced by %s of process %s not readable (HTTP %s); "
                "listed under its object id",
                self.system,
                object_id,
                group,
                instance_id,
                exc.status,
            )
            return None, None, None

    def announced_name_and_size(self, object_id: str) -> tuple[str | None, int | None]:
        """What the content download announces (Content-Disposition, Content-Length); the body is
        not read: the streamed answer is closed after its headers.

        (unverified) That yuuvis sets Content-Disposition on ``/contents/file`` is not documented;
        the metadata's documented ``contentStreams[].fileName`` is preferred where it exists.
        """
        with self._open_object(object_id) as reply:
            return file_name_from_reply(reply), content_length(reply)

    def get_object_metadata(self, object_id: str) -> dict[str, Any]:
        """GET /api/dms/objects/{id}: ``{properties, contentStreams}`` of the DMS object."""
        request = Request("GET", f"{DMS_OBJECTS}/{segment(object_id)}")
        try:
            reply = self.request(request)
        except (BpmNotFound, BpmAuthError) as exc:
            raise self._unreadable(exc, f"DMS object '{object_id}'") from None
        return self._need_object(request, reply, first_object(self._json(request, reply)), "the DMS object")

    @contextlib.contextmanager
    def _open_reply(self, file: ProcessFile, *, offset: int = 0) -> Iterator[Reply]:
        """The content of a DMS object, streamed; name and size are in the reply's headers
        (see :func:`airflow_bpm_provider.hooks.disposition.file_name_from_reply`)."""
        object_id = (file.ref or {}).get("object_id")
        if not object_id:
            raise BpmConfigError(
                f"file {file.name!r} has no DMS object id in its ref; it was not listed by this hook",
                conn_id=self.bpm_conn_id,
            )
        with self._open_object(str(object_id), offset=offset) as reply:
            yield reply

    @contextlib.contextmanager
    def _open_object(self, object_id: str, *, offset: int = 0) -> Iterator[Reply]:
        headers = {"Range": f"bytes={int(offset)}-"} if offset else {}
        path = f"{DMS_OBJECTS}/{segment(object_id)}/contents/file"
        try:
            reply = self.request(Request("GET", path, headers=headers, stream=True))
        except (BpmNotFound, BpmAuthError) as exc:
            raise self._unreadable(exc, f"the content of DMS object '{object_id}'") from None
        try:
            yield reply
        finally:
            reply.close()


# ---- vendor facts, one function each ---------------------------------------------------------


def segment(value: Any) -> str:
    """An id as one URL path segment (an id with ``/`` must not change the endpoint)."""
    return quote(str(value), safe="")


def permission_hint(path: str) -> str | None:
    """Why yuuvis may answer 403 on ``path``; None where no single reason fits.

    POST /processes (start) gets its hint where the start is refused, as a 403 on the bare
    /processes path may also answer a list.
    """
    if path.startswith(f"{API}/processes/") or path == f"{API}/tasks" or path.startswith(f"{API}/tasks/"):
        return VISIBILITY_HINT
    if path.startswith(f"{DMS_OBJECTS}/") or path == DMS_OBJECTS:
        return READ_PERMISSION_HINT
    return None


def _refused_credentials(exc: BpmError) -> bool:
    """A 401: the credentials, not the object's visibility, are the problem."""
    return isinstance(exc, BpmAuthError) and exc.status != 403


def _rephrase(exc: BpmError, message: str, *, details: Sequence[str] | None = None) -> BpmError:
    return type(exc)(
        message,
        system=exc.system,
        conn_id=exc.conn_id,
        method=exc.method,
        path=exc.path,
        status=exc.status,
        server_message=exc.server_message,
        details=exc.details if details is None else details,
    )
