"""Questetra BPM Suite / DataSpider BPM Workflow API (``/API/PE``, ``/API/OR``, ``/API/PIM``).

Parameters come from the query string or a form body (urlencoded or multipart), lists as
repeated names. Every request needs Basic (e-mail + API password) or Bearer credentials; a
failure is a bare 401 without ``WWW-Authenticate``, as the vendor answers. JSON errors are
``{"errors": [{"errorCode", "input", "type"}]}``; ``Workitem/Form/save`` reports its failures
in a 200 ``<result success="false">`` like the vendor.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from airflow_bpm_provider.testing.dialects import questetra_csv
from airflow_bpm_provider.testing.dialects.questetra_criteria import (
    PROCESS_ROOT,
    WORKITEM_ROOT,
    Criteria,
    CriteriaError,
    check_values,
    parse_criteria,
    process_matches,
    sort_processes,
    sort_workitems,
    workitem_matches,
)
from airflow_bpm_provider.testing.dialects.questetra_entries import (
    QuestetraState,
    activity_entry,
    data_map,
    process_entry,
    state_for,
    workitem_entry,
)
from airflow_bpm_provider.testing.dialects.questetra_form import (
    FormInput,
    form_xml,
    read_form_input,
    result_xml,
)
from airflow_bpm_provider.testing.downloads import file_response
from airflow_bpm_provider.testing.engine import (
    FAILED,
    SUSPENDED,
    TASK_CLAIMED,
    TASK_OPEN,
    Engine,
    EngineError,
    Instance,
    TaskInstance,
    now,
)
from airflow_bpm_provider.testing.faults import FaultPlan

ANY_METHOD, POST_ONLY = ("GET", "POST"), ("POST",)
MAX_START, MAX_LIMIT = 2147483647, 1000
XML_TYPE = "text/xml; charset=UTF-8"

# Only 40003 / WorkitemDoesNotExist is documented; the other codes are the emulator's own.
ERROR_CODES = {
    "InvalidParameter": "40001",
    "ProcessInstanceDoesNotExist": "40002",
    "WorkitemDoesNotExist": "40003",
    "ProcessModelDoesNotExist": "40004",
    "FileDoesNotExist": "40005",
    "InvalidCriteria": "40006",
    "WorkitemIsNotOffered": "40007",
    "IllegalState": "40008",
    "Forbidden": "40300",
    "NotFound": "40400",
}


class ApiError(Exception):
    def __init__(self, status: int, error_type: str, input_name: str | None = None) -> None:
        super().__init__(f"{status} {error_type} ({input_name})")
        self.status, self.error_type, self.input_name = status, error_type, input_name

    def response(self) -> Response:
        error = {"errorCode": ERROR_CODES[self.error_type], "input": self.input_name, "type": self.error_type}
        return JSONResponse({"errors": [error]}, status_code=self.status)


def _from_engine(exc: EngineError) -> ApiError:
    if exc.kind == "not_found":
        return ApiError(404, "NotFound")
    if exc.kind == "forbidden":
        return ApiError(403, "Forbidden")
    if exc.kind == "conflict":
        return ApiError(400, "IllegalState")
    return ApiError(400, "InvalidParameter", next(iter(exc.details), None))


class Params:
    """Query-string and form parameters together, in arrival order."""

    def __init__(self, items: list[tuple[str, Any]]) -> None:
        self.items = items

    @classmethod
    async def read(cls, request: Request) -> Params:
        items: list[tuple[str, Any]] = list(request.query_params.multi_items())
        content_type = request.headers.get("content-type", "")
        if "application/x-www-form-urlencoded" in content_type or "multipart/form-data" in content_type:
            form = await request.form()
            items.extend(form.multi_items())
        return cls(items)

    def get(self, name: str) -> str | None:
        return next((v for k, v in self.items if k == name and isinstance(v, str)), None)

    def getlist(self, name: str) -> list[str]:
        return [v for k, v in self.items if k == name and isinstance(v, str)]

    def integer(
        self, name: str, *, default: int | None = None, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        text = self.get(name)
        if text is None or text.strip() == "":
            if default is None:
                raise ApiError(400, "InvalidParameter", name)
            return default
        return _integer(text, name, minimum, maximum)

    def integers(self, name: str) -> list[int]:
        values = [_integer(text, name, None, None) for text in self.getlist(name) if text.strip()]
        if not values:
            raise ApiError(400, "InvalidParameter", name)
        return values


def _integer(text: str, name: str, minimum: int | None, maximum: int | None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ApiError(400, "InvalidParameter", name) from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ApiError(400, "InvalidParameter", name)
    return value


@dataclass
class Call:
    request: Request
    user: str
    params: Params


def authenticate(engine: Engine, request: Request) -> str | None:
    """The login of a valid Basic or Bearer credential, else None."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return engine.user_for_token(credentials.strip())
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    login, separator, password = decoded.partition(":")
    return login if separator and engine.check_password(login, password) else None


