"""ActivitiHook: the Activiti 5/6 REST API, as served by WSO2 EI's BPMN profile and by Flowable.

One hook, three deployments; the connection's base URL carries the context root:

* WSO2 Enterprise Integrator (Activiti 5.21): ``https://host:9445/bpmn``
* Activiti 5/6 REST webapp: ``http://host:8080/activiti-rest/service``
* Flowable REST: ``http://host:8080/flowable-rest/service``

Auth is HTTP Basic; a WSO2 user from a secondary user store logs in as ``DOMAIN/user``, which is
sent verbatim. The ``tenant_id`` extra is sent where the API needs it: starting by key or message,
queries by definition key, and deployments. WSO2 EI requires it when starting by key or message:
its definitions belong to a tenant, ``-1234`` for the super tenant.

Dates in query strings travel as ``2015-01-17T11:06:02Z`` (whole seconds: Activiti 5.21 and WSO2
refuse fractions there); dates inside JSON bodies keep their milliseconds.

Ended instances disappear from ``runtime/...``: :meth:`get_process` then reads
``history/historic-process-instances`` (the engine's history level must be ``activity`` or higher;
``audit``, the default, is enough).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from functools import cached_property
from typing import Any
from urllib.parse import quote

from airflow_bpm_provider.exceptions import (
    BpmConfigError,
    BpmConflict,
    BpmError,
    BpmNotFound,
    BpmValidationError,
)
from airflow_bpm_provider.hooks.activiti_models import (
    last_segment,
    process_from_history,
    process_from_runtime,
    task_from_raw,
)
from airflow_bpm_provider.hooks.activiti_variables import (
    BINARY_TYPES,
    convert_variables,
    format_date,
    format_query_date,
    parse_date,
    python_value,
)
from airflow_bpm_provider.hooks.answers import AnswerChecks, is_id, kind, parse_json
from airflow_bpm_provider.hooks.base import BpmHook
from airflow_bpm_provider.hooks.http import Flow, Reply, Request
from airflow_bpm_provider.hooks.paging import PageGuard
from airflow_bpm_provider.models import ENDED_STATES, ProcessFile, ProcessInstance, ProcessState, Task

# The largest page by default. Neither Activiti 5's user guide nor Flowable's Swagger documents a
# maximum for ``size`` (an integer parameter with no bound; only the default, 10), and the engines'
# paging applies none, so 1000 is chosen: Questetra's documented bound, 50,000 rows in 50
# requests, a page of instances near a megabyte of JSON. The ``page_size`` extra asks for less.
DEFAULT_PAGE_SIZE = 1000
DEFAULT_DELETE_REASON = "cancelled by Airflow"
START_FIELDS = {"id": "processDefinitionId", "key": "processDefinitionKey", "message": "message"}
FIND_FILTERS = frozenset({"definition", "business_key", "states", "started_after", "started_before", "query"})
# What PUT runtime/tasks/{id} may change (Activiti 5.21 and Flowable alike).
TASK_FIELDS = frozenset(
    {
        "assignee",
        "owner",
        "delegationState",
        "name",
        "description",
        "dueDate",
        "priority",
        "parentTaskId",
    }
)
# The engine answers 400 (not 404) when the definition or message to start does not exist.
NOT_FOUND_ON_START = ("no processes deployed", "no deployed process definition", "no subscription to message")
# WSO2 EI's 400 for a start by key or message without tenantId.
TENANT_REQUIRED = "tenantid should be specified"
TENANT_HINT = "set the connection extra tenant_id, e.g. -1234 on WSO2 EI"


def _q(value: str) -> str:
    """One path segment: definition ids contain ':' and variable names may contain anything."""
    return quote(str(value), safe="")


class ActivitiHook(AnswerChecks, BpmHook):
    """Activiti / Flowable / WSO2 EI BPMN REST API (connection type ``activiti``).

    Besides the contract shared by every BPM hook it offers the API's own operations: deployments
    (:meth:`deploy` a ``.bpmn20.xml`` or ``.bar``), process definitions, suspend/activate, raw
    queries, instance variables, task update/delegate/resolve/delete and task comments.

    Variables from Python: ``str`` → string, ``bool`` → boolean, ``int`` → integer (32 bits) or
    long, ``float`` → double, ``date``/``datetime`` → date (ISO 8601, naive = UTC), ``dict``/``list``
    → json (Flowable only: Activiti 5 answers 400), ``bytes`` → binary (only through
    :meth:`set_variables`, uploaded as multipart), ``None`` → null. ``{"type": ..., "value": ...}``
    is sent as given. Anything else raises :class:`BpmValidationError` before a request is sent.
    """

    conn_name_attr = "bpm_conn_id"
    default_conn_name = "activiti_default"
    conn_type = "activiti"
    hook_name = "Activiti / Flowable / WSO2 EI BPMN"
    system = "Activiti"
    context_roots = ("/bpmn", "/activiti-rest/service", "/flowable-rest/service")

    # ---- connection and errors --------------------------------------------------------------

    @cached_property
    def page_size(self) -> int:
        """The connection's ``page_size`` extra (default 1000): how many rows each list request asks."""
        raw = self.settings.extra_value("page_size", DEFAULT_PAGE_SIZE)
        try:
            size = int(raw)
        except (TypeError, ValueError):
            size = 0
        if isinstance(raw, bool) or size < 1:
            raise BpmConfigError(
                f"extra field 'page_size' must be a positive integer, got {raw!r}",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        return size

    @property
    def tenant_id(self) -> str | None:
        tenant = self.settings.extra_value("tenant_id")
        return str(tenant) if tenant not in (None, "") else None

    def _server_message(self, reply: Reply) -> str:
        """``{"statusCode", "errorMessage"}`` (WSO2, Activiti 5 docs) or ``{"message", "exception"}``."""
        try:
            body = parse_json(reply.body)
        except ValueError:  # not JSON, or nested too deeply to read
            return reply.text
        if not isinstance(body, dict):
            return reply.text
        if body.get("errorMessage"):
            return str(body["errorMessage"])
        message, exception = body.get("message"), body.get("exception")
        if message and exception and message != exception:
            # "message" is the generic status text ("Bad request"), "exception" the engine's reason.
            return f"{message}: {exception}"
        return str(exception or message or reply.text)

    def _options_error(self, what: str, unknown: Sequence[str], known: Sequence[str]) -> BpmConfigError:
        return BpmConfigError(
            f"unknown {what}: {', '.join(sorted(unknown))}; known: {', '.join(sorted(known)) or 'none'}",
            system=self.system,
            conn_id=self.bpm_conn_id,
        )

    # ---- paging -----------------------------------------------------------------------------

    def _page_request(
        self, path: str, start: int, params: Mapping[str, Any] | None, query: Mapping[str, Any] | None
    ) -> Request:
        self._refuse_process_variables(params)
        self._refuse_process_variables(query)
        if query is not None:
            body = {**query, "start": start, "size": self.page_size}
            # A query POST only reads, so re-sending it after a timeout is safe.
            return Request("POST", path, json=body, idempotent=True)
        return Request("GET", path, params={**(params or {}), "start": start, "size": self.page_size})

    def _refuse_process_variables(self, source: Mapping[str, Any] | None) -> None:
        # Never ask list calls for includeProcessVariables=true: the engine then pages over
        # instance x variable rows and returns short pages (flowable-engine #1348, fixed in 6.7
        # only), so paging by total would skip instances. Variables are read per instance instead.
        if source and str(source.get("includeProcessVariables", "")).lower() == "true":
            raise BpmConfigError(
                "includeProcessVariables=true breaks paging on this engine (short pages, "
                "flowable-engine #1348); read variables per instance with get_variables()",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )

    def _page_flow(
        self, request: Request, guard: PageGuard | None = None
    ) -> Flow[tuple[list[dict[str, Any]], int]]:
        """One page ``{data, total, start, sort, order, size}``, every row an object with an id."""
        reply = yield request
        body = self._json(request, reply)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise self._unexpected(request, reply, "no 'data' list in the page")
        rows = self._need_objects(request, reply, body["data"], "'data'", id_key="id")
        total = body.get("total")
        if isinstance(total, bool) or not isinstance(total, int):
            raise self._unexpected(request, reply, f"no 'total' count in the page (got {kind(total)})")
        if guard is not None:
            problem = guard.problem(row["id"] for row in rows)
            if problem:
                raise self._unexpected(request, reply, problem)
        return rows, total

    def _all_rows_flow(
        self, path: str, params: Mapping[str, Any] | None = None, query: Mapping[str, Any] | None = None
    ) -> Flow[list[dict[str, Any]]]:
        rows: list[dict[str, Any]] = []
        start, guard = 0, PageGuard()
        while True:
            data, total = yield from self._page_flow(self._page_request(path, start, params, query), guard)
            rows.extend(data)
            start += len(data)
            if not data or start >= total:
                return rows

    def _iter_rows(
        self, path: str, params: Mapping[str, Any] | None = None, query: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every row of a paged list, one page in memory at a time."""
        start, guard = 0, PageGuard()
        while True:
            data, total = self._run(self._page_flow(self._page_request(path, start, params, query), guard))
            yield from data
            start += len(data)
            if not data or start >= total:
                return

    def _get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        request = Request("GET", path, params=params)
        return self._json(request, self.request(request))

    def _get_object(self, path: str, what: str) -> dict[str, Any]:
        request = Request("GET", path)
        reply = self.request(request)
        return self._need_object(request, reply, self._json(request, reply), what)

    def _get_objects(self, path: str, what: str) -> list[dict[str, Any]]:
        """An unpaged list answer (attachments, comments, variables): a list of objects."""
        request = Request("GET", path)
        reply = self.request(request)
        body = self._json(request, reply)
        return self._need_objects(request, reply, [] if body is None else body, what)

    def _process(
        self,
        request: Request,
        reply: Reply | None,
        raw: Any,
        *,
        history: bool = False,
        suspended: bool = False,
    ) -> ProcessInstance:
        """A process instance answer (ProcessInstanceResponse / HistoricProcessInstanceResponse)."""
        raw = self._need_object(request, reply, raw, "the process instance")
        self._need_id(request, reply, raw.get("id"), "the process instance's 'id'")
        what = f"process instance {raw['id']}"
        for key in (
            "businessKey",
            "name",
            "processDefinitionName",
            "processDefinitionId",
            "processDefinitionKey",
            "processDefinitionUrl",
            "startTime",
            "endTime",
            "deleteReason",
        ):
            self._optional(request, reply, raw, key, str, what)
        for key in ("suspended", "ended", "completed"):
            self._optional(request, reply, raw, key, bool, what)
        if history:
            return process_from_history(raw, suspended=suspended)
        return process_from_runtime(raw)

    def _task_of(self, request: Request, reply: Reply | None, raw: Any) -> Task:
        """A task answer (TaskResponse): an id, text name and assignee."""
        raw = self._need_object(request, reply, raw, "the task")
        self._need_id(request, reply, raw.get("id"), "the task's 'id'")
        for key in ("name", "assignee", "processInstanceUrl", "processDefinitionUrl", "processDefinition"):
            self._optional(request, reply, raw, key, str, f"task {raw['id']}")
        self._optional(request, reply, raw, "processInstanceId", (str, int), f"task {raw['id']}")
        self._optional(request, reply, raw, "suspended", bool, f"task {raw['id']}")
        return task_from_raw(raw)

    def _variable_value(self, request: Request, reply: Reply | None, raw: Any) -> Any:
        """The Python value of a RestVariable ``{name, type, value}``; a value its type cannot hold
        is a wrong answer."""
        raw = self._need_object(request, reply, raw, "a variable")
        if not isinstance(raw.get("name"), str):
            raise self._wrong(request, reply, f"a variable has no text 'name' (got {kind(raw.get('name'))})")
        self._optional(request, reply, raw, "type", str, f"variable {raw['name']!r}")
        with self._reading(request, reply, f"the value of variable {raw['name']!r}"):
            return python_value(raw)

    def _send_json(self, method: str, path: str, body: Any, *, idempotent: bool | None = None) -> Any:
        request = Request(method, path, json=body, idempotent=idempotent)
        reply = self.request(request)
        return self._json(request, reply) if reply.body else None

    # ---- the contract -----------------------------------------------------------------------

    def _probe(self) -> str:
        body = self._get_json("/repository/process-definitions", {"size": 1})
        total = body.get("total") if isinstance(body, dict) else None
        return f"Connected to {self.base_url}: {total} process definition(s) visible"

    def _start_target(self, process: str, by: str | None) -> tuple[str, str]:
        """``(by, value)``: a definition key by default; ``id:``/``message:`` prefixes or ``by=``."""
        text = str(process or "").strip()
        if by is None:
            by = "key"
            for prefix in ("id", "message"):
                if text.startswith(prefix + ":"):
                    by, text = prefix, text[len(prefix) + 1 :]
                    break
        if by not in START_FIELDS:
            raise BpmConfigError(
                f"by must be one of {', '.join(START_FIELDS)}, got {by!r}",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        if not text:
            raise BpmConfigError(
                f"a process definition {by} is required, got {process!r}",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        return by, text

    def start_process(
        self,
        process: str,
        *,
        variables: Mapping[str, Any] | None = None,
        business_key: str | None = None,
        **options: Any,
    ) -> ProcessInstance:
        """Start by definition key (default), by id (``"id:key:1:42"`` or ``by="id"``) or by message.

        Options: ``by`` ("key", "id", "message") and ``tenant_id`` (overrides the connection's;
        sent with key and message only, as the API requires).
        """
        unknown = set(options) - {"by", "tenant_id"}
        if unknown:
            raise self._options_error("start option(s)", list(unknown), ["by", "tenant_id"])
        by, target = self._start_target(process, options.get("by"))
        converted = convert_variables(variables, conn_id=self.bpm_conn_id)
        if converted.binary:
            raise BpmValidationError(
                f"binary variable(s) {', '.join(sorted(converted.binary))} cannot be sent with the start "
                "request (the REST API takes them as multipart only); start the process, then call "
                "set_variables()",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        body: dict[str, Any] = {START_FIELDS[by]: target}
        tenant = options.get("tenant_id", self.tenant_id)
        if tenant and by != "id":
            # The API rejects tenantId with processDefinitionId; with key or message it is required
            # on multi-tenant servers.
            body["tenantId"] = str(tenant)
        if business_key is not None:
            body["businessKey"] = str(business_key)
        if converted.plain:
            body["variables"] = converted.plain
        request = Request("POST", "/runtime/process-instances", json=body)  # starting is never idempotent
        try:
            reply = self.request(request)
        except BpmValidationError as exc:
            refusal = self._start_refusal(exc, request, by, target, tenant_sent="tenantId" in body)
            if refusal is None:
                raise
            raise refusal from exc
        instance = self._process(request, reply, self._json(request, reply))
        self.log.info("Started %s %r: process instance %s", by, target, instance.id)
        return instance

    def _start_refusal(
        self, exc: BpmValidationError, request: Request, by: str, target: str, *, tenant_sent: bool
    ) -> BpmError | None:
        """The start's 400, explained: a missing definition is a BpmNotFound; a missing tenant says so."""
        reason = (exc.server_message or "").lower()
        if TENANT_REQUIRED in reason:
            return self._error(
                BpmValidationError,
                f"starting by {by} needs a tenant id on this server: {TENANT_HINT}",
                request,
                status=exc.status,
                server_message=exc.server_message,
            )
        if any(marker in reason for marker in NOT_FOUND_ON_START):
            hint = (
                ""
                if tenant_sent or by == "id"
                else f" (no tenant id was sent; if it is deployed for a tenant, {TENANT_HINT})"
            )
            return self._error(
                BpmNotFound,
                f"nothing to start for {by} {target!r}{hint}",
                request,
                status=exc.status,
                server_message=exc.server_message,
            )
        return None

    def _get_process_flow(self, instance_id: str) -> Flow[ProcessInstance]:
        path = f"/runtime/process-instances/{_q(instance_id)}"
        try:
            reply = yield Request("GET", path)
        except BpmNotFound:
            raw = yield from self._history_flow(instance_id)
            return self._process(
                Request("GET", f"/history/historic-process-instances/{_q(instance_id)}"),
                None,
                raw,
                history=True,
            )
        request = Request("GET", path)
        return self._process(request, reply, self._json(request, reply))

    def _history_flow(self, instance_id: str) -> Flow[dict[str, Any]]:
        request = Request("GET", f"/history/historic-process-instances/{_q(instance_id)}")
        try:
            reply = yield request
        except BpmNotFound as exc:
            raise self._error(
                BpmNotFound,
                f"process instance {instance_id} not found, neither running nor in the history",
                request,
                status=404,
                server_message=exc.server_message,
            ) from exc
        return self._need_object(request, reply, self._json(request, reply), "the historic process instance")

    # ---- batched reads for triggers (see hooks/batch_reads.py) ------------------------------

    def _poll_processes_flow(
        self, ids: Sequence[str], definitions: Sequence[str] = ()
    ) -> Flow[dict[str, ProcessInstance]]:
        """Many instances by id: the running ones from ``POST query/process-instances``, the others
        from ``POST query/historic-process-instances``, both with ``processInstanceIds`` (Flowable
        swagger: ProcessInstanceQueryRequest, HistoricProcessInstanceQueryRequest). Ids neither
        knows are left out, for the caller to read one by one. ``definitions`` are not needed."""
        from airflow_bpm_provider.hooks.batch_reads import IDS_PER_QUERY, chunks

        found: dict[str, ProcessInstance] = {}
        for chunk in chunks(list(ids), IDS_PER_QUERY):
            for row in (yield from self._rows_by_ids_flow("/query/process-instances", chunk)):
                found[str(row["id"])] = process_from_runtime(row)
        for chunk in chunks([pid for pid in ids if pid not in found], IDS_PER_QUERY):
            for row in (yield from self._rows_by_ids_flow("/query/historic-process-instances", chunk)):
                found[str(row["id"])] = process_from_history(row)
        return found

    def _poll_tasks_flow(self, wanted: Mapping[str, str], name: str | None) -> Flow[dict[str, list[Task]]]:
        """Open tasks of many processes (id -> definition key): ``GET runtime/tasks`` takes one
        processInstanceId only (Flowable swagger), so each definition's open tasks are listed by
        ``processDefinitionKey`` (and ``name``). Processes whose listing was cut short are left out."""
        from airflow_bpm_provider.hooks.batch_reads import (
            LISTING_PAGE,
            by_definition,
            tasks_of,
            worth_another_page,
        )

        found: dict[str, list[Task]] = {}
        pages = 0
        for key, ids in by_definition(wanted).items():
            rows: list[dict[str, Any]] = []
            start, complete = 0, False
            while worth_another_page(pages, len(wanted) - len(found)):
                params = {"processDefinitionKey": key, "name": name, "start": start, "size": LISTING_PAGE}
                data, total = yield from self._page_flow(Request("GET", "/runtime/tasks", params=params))
                pages, start = pages + 1, start + len(data)
                rows.extend(data)
                if not data or start >= total:
                    complete = True
                    break
            if complete:
                found.update(tasks_of(ids, (task_from_raw(row) for row in rows), name))
        return found

    def _rows_by_ids_flow(self, path: str, ids: list[str]) -> Flow[list[dict[str, Any]]]:
        request = Request(
            "POST", path, json={"processInstanceIds": ids, "start": 0, "size": len(ids)}, idempotent=True
        )
        rows, _ = yield from self._page_flow(request)
        if not {str(row.get("id")) for row in rows} <= set(ids):
            # An engine that does not know the filter ignores it and lists everything instead.
            raise self._error(BpmValidationError, "the server ignores 'processInstanceIds'", request)
        return rows

    def _definition_params(self, process: str) -> dict[str, str]:
        by, target = self._start_target(process, None)
        if by == "id":
            return {"processDefinitionId": target}
        if by == "message":
            return {}  # a message does not name a definition: match on the business key alone
        params = {"processDefinitionKey": target}
        if self.tenant_id:
            params["tenantId"] = self.tenant_id
        return params

    def find_process_by_business_key(self, process: str, business_key: str) -> ProcessInstance | None:
        """The newest instance of ``process`` with ``business_key``: running ones first, then ended."""
        params = {**self._definition_params(process), "businessKey": str(business_key)}
        running = [
            self._process(Request("GET", "/runtime/process-instances"), None, row)
            for row in self._iter_rows("/runtime/process-instances", params)
        ]
        if running:
            return max(running, key=lambda p: _newest_first(p.raw))
        request = Request(
            "GET",
            "/history/historic-process-instances",
            params={**params, "finished": True, "sort": "startTime", "order": "desc", "start": 0, "size": 1},
        )
        rows, _ = self._run(self._page_flow(request))
        return self._process(request, None, rows[0], history=True) if rows else None

    def find_unclaimed_starts(self, process: str, started_after: datetime) -> list[ProcessInstance]:
        """Instances of ``process`` the connection's login started after ``started_after`` without
        a business key: where a start whose answer was lost would be.

        POST query/historic-process-instances with ``startedBy`` and ``startedAfter`` (Flowable's
        HistoricProcessInstanceQueryRequest); the missing key is checked here.
        """
        login = self.settings.login
        if not login:
            raise BpmConfigError(
                "looking for a start whose answer was lost needs the connection's login (startedBy)",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        query = {"startedBy": login}
        found = self.find_processes(definition=process, started_after=started_after, query=query)
        return [instance for instance in found if instance.business_key in (None, "")]

    def find_processes(self, **filters: Any) -> Iterator[ProcessInstance]:
        """Instances from the history (running and ended alike), page after page.

        Filters: ``definition`` (key, or ``id:<definition id>``), ``business_key``, ``states``,
        ``started_after`` / ``started_before`` (datetime or ISO string) and ``query``: a raw
        body for ``POST query/historic-process-instances`` (paging is added by the hook).
        """
        unknown = set(filters) - FIND_FILTERS
        if unknown:
            raise self._options_error("filter(s)", list(unknown), list(FIND_FILTERS))
        states = self._states_filter(filters.get("states"))
        criteria = self._history_criteria(filters, states)
        raw_query = filters.get("query")
        if raw_query is not None:
            if not isinstance(raw_query, Mapping):
                raise BpmConfigError(
                    f"query must be a mapping (the JSON body of query/historic-process-instances), "
                    f"got {type(raw_query).__name__}",
                    system=self.system,
                    conn_id=self.bpm_conn_id,
                )
            self._refuse_process_variables(raw_query)
            body = self._merge_query(criteria, raw_query)
            rows = self._iter_rows("/query/historic-process-instances", query=body)
        else:
            params = {("businessKey" if k == "processBusinessKey" else k): v for k, v in criteria.items()}
            rows = self._iter_rows("/history/historic-process-instances", params)
        suspended = self._suspended_ids(criteria) if _may_be_running(states) else set()
        return self._matching(rows, states, suspended)

    def _matching(
        self, rows: Iterator[dict[str, Any]], states: set[ProcessState] | None, suspended: set[str]
    ) -> Iterator[ProcessInstance]:
        where = Request("GET", "/history/historic-process-instances")
        for row in rows:
            instance = self._process(
                where, None, row, history=True, suspended=str(row.get("id")) in suspended
            )
            if states is None or instance.state in states:
                yield instance

    def _history_criteria(
        self, filters: Mapping[str, Any], states: set[ProcessState] | None
    ) -> dict[str, Any]:
        """Filters as ``query/historic-process-instances`` body fields (the GET list renames one)."""
        criteria: dict[str, Any] = {}
        if filters.get("definition"):
            criteria.update(self._definition_params(str(filters["definition"])))
        if filters.get("business_key") is not None:
            criteria["processBusinessKey"] = str(filters["business_key"])
        for name, field in (("started_after", "startedAfter"), ("started_before", "startedBefore")):
            if filters.get(name) is not None:
                criteria[field] = self._date_param(filters[name], name)
        if states is not None:
            if states <= ENDED_STATES:
                criteria["finished"] = True
            elif not states & ENDED_STATES:
                criteria["finished"] = False
        return criteria

    def _date_param(self, value: Any, name: str) -> str:
        """A query date in the one form every engine parses; a string is normalised the same way."""
        if isinstance(value, datetime | date):
            return format_query_date(value)
        parsed = parse_date(value) if isinstance(value, str) else None
        if parsed is None:
            raise BpmConfigError(
                f"{name} must be a datetime or an ISO 8601 string, got {value!r}",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        # Whole seconds only: Activiti 5.21 / WSO2 answer 400 to a fraction in a query date.
        return format_query_date(parsed)

    def _merge_query(self, criteria: Mapping[str, Any], raw_query: Mapping[str, Any]) -> dict[str, Any]:
        clashes = sorted(set(criteria) & set(raw_query))
        paging = sorted({"start", "size"} & set(raw_query))
        if clashes or paging:
            raise BpmConfigError(
                f"query sets {', '.join(clashes + paging)}, which the hook sets itself "
                "(from the other filters, or for paging); drop them from query",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        return {**raw_query, **criteria}

    def _suspended_ids(self, criteria: Mapping[str, Any]) -> set[str]:
        """History does not know suspension: ask the runtime which of the candidates are suspended."""
        params: dict[str, Any] = {"suspended": True}
        for field in ("processDefinitionKey", "processDefinitionId", "tenantId"):
            if field in criteria:
                params[field] = criteria[field]
        if "processBusinessKey" in criteria:
            params["businessKey"] = criteria["processBusinessKey"]
        return {str(row["id"]) for row in self._iter_rows("/runtime/process-instances", params)}

    def cancel_process(self, instance_id: str, reason: str | None = None) -> None:
        """Delete the running instance with a reason; the history keeps it as CANCELLED."""
        instance_id = str(instance_id)
        try:
            self.request(
                Request(
                    "DELETE",
                    f"/runtime/process-instances/{_q(instance_id)}",
                    params={"deleteReason": reason or DEFAULT_DELETE_REASON},
                )
            )
        except BpmNotFound:
            # Gone from the runtime: already ended (or deleted by an earlier attempt of this call).
            raw = self._run(self._history_flow(instance_id))
            instance = self._process(
                Request("GET", "/history/historic-process-instances"), None, raw, history=True
            )
            if instance.state is ProcessState.CANCELLED:
                self.log.info("Process instance %s was already deleted (%s)", instance_id, instance.raw_state)
                return
            raise BpmConflict(
                f"process instance {instance_id} cannot be cancelled: it has already ended "
                f"({instance.state.value})",
                system=self.system,
                conn_id=self.bpm_conn_id,
            ) from None

    def _list_tasks_flow(
        self, *, process_instance_id: str | None = None, name: str | None = None
    ) -> Flow[list[Task]]:
        params = {"processInstanceId": process_instance_id, "name": name}
        rows = yield from self._all_rows_flow("/runtime/tasks", params)
        where = Request("GET", "/runtime/tasks")
        return [self._task_of(where, None, row) for row in rows]

    def claim_task(self, task_id: str, assignee: str | None = None) -> None:
        """Claim for ``assignee`` (default: the connection's login, e.g. ``DOMAIN/user``); 409 if taken."""
        assignee = assignee or self.settings.login
        if not assignee:
            raise BpmConfigError(
                "claim_task needs an assignee: the connection has no login to default to",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        # Claiming again for the same user succeeds, so re-sending after a timeout is safe.
        self._send_json(
            "POST",
            f"/runtime/tasks/{_q(task_id)}",
            {"action": "claim", "assignee": assignee},
            idempotent=True,
        )

    def unassign_task(self, task_id: str) -> None:
        """PUT runtime/tasks/{id} ``{"assignee": null}``.

        Seed 004, "Update a task": an attribute included and set to null is updated to null, the
        others are left as they are; the task is then claimable again. A PUT, so a re-send is safe.
        """
        self._send_json("PUT", f"/runtime/tasks/{_q(task_id)}", {"assignee": None}, idempotent=True)

    def complete_task(self, task_id: str, variables: Mapping[str, Any] | None = None, **options: Any) -> None:
        """Complete with variables. Option ``outcome``: the form outcome (Flowable 6+ only)."""
        unknown = set(options) - {"outcome"}
        if unknown:
            raise self._options_error("complete option(s)", list(unknown), ["outcome"])
        converted = convert_variables(variables, conn_id=self.bpm_conn_id)
        if converted.binary:
            raise BpmValidationError(
                f"binary variable(s) {', '.join(sorted(converted.binary))} cannot be sent when completing "
                "a task; set them on the process instance with set_variables() first",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        body: dict[str, Any] = {"action": "complete"}
        if converted.plain:
            body["variables"] = converted.plain
        if options.get("outcome") is not None:
            body["outcome"] = str(options["outcome"])
        self._send_json("POST", f"/runtime/tasks/{_q(task_id)}", body)

    def list_files(self, instance_id: str) -> Iterator[ProcessFile]:
        """Binary (and serializable) variables, then the attachments of every task of the instance."""
        instance_id = str(instance_id)
        variables, ended = self._instance_variables(instance_id)
        where = Request("GET", f"/runtime/process-instances/{_q(instance_id)}/variables")
        for variable in variables:
            if not isinstance(variable.get("name"), str):
                raise self._wrong(
                    where, None, f"a variable has no text 'name' (got {kind(variable.get('name'))})"
                )
            if variable.get("type") in BINARY_TYPES:
                name = str(variable["name"])
                yield ProcessFile(
                    name=name,
                    size=None,
                    content_type=None,
                    process_instance_id=instance_id,
                    ref={"kind": "variable", "instance_id": instance_id, "name": name, "ended": ended},
                    raw=variable,
                    group="variables",
                )
        # The historic task list holds open and completed tasks; attachments outlive their task.
        for task in self._iter_rows("/history/historic-task-instances", {"processInstanceId": instance_id}):
            task_id = str(task["id"])
            path = f"/runtime/tasks/{_q(task_id)}/attachments"
            for attachment in self._get_objects(path, "the attachments"):
                for key in ("name", "type", "url", "externalUrl"):
                    self._optional(Request("GET", path), None, attachment, key, str, "an attachment")
                if not is_id(attachment.get("id")) and not attachment.get("url"):
                    raise self._wrong(Request("GET", path), None, "an attachment has neither 'id' nor 'url'")
                yield _attachment_file(instance_id, task, task_id, attachment)

    def _instance_variables(self, instance_id: str) -> tuple[list[dict[str, Any]], bool]:
        """The instance's own variables and whether it has ended (then they come from the history)."""
        try:
            return list(self.list_variables(instance_id)), False
        except BpmNotFound:
            self._run(self._history_flow(instance_id))  # raises BpmNotFound for an unknown instance
        rows = self._iter_rows("/history/historic-variable-instances", {"processInstanceId": instance_id})
        # Task-local variables also appear there; a process's files are its own variables.
        where = Request("GET", "/history/historic-variable-instances")
        found = [
            self._need_object(where, None, row["variable"], "a historic variable's 'variable'")
            for row in rows
            if not row.get("taskId") and row.get("variable")
        ]
        return found, True

    @contextmanager
    def _open_reply(self, file: ProcessFile, *, offset: int = 0) -> Iterator[Reply]:
        if file.external_url:
            raise BpmValidationError(
                f"{file.name!r} is a link to {file.external_url}, not content stored on the server",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        ref = file.ref
        if ref.get("kind") == "variable":
            reply = self._open_variable(
                str(ref["instance_id"]), str(ref["name"]), ended=bool(ref.get("ended")), offset=offset
            )
        elif ref.get("kind") == "attachment":
            path = f"/runtime/tasks/{_q(ref['task_id'])}/attachments/{_q(ref['attachment_id'])}/content"
            reply = self.request(Request("GET", path, headers=_range(offset), stream=True))
        else:
            raise BpmConfigError(
                f"{file.name!r} was not listed by an Activiti connection (ref {dict(ref)!r})",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        try:
            yield reply
        finally:
            reply.close()

    def _open_variable(self, instance_id: str, name: str, *, ended: bool, offset: int = 0) -> Reply:
        history = f"/history/historic-process-instances/{_q(instance_id)}/variables/{_q(name)}/data"
        if not ended:
            try:
                return self.request(
                    Request(
                        "GET",
                        f"/runtime/process-instances/{_q(instance_id)}/variables/{_q(name)}/data",
                        headers=_range(offset),
                        stream=True,
                    )
                )
            except BpmNotFound:
                pass  # the instance ended since it was listed: its variables live on in the history
        return self.request(Request("GET", history, headers=_range(offset), stream=True))

    # ---- deployments and definitions --------------------------------------------------------

    def list_deployments(self, **params: Any) -> Iterator[dict[str, Any]]:
        """``GET repository/deployments``; ``params`` are its query parameters (name, category, ...)."""
        return self._iter_rows("/repository/deployments", params)

    def get_deployment(self, deployment_id: str) -> dict[str, Any]:
        return self._get_object(f"/repository/deployments/{_q(deployment_id)}", "the deployment")

    def deploy(
        self,
        file: str | os.PathLike[str],
        *,
        name: str | None = None,
        tenant_id: str | None = None,
    ) -> dict[str, Any]:
        """Upload a ``.bpmn20.xml`` / ``.bpmn`` / ``.bar`` / ``.zip`` file as a new deployment.

        Flowable and the Activiti REST webapp only: WSO2 EI's ``/bpmn`` API can list and read
        deployments but not create them (HTTP 405, raised here as :class:`BpmConfigError`); on
        WSO2 EI a ``.bar`` is deployed inside a Carbon application (``.car``) or uploaded in the
        management console.

        The server names the deployment after the file; ``name`` is sent as ``deploymentName``,
        which Flowable honours and Activiti 5 ignores. Models are small, so the file is read whole
        (a retry can then send it again).
        """
        path = os.fspath(file)
        file_name = os.path.basename(path)
        content_type = "application/zip" if file_name.lower().endswith((".bar", ".zip")) else "text/xml"
        try:
            with open(path, "rb") as handle:
                content = handle.read()
        except OSError as exc:
            raise BpmConfigError(
                f"cannot read the model to deploy: {exc}", system=self.system, conn_id=self.bpm_conn_id
            ) from None
        params = {"tenantId": tenant_id or self.tenant_id, "deploymentName": name}
        request = Request(
            "POST",
            "/repository/deployments",
            params=params,
            files={"file": (file_name, content, content_type)},
        )
        try:
            reply = self.request(request)
        except BpmError as exc:
            if exc.status != 405:
                raise
            raise self._error(
                BpmConfigError,
                "this server cannot deploy through its REST API (WSO2 EI: deploy the .bar in a Carbon "
                "application or through the management console)",
                request,
                status=exc.status,
                server_message=exc.server_message,
            ) from exc
        deployment = self._need_object(request, reply, self._json(request, reply), "the deployment")
        self.log.info("Deployed %s as deployment %s", file_name, deployment.get("id"))
        return deployment

    def list_process_definitions(self, **params: Any) -> Iterator[dict[str, Any]]:
        """``GET repository/process-definitions``; e.g. ``key="order", latest=True``."""
        return self._iter_rows("/repository/process-definitions", params)

    def get_process_definition(self, definition_id: str) -> dict[str, Any]:
        return self._get_object(
            f"/repository/process-definitions/{_q(definition_id)}", "the process definition"
        )

    # ---- process instances ------------------------------------------------------------------

    def suspend_process(self, instance_id: str) -> ProcessInstance:
        return self._process_action(instance_id, "suspend")

    def activate_process(self, instance_id: str) -> ProcessInstance:
        return self._process_action(instance_id, "activate")

    def _process_action(self, instance_id: str, action: str) -> ProcessInstance:
        path = f"/runtime/process-instances/{_q(instance_id)}"
        raw = self._send_json("PUT", path, {"action": action})
        return self._process(Request("PUT", path), None, raw)

    def query_process_instances(self, query: Mapping[str, Any]) -> Iterator[ProcessInstance]:
        """Running instances matching ``query``, the JSON body of ``POST query/process-instances``.

        A query by ``processDefinitionKey`` gets the connection's ``tenant_id`` unless it names a
        ``tenantId`` itself (WSO2 EI requires one with a key).
        """
        self._check_raw_query(query)
        if query.get("processDefinitionKey") and "tenantId" not in query and self.tenant_id:
            query = {**query, "tenantId": self.tenant_id}
        where = Request("POST", "/query/process-instances")
        return (
            self._process(where, None, row)
            for row in self._iter_rows("/query/process-instances", query=query)
        )

    # ---- variables --------------------------------------------------------------------------

    def list_variables(self, instance_id: str) -> list[dict[str, Any]]:
        """The running instance's variables as the API gives them (``{name, type, value, valueUrl?}``)."""
        return self._get_objects(f"/runtime/process-instances/{_q(instance_id)}/variables", "the variables")

    def get_variables(self, instance_id: str) -> dict[str, Any]:
        """``{name: Python value}``; binary variables map to None (see :meth:`open_variable_data`)."""
        where = Request("GET", f"/runtime/process-instances/{_q(instance_id)}/variables")
        return {
            str(v.get("name")): self._variable_value(where, None, v) for v in self.list_variables(instance_id)
        }

    def get_variable(self, instance_id: str, name: str) -> Any:
        request = Request("GET", f"/runtime/process-instances/{_q(instance_id)}/variables/{_q(name)}")
        reply = self.request(request)
        return self._variable_value(request, reply, self._json(request, reply))

    def set_variables(self, instance_id: str, variables: Mapping[str, Any]) -> None:
        """Create or overwrite variables; ``bytes`` values are uploaded as binary variables."""
        converted = convert_variables(variables, conn_id=self.bpm_conn_id)
        path = f"/runtime/process-instances/{_q(instance_id)}/variables"
        if converted.plain:
            self._send_json("PUT", path, converted.plain)
        for name, content in converted.binary.items():
            self.request(
                Request(
                    "PUT",
                    path,
                    data=[("name", name), ("type", "binary")],
                    files={"file": (name, content, "application/octet-stream")},
                )
            )

    def set_variable(self, instance_id: str, name: str, value: Any) -> None:
        self.set_variables(instance_id, {name: value})

    @contextmanager
    def open_variable_data(self, instance_id: str, name: str) -> Iterator[Reply]:
        """A binary variable's content, streamed (from the history once the instance has ended)."""
        reply = self._open_variable(str(instance_id), str(name), ended=False)
        try:
            yield reply
        finally:
            reply.close()

    # ---- tasks ------------------------------------------------------------------------------

    def get_task(self, task_id: str) -> Task:
        request = Request("GET", f"/runtime/tasks/{_q(task_id)}")
        reply = self.request(request)
        return self._task_of(request, reply, self._json(request, reply))

    def _check_raw_query(self, query: Mapping[str, Any]) -> None:
        """A raw query body must leave paging to the hook, and never ask for process variables."""
        if {"start", "size"} & set(query):
            raise BpmConfigError(
                "query must not set start/size: the hook pages itself",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        self._refuse_process_variables(query)

    def query_tasks(self, query: Mapping[str, Any]) -> Iterator[Task]:
        """Tasks matching ``query``, the JSON body of ``POST query/tasks`` (e.g. ``{"assignee": ...}``)."""
        self._check_raw_query(query)
        where = Request("POST", "/query/tasks")
        return (self._task_of(where, None, row) for row in self._iter_rows("/query/tasks", query=query))

    def update_task(self, task_id: str, **fields: Any) -> Task:
        """Change task attributes (``assignee``, ``dueDate``, ``priority``, ...); None clears one."""
        unknown = set(fields) - TASK_FIELDS
        if unknown:
            raise self._options_error("task field(s)", list(unknown), list(TASK_FIELDS))
        body = {k: format_date(v) if isinstance(v, datetime | date) else v for k, v in fields.items()}
        path = f"/runtime/tasks/{_q(task_id)}"
        return self._task_of(Request("PUT", path), None, self._send_json("PUT", path, body))

    def delegate_task(self, task_id: str, assignee: str) -> None:
        self._send_json("POST", f"/runtime/tasks/{_q(task_id)}", {"action": "delegate", "assignee": assignee})

    def resolve_task(self, task_id: str) -> None:
        self._send_json("POST", f"/runtime/tasks/{_q(task_id)}", {"action": "resolve"})

    def delete_task(
        self, task_id: str, *, cascade_history: bool = False, delete_reason: str | None = None
    ) -> None:
        """Delete a standalone task (tasks of a process cannot be deleted: the server answers 403).

        ``delete_reason`` is kept in the task's history; ``cascade_history=True`` deletes that
        history too. The server honours the reason only when ``cascadeHistory`` is absent from the
        request (even ``cascadeHistory=false`` drops it), so the two cannot be combined.
        """
        if cascade_history and delete_reason is not None:
            raise BpmConfigError(
                "delete_task: delete_reason is lost with cascade_history=True (the history that "
                "would keep it is deleted); pass one or the other",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        params = {"cascadeHistory": "true"} if cascade_history else {"deleteReason": delete_reason}
        self.request(Request("DELETE", f"/runtime/tasks/{_q(task_id)}", params=params))

    def list_attachments(self, task_id: str) -> list[dict[str, Any]]:
        return self._get_objects(f"/runtime/tasks/{_q(task_id)}/attachments", "the attachments")

    def add_attachment(
        self,
        task_id: str,
        name: str,
        content: bytes | None = None,
        *,
        external_url: str | None = None,
        content_type: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Attach ``content`` (multipart upload) or a link (``external_url``) to an open task."""
        if (content is None) == (external_url is None):
            raise BpmConfigError(
                "add_attachment needs either content or external_url",
                system=self.system,
                conn_id=self.bpm_conn_id,
            )
        path = f"/runtime/tasks/{_q(task_id)}/attachments"
        if external_url is not None:
            body = {
                "name": name,
                "description": description,
                "type": content_type,
                "externalUrl": external_url,
            }
            return self._send_json("POST", path, {k: v for k, v in body.items() if v is not None})
        fields = [("name", name), ("description", description), ("type", content_type)]
        request = Request(
            "POST",
            path,
            data=[(k, v) for k, v in fields if v is not None],
            files={"file": (name, content, content_type or "application/octet-stream")},
        )
        reply = self.request(request)
        return self._need_object(request, reply, self._json(request, reply), "the attachment")

    def add_comment(
        self, task_id: str, message: str, *, save_process_instance_id: bool = False
    ) -> dict[str, Any]:
        body = {"message": message, "saveProcessInstanceId": save_process_instance_id}
        return self._send_json("POST", f"/runtime/tasks/{_q(task_id)}/comments", body)

    def list_comments(self, task_id: str) -> list[dict[str, Any]]:
        return self._get_objects(f"/runtime/tasks/{_q(task_id)}/comments", "the comments")

    def get_comment(self, task_id: str, comment_id: str) -> dict[str, Any]:
        return self._get_object(f"/runtime/tasks/{_q(task_id)}/comments/{_q(comment_id)}", "the comment")

    def delete_comment(self, task_id: str, comment_id: str) -> None:
        self.request(Request("DELETE", f"/runtime/tasks/{_q(task_id)}/comments/{_q(comment_id)}"))


def _attachment_file(
    instance_id: str, task: Mapping[str, Any], task_id: str, attachment: Mapping[str, Any]
) -> ProcessFile:
    kind = attachment.get("type")
    attachment_id = str(attachment.get("id") or last_segment(attachment.get("url")))
    return ProcessFile(
        name=str(attachment.get("name") or attachment_id),
        size=None,
        content_type=kind if isinstance(kind, str) and "/" in kind else None,
        process_instance_id=instance_id,
        ref={"kind": "attachment", "task_id": task_id, "attachment_id": attachment_id},
        raw=dict(attachment),
        group=str(task.get("name") or task_id),
        external_url=attachment.get("externalUrl") or None,
    )


def _newest_first(raw: Mapping[str, Any]) -> tuple[float, int, str]:
    """Sort key: start time when the server sends it (Flowable), else the numeric id (Activiti 5)."""
    started = parse_date(raw.get("startTime"))
    ident = str(raw.get("id", ""))
    return (started.timestamp() if started else 0.0, int(ident) if ident.isdigit() else 0, ident)


def _may_be_running(states: set[ProcessState] | None) -> bool:
    return states is None or bool(states & {ProcessState.RUNNING, ProcessState.SUSPENDED})


def _range(offset: int) -> dict[str, str]:
    """``Range: bytes=N-`` (RFC 9110) for a download resumed at ``offset``; nothing from 0."""
    return {"Range": f"bytes={int(offset)}-"} if offset else {}
