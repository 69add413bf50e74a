"""Questetra BPM Suite and DataSpider BPM: the Workflow API under ``/API/PE``, ``/API/OR``, ``/API/PIM``.

One hook serves both: DataSpider BPM answers the same API under a context root
(``https://host:port/userweb``), which the connection's base URL carries. Parameters go as form
data or query strings (never JSON), lists repeat their name, every list call sends ``limit``
(the server's default is 1) and pages with ``start``. Searches are POSTs that only read, so they
are marked safe to repeat; starting, saving, accepting, stopping and deleting are not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cached_property
from typing import IO, Any

from airflow_bpm_provider import start_journal
from airflow_bpm_provider.exceptions import (
    BpmConfigError,
    BpmConflict,
    BpmError,
    BpmNotFound,
    BpmServerError,
    BpmTransferError,
    BpmValidationError,
)
from airflow_bpm_provider.hooks.answers import AnswerChecks, is_id, kind, parse_json
from airflow_bpm_provider.hooks.base import BpmHook
from airflow_bpm_provider.hooks.http import Flow, Reply, Request
from airflow_bpm_provider.hooks.paging import PageGuard
from airflow_bpm_provider.hooks.questetra_criteria import (
    PROCESS_ROOT,
    WORKITEM_ROOT,
    build_criteria,
    criteria_text,
)
from airflow_bpm_provider.hooks.questetra_dates import parse_api_datetime
from airflow_bpm_provider.hooks.questetra_form import (
    WorkitemForm,
    build_save_params,
    parse_form,
    parse_save_result,
)
from airflow_bpm_provider.models import ProcessFile, ProcessInstance, ProcessState, Task

LIST_STARTABLE = "/API/PE/ProcessModel/listStartable"
START = "/API/PE/ProcessInstance/start"
LIST_ALLOCATED = "/API/PE/Workitem/listAllocated"
LIST_OFFERED = "/API/PE/Workitem/listOffered"
BATCH_ACCEPT = "/API/PE/Workitem/batchAccept"
FORM_VIEW = "/API/PE/Workitem/Form/viewXml"
FORM_SAVE = "/API/PE/Workitem/Form/save"
WORKITEM_LIST = "/API/OR/Workitem/list"
WORKITEM_CSV = "/API/OR/Workitem/listCsv"
WORKITEM_CSV_UTF16 = "/API/OR/Workitem/listCsvUtf16"
PROCESS_LIST = "/API/OR/ProcessInstance/list"
PROCESS_CSV = "/API/OR/ProcessInstance/listCsv"
PROCESS_CSV_UTF16 = "/API/OR/ProcessInstance/listCsvUtf16"
PROCESS_VIEW = "/API/OR/ProcessInstance/view"
FILE_DOWNLOAD = "/API/OR/ProcessInstance/File/download"
STAR_ADD = "/API/OR/Workitem/Star/add"
STAR_REMOVE = "/API/OR/Workitem/Star/remove"
REALLOCATE = "/API/PIM/Workitem/reallocate"
PROCESS_STOP = "/API/OR/ProcessInstance/stop"
PROCESS_DELETE = "/API/OR/ProcessInstance/delete"

MAX_LIMIT = 1000  # the API's maximum page size (seed 003: "limit", default 1, max 1000)
DEFAULT_PAGE_SIZE = MAX_LIMIT  # the largest page the API allows: 50,000 processes in 50 requests
CHUNK_SIZE = 64 * 1024

STATES = {
    "STARTED": ProcessState.RUNNING,
    "ENDED": ProcessState.COMPLETED,
    "FAILED": ProcessState.FAILED,  # ended abnormally, including stopped by a person
}
# What find_processes(states=...) searches for. Questetra cannot suspend a process, so SUSPENDED
# matches nothing (it has no entry); a stopped (cancelled) process ends as FAILED, so CANCELLED
# searches FAILED, which also holds processes that ended abnormally.
FILTER_STATES = {
    ProcessState.RUNNING: "STARTED",
    ProcessState.COMPLETED: "ENDED",
    ProcessState.FAILED: "FAILED",
    ProcessState.CANCELLED: "FAILED",
}
OPEN_WORKITEM_STATES = ("OFFERED", "ALLOCATED", "STARTED")
DATETIME_KEYS = ("processInstanceStartDatetime", "processInstanceEndDatetime")
FORM_OPTIONS = ("title", "flow", "qgroup_id", "save_only")
FIND_FILTERS = ("query", "definition", "states", "title", "started_after", "started_before")
_ASSIGNEE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_PROCESS = re.compile(r"^\s*(\d+)\s*(?:/\s*(\d+)\s*)?$")


class QuestetraHook(AnswerChecks, BpmHook):
    """Questetra BPM Suite / DataSpider BPM.

    Connection: host = base URL with any context root (``https://example.questetra.net`` or
    ``https://host:port/userweb``); Basic auth with the user's e-mail and API password, or extra
    ``auth_type: bearer`` with an OAuth2 access token in the password field. Extras:
    ``page_size`` (1-1000, default 1000, the API's maximum) and ``timezone`` (the API user's IANA
    time zone: aware datetimes in criteria and forms are converted to it, since the API takes
    wall-clock text).
    """

    conn_type = "questetra"
    hook_name = "Questetra BPM Suite / DataSpider BPM"
    system = "Questetra"
    context_roots = ("/userweb",)  # DataSpider BPM; Questetra Cloud answers at "/"
    hosts_without_context_root = (".questetra.net",)
    #: The business key (the title) is saved by a call after the start, not sent with it: until
    #: then a started process carries no key (the start operator's journal covers that gap).
    business_key_after_start = True

    # ---- connection extras --------------------------------------------------------------------

    @cached_property
    def page_size(self) -> int:
        raw = self.settings.extra_value("page_size", DEFAULT_PAGE_SIZE)
        try:
            size = int(raw)
        except (TypeError, ValueError):
            size = 0
        if not 1 <= size <= MAX_LIMIT:
            raise BpmConfigError(
                f"extra field 'page_size' must be an integer from 1 to {MAX_LIMIT}, got {raw!r}",
                conn_id=self.bpm_conn_id,
            )
        return size

    @cached_property
    def timezone(self) -> tzinfo | None:
        return self.settings.timezone()

    # ---- paging -------------------------------------------------------------------------------

    def _page(
        self, request: Request, reply: Reply, key: str, guard: PageGuard
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page ``{count, <key>: [entries]}`` (seed 003), its entries checked and fed to ``guard``."""
        body = self._need_object(request, reply, self._json(request, reply), "the answer")
        count = body.get("count")
        if count is not None:
            count = self._need_count(request, reply, count, "'count'")
        # An empty result may leave the list out; null or any other value is not a list of entries.
        items = self._need_objects(request, reply, body.get(key, []), f"'{key}'", id_key=PAGE_IDS[key][0])
        problem = guard.problem(_entry_id(item, key) for item in items)
        if problem:
            raise self._unexpected(request, reply, problem)
        return items, count

    @staticmethod
    def _has_more(got: int, limit: int, offset: int, count: int | None) -> bool:
        # A page longer than asked means the server ignored paging and sent everything.
        if got == 0 or got != limit:
            return False
        return count is None or offset < count

    def _pages(
        self, make: Callable[[int, int], Request], key: str, *, start: int = 0, max_results: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a paged list, fetched one page at a time as the caller iterates."""
        offset, produced, guard = start, 0, PageGuard()
        while max_results is None or produced < max_results:
            limit = self.page_size if max_results is None else min(self.page_size, max_results - produced)
            request = make(offset, limit)
            items, count = self._page(request, self.request(request), key, guard)
            for item in items[: None if max_results is None else max_results - produced]:
                produced += 1
                yield item
            offset += len(items)
            if not self._has_more(len(items), limit, offset, count):
                return

    def _pages_flow(self, make: Callable[[int, int], Request], key: str) -> Flow[list[dict[str, Any]]]:
        """The same as a flow (all pages collected), so triggers can run it on the async transport."""
        collected: list[dict[str, Any]] = []
        offset, guard = 0, PageGuard()
        while True:
            request = make(offset, self.page_size)
            reply = yield request
            items, count = self._page(request, reply, key, guard)
            collected.extend(items)
            offset += len(items)
            if not self._has_more(len(items), self.page_size, offset, count):
                return collected

    @staticmethod
    def _search(path: str, criteria: str | None) -> Callable[[int, int], Request]:
        def make(start: int, limit: int) -> Request:
            data = {"criteria": criteria, "start": start, "limit": limit}
            return Request("POST", path, data=data, idempotent=True)  # a search only reads

        return make

    # ---- small helpers ------------------------------------------------------------------------

    def _numeric(self, value: Any, what: str) -> str:
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit():
            raise BpmConfigError(f"{what} must be a number, got {value!r}", conn_id=self.bpm_conn_id)
        return text

    def _check_options(
        self, options: Mapping[str, Any], allowed: Sequence[str], method: str, noun: str = "option"
    ) -> None:
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise BpmConfigError(
                f"{method}: unknown Questetra {noun}(s) {', '.join(unknown)}; valid: {', '.join(allowed)}",
                conn_id=self.bpm_conn_id,
            )

    def _restate(self, exc: BpmError, prefix: str) -> BpmError:
        """The same error class with what had already happened in front of the message."""
        if _contextless(exc):
            return self._in_context(exc, prefix)
        restated = type(exc)(f"{prefix}: {exc}")
        for name in ("system", "conn_id", "method", "path", "status", "server_message", "details"):
            setattr(restated, name, getattr(exc, name))
        return restated

    def _in_context(self, exc: BpmError, prefix: str | None = None) -> BpmError:
        """An error of a helper module (criteria, forms), which knows no connection, made this hook's."""
        if not _contextless(exc):
            return exc
        # without system, connection, request or server message the text is the message and then
        # one "\n  - detail" line per detail (BpmError._compose): take the message back out
        suffix = "".join(f"\n  - {detail}" for detail in exc.details)
        message = str(exc).removesuffix(suffix)
        if prefix:
            message = f"{prefix}: {message}"
        return type(exc)(message, system=self.system, conn_id=self.bpm_conn_id, details=exc.details)

    def _criteria_text(self, criteria: Mapping[str, Any] | str | bytes | None, root: str) -> str | None:
        try:
            return criteria_text(criteria, root=root, tz=self.timezone)
        except BpmConfigError as exc:
            raise self._in_context(exc) from None

    def _object(self, request: Request, reply: Reply, key: str) -> dict[str, Any]:
        body = self._need_object(request, reply, self._json(request, reply), "the answer")
        value = body.get(key)
        if not isinstance(value, dict):
            raise self._unexpected(request, reply, f"no '{key}' object (got {kind(value)})")
        return value

    # ---- Workitem API: process start ----------------------------------------------------------

    def list_startable(
        self, *, category: str | None = None, query: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Start events this user may start (ActivityEntry dicts), every page."""

        def make(start: int, limit: int) -> Request:
            params = {"start": start, "limit": limit, "category": category, "query": query}
            return Request("GET", LIST_STARTABLE, params=params)

        return self._pages(make, "startableActivities")

    def start(self, process_model_info_id: int | str, node_number: int | str) -> dict[str, Any]:
        """Start a process at a start event; returns its first task (WorkitemEntry). Never retried."""
        data = {
            "processModelInfoId": self._numeric(process_model_info_id, "processModelInfoId"),
            "nodeNumber": self._numeric(node_number, "nodeNumber"),
        }
        request = Request("POST", START, data=data, idempotent=False)
        return self._object(request, self.request(request), "workitem")

    # ---- Workitem API: my tasks -----------------------------------------------------------------

    def list_allocated(self) -> Iterator[dict[str, Any]]:
        """Tasks allocated to this user (WorkitemEntry dicts)."""
        return self._pages(
            lambda s, n: Request("GET", LIST_ALLOCATED, params={"start": s, "limit": n}), "workitems"
        )

    def list_offered(self) -> Iterator[dict[str, Any]]:
        """Tasks offered to this user, waiting to be accepted."""
        return self._pages(
            lambda s, n: Request("GET", LIST_OFFERED, params={"start": s, "limit": n}), "workitems"
        )

    def batch_accept(
        self, workitem_ids: Sequence[int | str], *, raise_on_failure: bool = True
    ) -> list[dict[str, Any]]:
        """Accept offered tasks; returns one result per task (``success``, ``workitemId``, ``error``).

        The server answers 200 also when some tasks could not be accepted. Unless
        ``raise_on_failure`` is False, BpmConflict then lists every failed id and error code.
        """
        if isinstance(workitem_ids, str | int) or not workitem_ids:
            raise BpmConfigError(
                "batch_accept needs a non-empty list of workitem ids", conn_id=self.bpm_conn_id
            )
        ids = [self._numeric(wid, "workitem id") for wid in workitem_ids]
        request = Request("POST", BATCH_ACCEPT, data={"workitemIds": ids}, idempotent=False)
        reply = self.request(request)
        body = self._need_object(request, reply, self._json(request, reply), "the answer")
        results = self._need_objects(request, reply, body.get("results"), "'results'")
        if raise_on_failure:
            failures = _accept_failures(ids, results)
            if failures:
                raise self._error(
                    BpmConflict,
                    f"{len(failures)} of {len(ids)} task(s) could not be accepted",
                    request,
                    status=reply.status,
                    details=failures,
                )
        return results

    # ---- Workitem API: task forms ---------------------------------------------------------------

    def _view_form_flow(self, workitem_id: str) -> Flow[WorkitemForm]:
        request = Request("GET", FORM_VIEW, params={"workitemId": workitem_id})
        reply = yield request
        with self._reading(request, reply, "the task form"):
            try:
                return parse_form(reply.body)
            except ValueError as exc:  # the parser's own words say what is wrong
                raise self._unexpected(request, reply, str(exc)) from None

    def view_form(self, workitem_id: int | str) -> WorkitemForm:
        """The task's input form: items with types, access, choices and values; buttons; roles."""
        return self._run(self._view_form_flow(self._numeric(workitem_id, "workitem id")))

    def save_form(
        self,
        workitem_id: int | str,
        values: Mapping[int | str, Any] | None = None,
        *,
        title: str | None = None,
        flow: int | str | None = None,
        qgroup_id: int | str | None = None,
        save_only: bool = False,
    ) -> None:
        """Fill in and submit a task (or only save it with ``save_only``).

        ``values`` are keyed by data item number or name and typed from the form view;
        ``flow`` is a user-select button's flow id or its label; ``qgroup_id`` the organization
        (id or name) to act for when the task offers several.
        """
        wid = self._numeric(workitem_id, "workitem id")
        form = self.view_form(wid)
        self._save(wid, form, values, title=title, flow=flow, qgroup_id=qgroup_id, save_only=save_only)

    def _save(
        self,
        wid: str,
        form: WorkitemForm,
        values: Mapping[int | str, Any] | None,
        *,
        title: str | None,
        flow: int | str | None = None,
        qgroup_id: int | str | None = None,
        save_only: bool,
        repeatable: bool = False,
    ) -> None:
        """Form/save with ``values`` typed from ``form`` (the task's form view).

        ``repeatable``: the save changes nothing when sent twice (a title saved with ``saveOnly``),
        so the transport may re-send it after an unclear failure.
        """
        try:
            params = build_save_params(
                form,
                values,
                workitem_id=wid,
                title=title,
                flow=flow,
                qgroup_id=qgroup_id,
                save_only=save_only,
                tz=self.timezone,
            )
        except BpmError as exc:
            raise self._restate(exc, f"workitem {wid}") from None
        request = Request("POST", FORM_SAVE, data=params, idempotent=repeatable)
        reply = self.request(request)
        with self._reading(request, reply, "the save result"):
            try:
                errors = parse_save_result(reply.body)
            except ValueError as exc:
                raise self._unexpected(request, reply, str(exc)) from None
        if errors:
            raise self._error(
                BpmValidationError,
                f"the server refused the form of workitem {wid} (task '{form.task_name}')",
                request,
                status=reply.status,
                details=[
                    f"{form.describe_key(error.key) or error.section}: {error.detail}" for error in errors
                ],
            )

    # ---- monitoring: searches ---------------------------------------------------------------

    def search_processes(
        self,
        criteria: Mapping[str, Any] | str | None = None,
        *,
        start: int = 0,
        max_results: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """ProcessInstanceEntry dicts matching ``criteria`` (mapping or XML), page after page.

        Data items appear in the results only for the items the criteria names (``data``).
        """
        text = self._criteria_text(criteria, PROCESS_ROOT)
        return self._pages(
            self._search(PROCESS_LIST, text), "processInstances", start=start, max_results=max_results
        )

    def search_tasks(
        self,
        criteria: Mapping[str, Any] | str | None = None,
        *,
        start: int = 0,
        max_results: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """WorkitemEntry dicts matching ``criteria`` (root ``workitem-criteria``), page after page."""
        text = self._criteria_text(criteria, WORKITEM_ROOT)
        return self._pages(
            self._search(WORKITEM_LIST, text), "workitems", start=start, max_results=max_results
        )

    def search_processes_csv(
        self,
        criteria: Mapping[str, Any] | str | None = None,
        *,
        utf16: bool = False,
        out: IO[bytes] | None = None,
        start: int = 0,
        limit: int = MAX_LIMIT,
        chunk_size: int = CHUNK_SIZE,
    ) -> Iterator[bytes] | int:
        """The search as CSV (UTF-8, or UTF-16 with ``utf16``), streamed.

        With ``out`` the bytes are written there and their number returned; otherwise an
        iterator of chunks. One request holds at most 1000 rows: page with ``start``.
        """
        path = PROCESS_CSV_UTF16 if utf16 else PROCESS_CSV
        return self._csv(
            path, PROCESS_ROOT, criteria, out=out, start=start, limit=limit, chunk_size=chunk_size
        )

    def search_tasks_csv(
        self,
        criteria: Mapping[str, Any] | str | None = None,
        *,
        utf16: bool = False,
        out: IO[bytes] | None = None,
        start: int = 0,
        limit: int = MAX_LIMIT,
        chunk_size: int = CHUNK_SIZE,
    ) -> Iterator[bytes] | int:
        """Task search as CSV; see :meth:`search_processes_csv`."""
        path = WORKITEM_CSV_UTF16 if utf16 else WORKITEM_CSV
        return self._csv(
            path, WORKITEM_ROOT, criteria, out=out, start=start, limit=limit, chunk_size=chunk_size
        )

    def _csv(
        self,
        path: str,
        root: str,
        criteria: Mapping[str, Any] | str | None,
        *,
        out: IO[bytes] | None,
        start: int,
        limit: int,
        chunk_size: int,
    ) -> Iterator[bytes] | int:
        text = self._criteria_text(criteria, root)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise BpmConfigError(
                f"limit must be from 1 to {MAX_LIMIT}, got {limit!r}", conn_id=self.bpm_conn_id
            )
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise BpmConfigError(f"start must be 0 or more, got {start!r}", conn_id=self.bpm_conn_id)
        data = {"criteria": text, "start": start, "limit": limit}
        request = Request("POST", path, data=data, idempotent=True, stream=True)
        chunks = self._stream(request, chunk_size)
        if out is None:
            return chunks
        written = 0
        for chunk in chunks:
            out.write(chunk)
            written += len(chunk)
        return written

    def _stream(self, request: Request, chunk_size: int) -> Iterator[bytes]:
        import requests

        reply = self.request(request)
        try:
            yield from reply.iter_bytes(chunk_size)
        except requests.exceptions.RequestException as exc:
            raise self._error(
                BpmTransferError,
                "the answer broke off",
                request,
                server_message=type(exc).__name__,
            ) from None
        finally:
            reply.close()

    # ---- monitoring: one process, files, stars, admin -----------------------------------------

    def _view_process_flow(self, process_instance_id: str) -> Flow[dict[str, Any]]:
        pid = self._numeric(process_instance_id, "process instance id")
        request = Request("GET", PROCESS_VIEW, params={"processInstanceId": pid})
        reply = yield request
        return self._object(request, reply, "processInstance")

    # ---- batched reads for triggers (see hooks/batch_reads.py) ------------------------------

    def _poll_processes_flow(
        self, ids: Sequence[str], definitions: Sequence[str]
    ) -> Flow[dict[str, ProcessInstance]]:
        """Many processes: the criteria XML has no process id (seed 003), so ``ProcessInstance/list``
        lists the STARTED processes of each app in ``definitions``, 1,000 a page, then the ENDED
        and FAILED ones, the latest ended first (``processInstanceEndDatetime`` DESC), where the
        processes that ended since the last poll are. Processes not listed (on another app, or
        ended long ago) are left out, for the caller to ``view`` one by one."""
        from airflow_bpm_provider.hooks.batch_reads import LISTING_PAGE, worth_another_page

        found: dict[str, ProcessInstance] = {}
        missing, pages = set(ids), 0
        listings = [
            (model, states, sort, direction)
            for states, sort, direction in (
                (("STARTED",), "processInstanceStartDatetime", "ASC"),
                (("ENDED", "FAILED"), "processInstanceEndDatetime", "DESC"),
            )
            for model in definitions
        ]
        for model, states, sort, direction in listings:
            criteria = (
                "<process-instance-criteria>"
                f"<process-model-info-id>{self._numeric(model, 'app id')}</process-model-info-id>"
                f"<states>{''.join(f'<state>{state}</state>' for state in states)}</states>"
                f"<sort-property>{sort}</sort-property><sort-direction>{direction}</sort-direction>"
                "</process-instance-criteria>"
            )
            offset, guard = 0, PageGuard()
            while missing and worth_another_page(pages, len(missing)):
                request = self._search(PROCESS_LIST, criteria)(offset, LISTING_PAGE)
                items, count = self._page(request, (yield request), "processInstances", guard)
                pages += 1
                for raw in items:
                    pid = str(raw.get("processInstanceId"))
                    if pid in missing:
                        missing.discard(pid)
                        found[pid] = self._to_process(raw, request)
                offset += len(items)
                if not self._has_more(len(items), LISTING_PAGE, offset, count):
                    break
        return found

    def _poll_tasks_flow(self, wanted: Mapping[str, str], name: str | None) -> Flow[dict[str, list[Task]]]:
        """Open tasks of many processes (id -> app id): ``Workitem/list`` criteria name one
        process-instance-id at most (seed 003), so each app's open tasks are listed
        (process-model-info-id, workitem-states), 1,000 a page, and matched by name here.
        Processes whose listing was cut short are left out."""
        from airflow_bpm_provider.hooks.batch_reads import (
            LISTING_PAGE,
            by_definition,
            tasks_of,
            worth_another_page,
        )

        found: dict[str, list[Task]] = {}
        pages = 0
        for model, ids in by_definition(wanted).items():
            criteria = {"process_model_info_id": model, "workitem_states": list(OPEN_WORKITEM_STATES)}
            make = self._search(WORKITEM_LIST, build_criteria(criteria, root=WORKITEM_ROOT))
            items: list[dict[str, Any]] = []
            offset, complete, guard = 0, False, PageGuard()
            while worth_another_page(pages, len(wanted) - len(found)):
                request = make(offset, LISTING_PAGE)
                batch, count = self._page(request, (yield request), "workitems", guard)
                pages, offset = pages + 1, offset + len(batch)
                items.extend(batch)
                if not self._has_more(len(batch), LISTING_PAGE, offset, count):
                    complete = True
                    break
            if complete:
                found.update(tasks_of(ids, (self._to_task(raw) for raw in items), name))
        return found

    def view_process(self, process_instance_id: int | str) -> dict[str, Any]:
        """The ProcessInstanceEntry with every data item."""
        return self._run(self._view_process_flow(str(process_instance_id)))

    @contextmanager
    def download_file(
        self, file_id: int | str, process_data_instance_id: int | str, *, offset: int = 0
    ) -> Iterator[Reply]:
        """One file of a File-type data item, streamed (from byte ``offset`` on); closed at exit."""
        params = {
            "id": self._numeric(file_id, "file id"),
            "processDataInstanceId": self._numeric(process_data_instance_id, "processDataInstanceId"),
        }
        headers = {"Range": f"bytes={int(offset)}-"} if offset else {}
        reply = self.request(Request("GET", FILE_DOWNLOAD, params=params, headers=headers, stream=True))
        try:
            yield reply
        finally:
            reply.close()

    def add_star(self, workitem_id: int | str) -> None:
        data = {"workitemId": self._numeric(workitem_id, "workitem id")}
        self.request(Request("POST", STAR_ADD, data=data, idempotent=True))  # a star is set, not counted

    def remove_star(self, workitem_id: int | str) -> None:
        data = {"workitemId": self._numeric(workitem_id, "workitem id")}
        self.request(Request("POST", STAR_REMOVE, data=data, idempotent=True))

    def reallocate(
        self, workitem_id: int | str, quser_id: int | str, qgroup_id: int | str
    ) -> dict[str, Any] | None:
        """Force-allocate a task to a user acting for an organization (needs control authority)."""
        data = {
            "workitemId": self._numeric(workitem_id, "workitem id"),
            "quserId": self._numeric(quser_id, "quserId"),
            "qgroupId": self._numeric(qgroup_id, "qgroupId"),
        }
        request = Request("POST", REALLOCATE, data=data, idempotent=False)
        reply = self.request(request)
        if not reply.body.strip():
            return None  # some versions answer with an empty body
        body = self._json(request, reply)
        if isinstance(body, dict) and isinstance(body.get("workitem"), dict):
            return body["workitem"]
        return body

    def stop_process(self, process_instance_id: int | str) -> None:
        data = {"processInstanceId": self._numeric(process_instance_id, "process instance id")}
        self.request(Request("POST", PROCESS_STOP, data=data, idempotent=False))

    def delete_process(self, process_instance_id: int | str) -> None:
        data = {"processInstanceId": self._numeric(process_instance_id, "process instance id")}
        self.request(Request("POST", PROCESS_DELETE, data=data, idempotent=False))

    # ---- the contract -------------------------------------------------------------------------

    def ui_url(self, instance_id: str) -> str | None:
        # (unverified) the process detail page of the web UI; only this line knows its address.
        return f"{self.base_url}/OR/ProcessInstance/view?processInstanceId={instance_id}"

    def _probe(self) -> str:
        request = Request("GET", LIST_STARTABLE, params={"start": 0, "limit": 1})
        reply = self.request(request)
        body = self._need_object(request, reply, self._json(request, reply), "the answer")
        count = self._need_count(request, reply, body.get("count"), "'count'")
        return f"Connected to {self.base_url}; {count} startable process(es)"

    def _to_process(self, raw: Mapping[str, Any], request: Request) -> ProcessInstance:
        """A ProcessInstanceEntry as a ProcessInstance; ``request`` is the call that answered it."""
        pid = raw.get("processInstanceId")
        raw_state = raw.get("processInstanceState")
        state = STATES.get(raw_state) if isinstance(raw_state, str) else None
        if not is_id(pid) or state is None:
            raise self._error(
                BpmServerError,
                "unexpected answer: a process entry needs a processInstanceId and a processInstanceState "
                f"of {', '.join(STATES)}; got processInstanceId={pid!r}, processInstanceState={raw_state!r}",
                request,
            )
        model = raw.get("processModelInfoId")
        if model is not None:
            self._need_id(request, None, model, "'processModelInfoId'")
        for key in ("processModelInfoName", "processInstanceTitle"):
            self._optional(request, None, raw, key, str, f"process {pid}")
        started, ended = (self._api_datetime(request, raw, key, pid) for key in DATETIME_KEYS)
        return ProcessInstance(
            id=str(pid),
            state=state,
            raw_state=str(raw_state),
            definition=str(model) if model is not None else None,
            definition_name=raw.get("processModelInfoName"),
            title=raw.get("processInstanceTitle"),
            started_at=started,
            ended_at=ended,
            url=self.ui_url(str(pid)),
            raw=dict(raw),
        )

    def _api_datetime(self, request: Request, raw: Mapping[str, Any], key: str, pid: Any) -> datetime | None:
        value = raw.get(key)
        if value in (None, ""):
            return None
        parsed = parse_api_datetime(value) if isinstance(value, str) else None
        if parsed is None:
            raise self._wrong(
                request, None, f"'{key}' of process {pid} is not a date and time: {value!r:.80}"
            )
        return parsed

    def _parse_process(self, process: Any) -> tuple[str, str | None]:
        """(app id, start node or None) for ``"12"``, ``"12/3"`` or an app's name.

        A name is looked up among the apps this user may start (``listStartable`` with ``query``,
        which matches names containing it; seed 003), must match exactly and name one app. The
        answer is kept for the hook's lifetime: an app id never changes, whatever its version.
        """
        match = _PROCESS.match(str(process))
        if isinstance(process, bool) or not isinstance(process, str | int) or not str(process).strip():
            raise BpmConfigError(
                f"a Questetra process is its app id (processModelInfoId), optionally with the start "
                f"event's node number ('12' or '12/3'), or the app's name; got {process!r}",
                conn_id=self.bpm_conn_id,
            )
        if match is not None:
            return match.group(1), match.group(2)
        name = str(process)
        if name not in self._apps_by_name:
            self._apps_by_name[name] = self._app_by_name(name)
        return self._apps_by_name[name]

    @cached_property
    def _apps_by_name(self) -> dict[str, tuple[str, str | None]]:
        return {}

    def _app_by_name(self, name: str) -> tuple[str, str | None]:
        where = Request("GET", LIST_STARTABLE)
        apps: dict[str, list[dict[str, Any]]] = {}
        named: dict[str, str] = {}
        for activity in self.list_startable(query=name):
            model = str(activity.get("processModelInfoId"))
            named.setdefault(model, str(activity.get("processModelInfoName")))
            if activity.get("processModelInfoName") == name:
                apps.setdefault(model, []).append(activity)
        if len(apps) == 1:
            ((model, events),) = apps.items()
            node = self._numeric(events[0].get("nodeNumber"), "nodeNumber") if len(events) == 1 else None
            return model, node
        if apps:
            raise self._error(
                BpmConfigError,
                f"{len(apps)} startable apps are named {name!r}; name one by its id: "
                + ", ".join(f"{model} '{name}'" for model in apps),
                where,
            )
        similar = [f"{model} '{app}'" for model, app in named.items()]
        if not similar:
            similar = [
                f"{a.get('processModelInfoId')} '{a.get('processModelInfoName')}'"
                for a in self._some_startable()
            ]
            known = f"startable apps: {', '.join(similar)}" if similar else "this user can start no app"
        else:
            known = f"apps whose name contains it: {', '.join(similar[:10])}"
        # A configuration error, not a missing record: no retry or later poll can make it right.
        raise self._error(
            BpmConfigError,
            f"no app this user can start is named {name!r} (names are looked up among startable "
            f"apps; name any other app by its id); {known}",
            where,
        )

    def _some_startable(self, limit: int = 10) -> list[dict[str, Any]]:
        """The first ``limit`` distinct startable apps, for an error message."""
        seen: dict[str, dict[str, Any]] = {}
        for activity in self.list_startable():
            seen.setdefault(str(activity.get("processModelInfoId")), activity)
            if len(seen) >= limit:
                break
        return list(seen.values())

    def _start_node(self, model_id: str) -> str:
        where = Request("GET", LIST_STARTABLE)
        matches: list[dict[str, Any]] = []
        others: dict[str, str] = {}
        for activity in self.list_startable():
            activity_model = str(activity.get("processModelInfoId"))
            if activity_model == model_id:
                matches.append(activity)
            else:
                others.setdefault(activity_model, str(activity.get("processModelInfoName")))
        if not matches:
            if others:
                shown = [f"{mid} '{name}'" for mid, name in list(others.items())[:10]]
                more = f" and {len(others) - 10} more" if len(others) > 10 else ""
                known = f"startable apps: {', '.join(shown)}{more}"
            else:
                known = "this user can start no app"
            raise self._error(
                BpmNotFound,
                f"app {model_id} cannot be started by this user (not found or no start event); {known}",
                where,
            )
        if len(matches) > 1:
            events = ", ".join(f"{a.get('nodeNumber')} '{a.get('nodeName')}'" for a in matches)
            raise self._error(
                BpmConfigError,
                f"app {model_id} has {len(matches)} start events; "
                f"name one as '{model_id}/<node number>': {events}",
                where,
            )
        return self._numeric(matches[0].get("nodeNumber"), "nodeNumber")

    def start_process(
        self,
        process: str,
        *,
        variables: Mapping[str, Any] | None = None,
        business_key: str | None = None,
        **options: Any,
    ) -> ProcessInstance:
        """Start app ``process``: its id (``"12"``, or ``"12/3"`` for start event node 3) or its name.

        Questetra starts a process by opening its first task, allocated to the starting user.
        Questetra has no business key: the title carries it (option ``title`` wins over
        ``business_key``). A title is saved on that first task at once, on its own and without
        finishing it (``saveOnly``), so a retry finds the process by its key even when the
        values below are refused. With ``variables``, ``flow`` or ``qgroup_id`` the first task
        is then filled in and submitted (``save_only=True``: only saved). A title alone, or no
        input at all, leaves the first task open in the user's "My Tasks".
        """
        self._check_options(options, FORM_OPTIONS, "start_process")
        model_id, node = self._parse_process(process)
        if node is None:
            node = self._start_node(model_id)
        title = options.get("title") if options.get("title") is not None else business_key
        flow, qgroup_id = options.get("flow"), options.get("qgroup_id")
        fill = bool(variables) or flow is not None or qgroup_id is not None
        workitem = self.start(model_id, node)
        pid, wid = workitem.get("processInstanceId"), workitem.get("id")
        if not is_id(pid) or not is_id(wid):
            raise self._error(
                BpmServerError,
                f"the start answer has no processInstanceId or workitem id: {sorted(workitem)}",
                Request("POST", START),
            )
        # Before the title save: a try that dies from here on is finished by resume_start.
        start_journal.started(str(pid))
        if title is not None or fill:
            self._first_task(str(pid), str(wid), variables, title, options, fill=fill)
        return self.get_process(str(pid))

    def _first_task(
        self,
        pid: str,
        wid: str,
        variables: Mapping[str, Any] | None,
        title: str | None,
        options: Mapping[str, Any],
        *,
        fill: bool,
    ) -> None:
        # The start answer's first task is ALLOCATED to the starter (seed 003), so Form/save
        # needs no batchAccept first.
        titled, submitted = "its title could not be saved", "its first task could not be submitted"
        step = titled if title is not None else submitted
        try:
            wid = self._numeric(wid, "workitem id")
            form = self.view_form(wid)
            if title is not None:
                self._save(wid, form, None, title=title, save_only=True, repeatable=True)
            if fill:
                step = submitted
                self._save(
                    wid,
                    form,
                    variables,
                    title=title,  # again, in case a save without it clears the title
                    flow=options.get("flow"),
                    qgroup_id=options.get("qgroup_id"),
                    save_only=bool(options.get("save_only", False)),
                )
        except BpmError as exc:
            raise self._restate(exc, f"process {pid} was started, but {step}") from None

    def resume_start(
        self,
        instance: ProcessInstance,
        *,
        variables: Mapping[str, Any] | None = None,
        business_key: str | None = None,
        **options: Any,
    ) -> ProcessInstance:
        """Finish a start an earlier try began: save the missing title, submit the first task.

        That is the case while the process's only workitem so far is still open: an earlier try
        started it and failed (or its worker died) before or while saving the title (the business
        key, or option ``title``), or before or while submitting the first task.
        """
        self._check_options(options, FORM_OPTIONS, "resume_start")
        fill = bool(variables) or options.get("flow") is not None or options.get("qgroup_id") is not None
        title = options.get("title") if options.get("title") is not None else business_key
        untitled = title is not None and instance.title != title
        if instance.ended or not (fill or untitled):
            return instance
        workitems = list(self.search_tasks({"process_instance_id": self._numeric(instance.id, "process id")}))
        if len(workitems) != 1 or workitems[0].get("state") not in OPEN_WORKITEM_STATES:
            if untitled:
                self.log.warning(
                    "Process %s has no title %r, and its first task is no longer open to save one",
                    instance.id,
                    title,
                )
            return instance
        self.log.info(
            "Process %s was started but its start never finished (%s): finishing it now",
            instance.id,
            "untitled" if untitled else "first task not submitted",
        )
        if title is None:
            title = instance.title
        self._first_task(instance.id, str(workitems[0]["id"]), variables, title, options, fill=fill)
        return self.get_process(instance.id)

    def find_process_by_business_key(self, process: str, business_key: str) -> ProcessInstance | None:
        """The newest process of app ``process`` whose title is exactly ``business_key``."""
        model_id, _ = self._parse_process(process)
        criteria = {
            "process_model_info_id": model_id,
            "title": business_key,
            "sort_property": "processInstanceStartDatetime",
            "sort_direction": "DESC",
        }
        exact = [
            raw for raw in self.search_processes(criteria) if raw.get("processInstanceTitle") == business_key
        ]
        if not exact:
            return None
        exact.sort(key=_newest_first)
        return self._to_process(exact[0], Request("POST", PROCESS_LIST))

    def find_unclaimed_starts(self, process: str, started_after: datetime) -> list[ProcessInstance]:
        """Processes of app ``process`` this user started at or after ``started_after`` that have
        no title yet: where a start whose answer was lost would be (its title comes after).

        The criteria ask for ``init-quser-id`` ``#me`` and ``start-date-from`` (to the minute,
        inclusive; seed 003); the title, which criteria can only match by "contains", and the
        exact time are checked here. See :func:`unclaimed_window_start` for the lower bound.
        """
        if started_after.tzinfo is None:
            started_after = started_after.replace(tzinfo=UTC)  # naive is UTC, as everywhere in Airflow
        model_id, _ = self._parse_process(process)
        criteria = {
            "process_model_info_id": model_id,
            "init_quser_id": "#me",
            "start_date_from": unclaimed_window_start(started_after, self.timezone),
            "sort_property": "processInstanceStartDatetime",
            "sort_direction": "DESC",
        }
        where = Request("POST", PROCESS_LIST)
        found = []
        for raw in self.search_processes(criteria):
            instance = self._to_process(raw, where)
            # The documented answer carries its own offset (``2010-08-18T14:03:16+0900``), so
            # ``started`` is aware and the comparison below is between instants, whatever zone
            # the server writes in. Text without an offset (undocumented) is read in the
            # ``timezone`` extra, else as UTC: the best guess without one, which may drop a start
            # of a user west of UTC; set the extra for such a server.
            started = instance.started_at
            if started is not None and started.tzinfo is None:
                started = started.replace(tzinfo=self.timezone or UTC)
            if instance.title in (None, "") and (started is None or started >= started_after):
                found.append(instance)
        return found

    def _get_process_flow(self, instance_id: str) -> Flow[ProcessInstance]:
        raw = yield from self._view_process_flow(instance_id)
        return self._to_process(raw, Request("GET", PROCESS_VIEW))

    def find_processes(self, **filters: Any) -> Iterator[ProcessInstance]:
        """Processes by ``definition`` (app id or name), ``states``, ``title``, ``started_after``,
        ``started_before``, and/or ``query`` (criteria mapping or XML, passed through).

        ``states`` are searched as Questetra's: RUNNING as STARTED, COMPLETED as ENDED, FAILED
        and CANCELLED both as FAILED (Questetra ends a stopped process as FAILED, the same state
        as one that failed, so the two cannot be told apart). Questetra cannot suspend a
        process: SUSPENDED matches nothing, and asking for SUSPENDED only is a BpmConfigError.
        """
        self._check_options(filters, FIND_FILTERS, "find_processes", "filter")
        text = self._criteria_text(self._find_criteria(filters), PROCESS_ROOT)
        pages = self._pages(self._search(PROCESS_LIST, text), "processInstances")
        where = Request("POST", PROCESS_LIST)
        return (self._to_process(raw, where) for raw in pages)

    def _find_criteria(self, filters: Mapping[str, Any]) -> Mapping[str, Any] | str | None:
        derived: dict[str, Any] = {}
        if filters.get("definition") is not None:
            derived["process_model_info_id"] = self._parse_process(filters["definition"])[0]
        if filters.get("states") is not None:
            derived["states"] = self._vendor_states(filters["states"])
        if filters.get("title") is not None:
            derived["title"] = filters["title"]
        if filters.get("started_after") is not None:
            derived["start_date_from"] = filters["started_after"]
        if filters.get("started_before") is not None:
            derived["start_date_to"] = filters["started_before"]
        query = filters.get("query")
        if query is None:
            return derived or None
        if isinstance(query, str | bytes):
            if derived:
                raise BpmConfigError(
                    "find_processes: a criteria XML 'query' cannot be combined with other filters; "
                    "pass the query as a mapping or put everything into the XML",
                    conn_id=self.bpm_conn_id,
                )
            return query.decode("utf-8") if isinstance(query, bytes) else query
        if isinstance(query, Mapping):
            clash = sorted(set(query) & set(derived))
            if clash:
                raise BpmConfigError(
                    f"find_processes: criteria key(s) {', '.join(clash)} "
                    "given both in 'query' and as filters",
                    conn_id=self.bpm_conn_id,
                )
            return {**query, **derived}
        raise BpmConfigError(
            f"find_processes: 'query' must be a criteria mapping or XML, got {type(query).__name__}",
            conn_id=self.bpm_conn_id,
        )

    def _vendor_states(self, states: Any) -> list[str]:
        if isinstance(states, str | ProcessState):
            values = [states]
        elif isinstance(states, Sequence | set | frozenset):
            values = list(states)
        else:
            raise BpmConfigError(
                f"find_processes: 'states' must be a state or a list of states, got {states!r}",
                conn_id=self.bpm_conn_id,
            )
        vendor: list[str] = []
        for value in values:
            try:
                state = ProcessState.parse(value)
            except ValueError as exc:
                raise BpmConfigError(f"find_processes: {exc}", conn_id=self.bpm_conn_id) from None
            searched = FILTER_STATES.get(state)
            if searched is not None and searched not in vendor:
                vendor.append(searched)
        if values and not vendor:
            # an empty <states> would not filter at all: every process would match
            raise BpmConfigError(
                f"find_processes: Questetra cannot suspend processes, so no process is ever "
                f"SUSPENDED; states={states!r} matches nothing. Use RUNNING for running processes",
                conn_id=self.bpm_conn_id,
            )
        return vendor

    def cancel_process(self, instance_id: str) -> None:
        self.stop_process(instance_id)

    def _to_task(self, raw: Mapping[str, Any]) -> Task:
        where = Request("POST", WORKITEM_LIST)
        pid = raw.get("processInstanceId")
        if pid is not None:
            self._need_id(where, None, pid, "a workitem's 'processInstanceId'")
        for key in ("nodeName", "allocatedQuserName", "state"):
            self._optional(where, None, raw, key, str, "a workitem")
        return Task(
            id=str(raw.get("id")),
            name=raw.get("nodeName"),
            process_instance_id=str(pid) if pid is not None else None,
            assignee=raw.get("allocatedQuserName"),
            state=raw.get("state"),
            raw=dict(raw),
        )

    def _list_tasks_flow(
        self, *, process_instance_id: str | None = None, name: str | None = None
    ) -> Flow[list[Task]]:
        criteria: dict[str, Any] = {"workitem_states": list(OPEN_WORKITEM_STATES)}
        if process_instance_id is not None:
            criteria["process_instance_id"] = process_instance_id
        text = build_criteria(criteria, root=WORKITEM_ROOT)
        items = yield from self._pages_flow(self._search(WORKITEM_LIST, text), "workitems")
        # the criteria has no task-name condition (only node numbers): filter here
        return [self._to_task(raw) for raw in items if name is None or raw.get("nodeName") == name]

    def claim_task(self, task_id: str, assignee: str | None = None) -> None:
        """Accept an offered task; with ``assignee="quserId:qgroupId"`` force-allocate it instead.

        A task already allocated to this connection's user counts as claimed (claiming twice, or
        a process's first task, which starts allocated to its starter, is not an error).
        """
        wid = self._numeric(task_id, "task id")
        if assignee is None:
            self._accept(wid)
            return
        match = _ASSIGNEE.match(str(assignee))
        if match is None:
            raise BpmConfigError(
                "claim_task: assignee must be 'quserId:qgroupId' (the user's id and the id of the "
                "organization they act for, e.g. '12:3'), or None to accept the offered task; "
                f"got {assignee!r}",
                conn_id=self.bpm_conn_id,
            )
        self.reallocate(wid, match.group(1), match.group(2))

    def unassign_task(self, task_id: str) -> None:
        """Not possible: the Workflow API can accept a task or force-allocate it to a named user
        (``API/PIM/Workitem/reallocate`` needs ``quserId`` and ``qgroupId``), never give it back
        to those it was offered to (DataSpider BPM Workflow API reference, seed 003)."""
        wid = self._numeric(task_id, "task id")
        raise BpmConfigError(
            f"releasing task {wid} is not supported by the Questetra API: it can only accept a task "
            "or reallocate it to a named user (claim_task(task_id, 'quserId:qgroupId'))",
            system=self.system,
            conn_id=self.bpm_conn_id,
        )

    def _accept(self, wid: str) -> None:
        # Accepting first costs one request when the task is offered, the usual case; only a
        # refusal needs the lookup that tells "already mine" from "someone else's".
        where = Request("POST", BATCH_ACCEPT)
        results = self.batch_accept([wid], raise_on_failure=False)
        result: Mapping[str, Any] = next(
            (r for r in results if isinstance(r, Mapping) and str(r.get("workitemId")) == wid), {}
        )
        if result.get("success") is True:
            return
        error = result.get("error") if isinstance(result.get("error"), Mapping) else {}
        details = [describe_error(error)] if error else ["no result for it in the answer"]
        if error.get("type") == "WorkitemDoesNotExist":  # errorCode 40003 (seed 003)
            raise self._error(BpmNotFound, f"task {wid} does not exist", where, details=details)
        # The answer may carry the task (seed 003: "may be absent" on failure).
        entry = result.get("workitem") if isinstance(result.get("workitem"), Mapping) else {}
        state = entry.get("state")
        if state not in ("ENDED", "FAILED") and any(str(w.get("id")) == wid for w in self.list_allocated()):
            return  # already allocated to this user
        if state in ("ENDED", "FAILED"):
            message = f"task {wid} cannot be claimed: it has ended ({state})"
        elif entry.get("allocatedQuserName") or entry.get("allocatedQuserId") is not None:
            holder = entry.get("allocatedQuserName") or f"user {entry.get('allocatedQuserId')}"
            message = f"task {wid} is allocated to {holder!r}, not to this connection's user"
        else:
            message = f"task {wid} cannot be claimed: it is neither offered to nor allocated to this user"
        raise self._error(BpmConflict, message, where, details=details)

    def complete_task(self, task_id: str, variables: Mapping[str, Any] | None = None, **options: Any) -> None:
        """Submit the task's form; options ``title``, ``flow``, ``qgroup_id``, ``save_only``."""
        self._check_options(options, FORM_OPTIONS, "complete_task")
        self.save_form(
            task_id,
            variables or {},
            title=options.get("title"),
            flow=options.get("flow"),
            qgroup_id=options.get("qgroup_id"),
            save_only=bool(options.get("save_only", False)),
        )

    def list_files(
        self, instance_id: str, *, listed: Mapping[str, Any] | None = None
    ) -> Iterator[ProcessFile]:
        """Every uploaded file of every File-type data item, by item number then file id.

        ``listed``: the process's entry from a search (``ProcessInstance.raw``). When its ``data``
        carries File items (the criteria named them, as seed 000's script does), their files are
        taken from there without another request: then only the items the criteria named count.
        """
        carried = listed is not None and _carries_files(listed)
        raw = listed if carried else self.view_process(instance_id)
        where = Request("POST", PROCESS_LIST) if carried else Request("GET", PROCESS_VIEW)
        pid = self._need_id(where, None, raw.get("processInstanceId", instance_id), "'processInstanceId'")
        data = self._need_object(where, None, raw.get("data") or {}, "'data'")
        files: list[tuple[int, int, ProcessFile]] = []
        for key, item in data.items():
            item = self._need_object(where, None, item, f"data item {key!r}")
            if item.get("dataType") != "FILE2" or not item.get("value"):
                continue
            number = _as_int(item.get("processDataDefinitionNumber", key))
            entries = self._need_objects(
                where, None, item["value"], f"the files of data item {key!r}", id_key="id"
            )
            for entry in entries:
                self._optional(where, None, entry, "length", int, f"a file of data item {key!r}")
                for text in ("name", "contentType"):
                    self._optional(where, None, entry, text, str, f"a file of data item {key!r}")
                if not is_id(entry.get("processDataInstanceId", item.get("id"))):
                    raise self._wrong(
                        where, None, f"a file of data item {key!r} has no 'processDataInstanceId'"
                    )
                files.append(
                    (
                        number,
                        _as_int(entry.get("id")),
                        ProcessFile(
                            name=str(entry.get("name")),
                            size=entry.get("length"),
                            content_type=entry.get("contentType"),
                            process_instance_id=pid,
                            ref={
                                "id": entry.get("id"),
                                "processDataInstanceId": entry.get("processDataInstanceId", item.get("id")),
                            },
                            raw=dict(entry),
                            group=item.get("name"),
                        ),
                    )
                )
        files.sort(key=lambda row: (row[0], row[1]))
        return iter([file for _, _, file in files])

    @contextmanager
    def _open_reply(self, file: ProcessFile, *, offset: int = 0) -> Iterator[Reply]:
        file_id, data_id = file.ref.get("id"), file.ref.get("processDataInstanceId")
        if file_id is None or data_id is None:
            raise BpmConfigError(
                f"file {file.name!r} has no Questetra reference (id, processDataInstanceId); "
                "use a ProcessFile from QuestetraHook.list_files",
                conn_id=self.bpm_conn_id,
            )
        with self.download_file(file_id, data_id, offset=offset) as reply:
            yield reply

    # ---- errors -------------------------------------------------------------------------------

    def _server_message(self, reply: Reply) -> str:
        errors = _error_entries(reply)
        if errors:
            types = dict.fromkeys(str(e.get("type") or e.get("errorCode") or "error") for e in errors)
            return ", ".join(types)
        return super()._server_message(reply)

    def _error_details(self, reply: Reply) -> list[str]:
        return [describe_error(error) for error in _error_entries(reply)]


def describe_error(error: Mapping[str, Any]) -> str:
    """``{errorCode, input, type}`` → ``WorkitemDoesNotExist (errorCode 40003, input '58400')``."""
    parts = []
    if error.get("errorCode") not in (None, ""):
        parts.append(f"errorCode {error['errorCode']}")
    if error.get("input") not in (None, ""):
        parts.append(f"input {error['input']!r}")
    text = str(error.get("type") or "error")
    return f"{text} ({', '.join(parts)})" if parts else text


def _error_entries(reply: Reply) -> list[Mapping[str, Any]]:
    try:
        body = parse_json(reply.body)
    except ValueError:  # also JSON nested too deeply to read
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [error for error in errors if isinstance(error, Mapping)]


def _contextless(exc: BpmError) -> bool:
    """Raised by a helper module (criteria, forms) that knows no connection and sent no request."""
    fields = (exc.system, exc.conn_id, exc.method, exc.path, exc.status, exc.server_message)
    return all(value is None for value in fields)


def _accept_failures(ids: Sequence[str], results: Sequence[Any]) -> list[str]:
    failures: list[str] = []
    answered: set[str] = set()
    for result in results:
        if not isinstance(result, Mapping):
            continue
        wid = str(result.get("workitemId"))
        answered.add(wid)
        if result.get("success") is not True:
            error = result.get("error") if isinstance(result.get("error"), Mapping) else {}
            failures.append(f"workitem {wid}: {describe_error(error)}")
    failures.extend(f"workitem {wid}: no result in the answer" for wid in ids if wid not in answered)
    return failures


# Per paged list: the key of each entry's id (checked on every entry) and what identifies an entry
# for the page guard (a start event is an app and a node number).
PAGE_IDS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "processInstances": ("processInstanceId", ("processInstanceId",)),
    "workitems": ("id", ("id",)),
    "startableActivities": (None, ("processModelInfoId", "nodeNumber")),
}


def _entry_id(entry: Mapping[str, Any], key: str) -> str:
    return "/".join(str(entry.get(name)) for name in PAGE_IDS[key][1])


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _newest_first(raw: Mapping[str, Any]) -> tuple[float, int]:
    started = parse_api_datetime(raw.get("processInstanceStartDatetime"))
    return (-(started.timestamp() if started else 0.0), -_as_int(raw.get("processInstanceId")))


def _carries_files(entry: Mapping[str, Any]) -> bool:
    """Whether a search entry's ``data`` includes File items (only named items are returned)."""
    data = entry.get("data")
    return isinstance(data, Mapping) and any(
        isinstance(item, Mapping) and item.get("dataType") == "FILE2" for item in data.values()
    )


# The easternmost civil time zone offset (zones span UTC-12 to UTC+14).
WIDEST_EAST_OFFSET = timedelta(hours=14)


def unclaimed_window_start(started_after: datetime, tz: tzinfo | None) -> datetime:
    """The ``start-date-from`` bound for :meth:`QuestetraHook.find_unclaimed_starts`.

    The server reads the bound's wall-clock text in the API user's zone. With the ``timezone``
    extra the aware instant is sent (converted to that zone by the criteria writer). Without it
    the zone is unknown, so the bound is the UTC wall clock minus 14 hours, naive: read in any
    zone from UTC-12 to UTC+14 it falls at or before ``started_after`` (at UTC-12 it is 2 hours
    early), so the lost start is inside the window; the hook then keeps only what started at or
    after ``started_after`` by the answers' own offsets.
    """
    if tz is not None:
        return started_after
    utc_wall = started_after.astimezone(UTC).replace(tzinfo=None)
    return utc_wall - WIDEST_EAST_OFFSET