def content_disposition(name: str) -> str:
    """``attachment; filename="..."`` plus RFC 5987 ``filename*`` when the name is not plain ASCII."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name) or "file"
    if fallback == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _page(items: list[Any], params: Params) -> list[Any]:
    start = params.integer("start", default=0, minimum=0, maximum=MAX_START)
    limit = params.integer("limit", default=1, minimum=0, maximum=MAX_LIMIT)
    return items[start : start + limit]


class QuestetraApi:
    """The endpoints; each takes a :class:`Call` and returns a response."""

    def __init__(self, engine: Engine, faults: FaultPlan) -> None:
        self.engine = engine
        self.faults = faults
        self.state: QuestetraState = state_for(engine)

    def routes(self) -> list[tuple[str, tuple[str, ...], Callable[[Call], Response]]]:
        return [
            ("/API/PE/ProcessModel/listStartable", ANY_METHOD, self.list_startable),
            ("/API/PE/ProcessInstance/start", POST_ONLY, self.start),
            ("/API/PE/Workitem/listAllocated", ANY_METHOD, self.list_allocated),
            ("/API/PE/Workitem/listOffered", ANY_METHOD, self.list_offered),
            ("/API/PE/Workitem/batchAccept", POST_ONLY, self.batch_accept),
            ("/API/PE/Workitem/Form/viewXml", ANY_METHOD, self.view_form),
            ("/API/PE/Workitem/Form/save", POST_ONLY, self.save_form),
            ("/API/OR/ProcessInstance/list", ANY_METHOD, self.list_processes),
            ("/API/OR/ProcessInstance/listCsv", ANY_METHOD, partial(self.list_processes_csv, utf16=False)),
            (
                "/API/OR/ProcessInstance/listCsvUtf16",
                ANY_METHOD,
                partial(self.list_processes_csv, utf16=True),
            ),
            ("/API/OR/ProcessInstance/view", ANY_METHOD, self.view_process),
            ("/API/OR/ProcessInstance/File/download", ANY_METHOD, self.download),
            ("/API/OR/ProcessInstance/stop", POST_ONLY, self.stop),
            ("/API/OR/ProcessInstance/delete", POST_ONLY, self.delete),
            ("/API/OR/Workitem/list", ANY_METHOD, self.list_workitems),
            ("/API/OR/Workitem/listCsv", ANY_METHOD, partial(self.list_workitems_csv, utf16=False)),
            ("/API/OR/Workitem/listCsvUtf16", ANY_METHOD, partial(self.list_workitems_csv, utf16=True)),
            ("/API/OR/Workitem/Star/add", ANY_METHOD, partial(self.star, starred=True)),
            ("/API/OR/Workitem/Star/remove", ANY_METHOD, partial(self.star, starred=False)),
            ("/API/PIM/Workitem/reallocate", POST_ONLY, self.reallocate),
            ("/API/User/Quser/self", ANY_METHOD, self.self_user),
        ]

    # ---- lookups ------------------------------------------------------------------------------

    def _task(self, call: Call, name: str = "workitemId") -> TaskInstance:
        task = self.engine.tasks.get(call.params.integer(name))
        if task is None:
            raise ApiError(404, "WorkitemDoesNotExist", name)
        return task

    def _instance(self, call: Call, name: str = "processInstanceId") -> Instance:
        instance = self.engine.instances.get(call.params.integer(name))
        if instance is None:
            raise ApiError(404, "ProcessInstanceDoesNotExist", name)
        return instance

    def _criteria(self, call: Call, root: str) -> Criteria:
        try:
            criteria = parse_criteria(call.params.get("criteria"), root)
            check_values(criteria)
        except CriteriaError:
            raise ApiError(400, "InvalidCriteria", "criteria") from None
        return criteria

    def _workitem(self, task: TaskInstance, call: Call, data: dict[str, Any] | None = None) -> dict[str, Any]:
        return workitem_entry(self.state, task, me=call.user, data=data)

    # ---- PE: starting and task lists ------------------------------------------------------------

    def list_startable(self, call: Call) -> Response:
        category, query = call.params.get("category"), call.params.get("query")
        models = [
            d
            for d in self.state.startable()
            if (not category or d.category == category) and (not query or query in d.name)
        ]
        entries = [activity_entry(self.state, d) for d in _page(models, call.params)]
        return JSONResponse({"count": len(models), "startableActivities": entries})

    def start(self, call: Call) -> Response:
        params = call.params
        if params.get("processModelInfoId") is None and params.get("activityId") is not None:
            # the deprecated activityId names the model version and its first node
            activity = params.integer("activityId")
            definition = self.engine.definitions.get(activity // 1000)
            if definition is None or not definition.tasks or self.state.activity_id(definition) != activity:
                raise ApiError(404, "ProcessModelDoesNotExist", "activityId")
            info_id, node = self.state.info_id(definition), definition.tasks[0].node_number
        else:
            info_id, node = params.integer("processModelInfoId"), params.integer("nodeNumber")
        candidates = [d for d in self.state.startable() if self.state.info_id(d) == info_id]
        if not candidates:
            raise ApiError(404, "ProcessModelDoesNotExist", "processModelInfoId")
        definition = candidates[0]
        if definition.tasks[0].node_number != node:
            raise ApiError(400, "InvalidParameter", "nodeNumber")
        instance = self.engine.start(definition, user=call.user)
        first = self.engine.open_tasks(instance.id)[0]
        self.engine.claim(first, call.user)
        self.state.allocated_directly.add(first.id)
        return JSONResponse({"workitem": self._workitem(first, call)})

    def list_allocated(self, call: Call) -> Response:
        tasks = [t for t in self.engine.open_tasks() if t.state == TASK_CLAIMED and t.assignee == call.user]
        return JSONResponse({"count": len(tasks), "workitems": [self._workitem(t, call) for t in tasks]})

    def list_offered(self, call: Call) -> Response:
        tasks = [t for t in self.engine.open_tasks() if t.state == TASK_OPEN]
        return JSONResponse({"count": len(tasks), "workitems": [self._workitem(t, call) for t in tasks]})

    def batch_accept(self, call: Call) -> Response:
        results: list[dict[str, Any]] = []
        for workitem_id in call.params.integers("workitemIds"):
            task = self.engine.tasks.get(workitem_id)
            if task is None or task.state != TASK_OPEN:
                problem = "WorkitemDoesNotExist" if task is None else "WorkitemIsNotOffered"
                error = {"errorCode": ERROR_CODES[problem], "type": problem}
                result = {"success": False, "workitemId": workitem_id, "error": error}
                if task is not None:
                    # the vendor says the task "may be absent" from a failed result: here it is present
                    result["workitem"] = self._workitem(task, call)
                results.append(result)
                continue
            self.engine.claim(task, call.user)
            results.append(
                {"success": True, "workitemId": workitem_id, "workitem": self._workitem(task, call)}
            )
        return JSONResponse({"results": results})

    # ---- PE: forms ------------------------------------------------------------------------------

    def view_form(self, call: Call) -> Response:
        task = self._task(call)
        if not task.open:
            raise ApiError(400, "IllegalState", "workitemId")
        if task.assignee not in (None, call.user):
            raise ApiError(403, "Forbidden", "workitemId")
        self.state.read.add(task.id)
        return Response(form_xml(self.state, task), media_type=XML_TYPE)

    def save_form(self, call: Call) -> Response:
        def failed(key: str, detail: str) -> Response:
            return Response(result_xml(errors={key: detail}), media_type=XML_TYPE)

        params = call.params
        try:
            task = self._task(call)
        except ApiError as exc:
            detail = "The task does not exist." if exc.status == 404 else "workitemId must be a task id."
            return failed("workitemId", detail)
        instance = task.instance
        if not task.open:
            return failed("workitemId", "The task has already ended.")
        if task.state != TASK_CLAIMED or task.assignee != call.user:
            return failed("workitemId", "The task is not allocated to you; accept it first.")
        if instance.state == SUSPENDED:
            return failed("workitemId", "The process is suspended.")
        save_only = (params.get("saveOnly") or "false").strip().lower() == "true"
        form = read_form_input(self.state, task, params.items, save_only=save_only)
        if form.errors:
            return Response(result_xml(validation_errors=form.errors), media_type=XML_TYPE)
        choice, group, errors = self._flow_and_group(task, params, save_only=save_only)
        if errors:
            return Response(result_xml(errors=errors), media_type=XML_TYPE)
        try:
            self._apply_form(task, call, form, params.get("title"), group, choice, save_only=save_only)
        except EngineError as exc:
            # the engine's own checks, reported the vendor's way rather than as a JSON error
            if exc.kind == "invalid" and exc.details:
                return Response(result_xml(validation_errors=exc.details), media_type=XML_TYPE)
            return failed("workitemId", exc.message)
        return Response(result_xml(), media_type=XML_TYPE)

    def _apply_form(
        self,
        task: TaskInstance,
        call: Call,
        form: FormInput,
        title: str | None,
        group: int | None,
        choice: int | None,
        *,
        save_only: bool,
    ) -> None:
        instance = task.instance
        if title is not None:
            instance.title = title
        if form.values:
            self.engine.set_values(instance, form.values)
        for number, uploads in form.uploads.items():
            for upload in uploads:
                self.engine.add_file(
                    instance, number, upload.name, content=upload.content, content_type=upload.content_type
                )
        if group is not None:
            self.state.task_groups[task.id] = group
        if save_only:
            self.state.started.setdefault(task.id, now())
        else:
            self.engine.complete(task, user=call.user, choice=choice)

    @staticmethod
    def _flow_and_group(
        task: TaskInstance, params: Params, *, save_only: bool
    ) -> tuple[int | None, int | None, dict[str, str]]:
        errors: dict[str, str] = {}
        choice = group = None
        choices = {c.id for c in task.definition.choices}
        flow = (params.get("flow") or "").strip()
        if flow:
            if not flow.isdigit() or (choices and int(flow) not in choices):
                errors["flow"] = (
                    f"{flow!r} is not a flow of this task ({', '.join(map(str, sorted(choices)))})."
                )
            else:
                choice = int(flow)
        elif choices and not save_only:
            errors["flow"] = f"Choose a flow: {', '.join(map(str, sorted(choices)))}."
        groups = {number for number, _ in task.definition.candidate_groups}
        qgroup = (params.get("qgroupId") or "").strip()
        if qgroup:
            if not qgroup.isdigit() or (groups and int(qgroup) not in groups):
                errors["qgroupId"] = f"{qgroup!r} is not an executing role of this task."
            else:
                group = int(qgroup)
        elif len(groups) > 1 and not save_only:
            errors["qgroupId"] = f"Choose the executing role: {', '.join(map(str, sorted(groups)))}."
        return choice, group, errors

    # ---- OR: searches -------------------------------------------------------------------------

    def _processes(self, call: Call) -> tuple[Criteria, list[Instance]]:
        criteria = self._criteria(call, PROCESS_ROOT)
        found = [
            i for i in self.engine.instances.values() if process_matches(self.state, criteria, i, call.user)
        ]
        return criteria, sort_processes(criteria, found)

    def list_processes(self, call: Call) -> Response:
        criteria, found = self._processes(call)
        entries = [
            process_entry(self.state, i, data_numbers=criteria.data_numbers)
            for i in _page(found, call.params)
        ]
        return JSONResponse({"count": len(found), "processInstances": entries})

    def list_processes_csv(self, call: Call, *, utf16: bool) -> Response:
        criteria, found = self._processes(call)
        table = questetra_csv.process_table(self.state, _page(found, call.params), criteria.data_numbers)
        return _csv(table, utf16=utf16)

    def _workitems(self, call: Call) -> tuple[Criteria, list[TaskInstance]]:
        criteria = self._criteria(call, WORKITEM_ROOT)
        found = [
            t for t in self.engine.tasks.values() if workitem_matches(self.state, criteria, t, call.user)
        ]
        return criteria, sort_workitems(self.state, criteria, found)

    def list_workitems(self, call: Call) -> Response:
        criteria, found = self._workitems(call)
        numbers = criteria.data_numbers
        entries = [
            self._workitem(t, call, None if numbers is None else data_map(self.state, t.instance, numbers))
            for t in _page(found, call.params)
        ]
        return JSONResponse({"count": len(found), "workitems": entries})

    def list_workitems_csv(self, call: Call, *, utf16: bool) -> Response:
        criteria, found = self._workitems(call)
        table = questetra_csv.workitem_table(self.state, _page(found, call.params), criteria.data_numbers)
        return _csv(table, utf16=utf16)

    # ---- OR: one process, its files -------------------------------------------------------------

    def view_process(self, call: Call) -> Response:
        instance = self._instance(call)
        # items a process carries beyond its model (set through another dialect) come last
        numbers = list(dict.fromkeys([*(d.number for d in instance.definition.data), *sorted(instance.data)]))
        return JSONResponse({"processInstance": process_entry(self.state, instance, data_numbers=numbers)})

    def download(self, call: Call) -> Response:
        file_id = call.params.integer("id")
        data_instance_id = call.params.integer("processDataInstanceId")
        found = self.engine.files.get(file_id)
        if found is None:
            raise ApiError(404, "FileDoesNotExist", "id")
        _, item, stored = found
        if item.instance_data_id != data_instance_id:
            raise ApiError(404, "FileDoesNotExist", "processDataInstanceId")
        headers = {"Content-Disposition": content_disposition(stored.name)}
        return file_response(call.request, stored, self.faults, headers=headers)

    # ---- OR / PIM: changes ------------------------------------------------------------------------

    def stop(self, call: Call) -> Response:
        instance = self._instance(call)
        if instance.ended:
            raise ApiError(400, "IllegalState", "processInstanceId")
        self.engine.end(instance, FAILED, reason="stopped through the Workflow API")
        return Response(status_code=200)

    def delete(self, call: Call) -> Response:
        self.engine.delete(self._instance(call))
        return Response(status_code=200)

    def star(self, call: Call, *, starred: bool) -> Response:
        task = self._task(call)
        me = self.state.quser_id(call.user)
        if starred:
            task.instance.starred.add(me)
        else:
            task.instance.starred.discard(me)
        return Response(status_code=200)

    def reallocate(self, call: Call) -> Response:
        task = self._task(call)
        login = self.state.login_for(call.params.integer("quserId"))
        if login is None:
            raise ApiError(400, "InvalidParameter", "quserId")
        group = call.params.integer("qgroupId")
        if not task.open:
            raise ApiError(400, "IllegalState", "workitemId")
        self.engine.claim(task, login, force=True)
        self.state.task_groups[task.id] = group
        return JSONResponse({"workitem": self._workitem(task, call)})

    def self_user(self, call: Call) -> Response:
        return JSONResponse({"quser": self.state.quser(call.user)})


def _csv(table: list[list[Any]], *, utf16: bool) -> Response:
    charset = "UTF-16" if utf16 else "UTF-8"
    return Response(questetra_csv.render(table, utf16=utf16), media_type=f"text/csv; charset={charset}")


def _endpoint(engine: Engine, handler: Callable[[Call], Response]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        user = authenticate(engine, request)
        if user is None:
            return PlainTextResponse("Authentication failed.", status_code=401)
        try:
            params = await Params.read(request)
            with engine.lock:
                return handler(Call(request, user, params))
        except ApiError as exc:
            return exc.response()
        except EngineError as exc:
            return _from_engine(exc).response()

    return endpoint


def router(engine: Engine, faults: FaultPlan) -> APIRouter:
    api = APIRouter()
    for path, methods, handler in QuestetraApi(engine, faults).routes():
        api.add_api_route(path, _endpoint(engine, handler), methods=list(methods), include_in_schema=False)
    return api
