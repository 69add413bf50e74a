"""Bonita: the REST API (``/API/bpm/...``), the login/logout services and the document servlets.

Mounted under ``/bonita``. Behaviour emulated here (see :mod:`.bonita_entries` for the mapping of
processes, cases, tasks, variables and documents onto the engine):

- ``POST /loginservice`` (form ``username``, ``password``, ``redirect``, ``tenant``) answers 204
  with the ``JSESSIONID`` and ``X-Bonita-API-Token`` cookies (and the token as a header), or 401;
  every other call needs the session cookie (or ``Authorization: Bearer`` with an engine token),
  and every POST/PUT/DELETE also the token as the ``X-Bonita-API-Token`` header, else 401;
  ``GET /logoutservice`` ends the session;
- searches need ``p`` and ``c``, filter with repeated ``f=name=value``, order with ``o`` and
  answer the total in ``Content-Range`` (``start-end/total``);
- a case that ended is gone from ``/API/bpm/case`` (404) and found in ``/API/bpm/archivedCase``;
- contract violations answer 400 ``{exception, message, explanations}``;
- every user sees every process, case and task (Bonita's actor mapping is not emulated).
"""

from __future__ import annotations

import json
import mimetypes
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from airflow_bpm_provider.testing.dialects.bonita_entries import (
    JAVA_TYPES,
    VERSION,
    ApiError,
    BonitaState,
    Upload,
    add_document_version,
    archived_case_json,
    as_datetime,
    case_json,
    contract_json,
    contract_problems,
    convert_update,
    document_item,
    document_json,
    documents_of,
    java_type,
    process_json,
    search_index_value,
    state_for,
    task_json,
    timestamp,
    variable_json,
    variable_text,
)
from airflow_bpm_provider.testing.downloads import file_response
from airflow_bpm_provider.testing.engine import (
    CANCELLED,
    DataDef,
    DataValue,
    Engine,
    EngineError,
    Instance,
    ProcessDefinition,
    StoredFile,
    TaskInstance,
)
from airflow_bpm_provider.testing.faults import FaultPlan

API = "/API/bpm"
TOKEN = "X-Bonita-API-Token"
CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})
ENGINE_STATUS = {"not_found": 404, "conflict": 409, "invalid": 400, "forbidden": 403}
CONTRACT_VIOLATION = "class org.bonitasoft.engine.bpm.contract.ContractViolationException"


def router(engine: Engine, faults: FaultPlan) -> APIRouter:
    api = APIRouter()
    bonita = _Bonita(engine, faults, state_for(engine))

    # ---- session --------------------------------------------------------------------------------

    @api.post("/loginservice")
    async def login(request: Request) -> Response:
        return await bonita.login(request)

    @api.get("/logoutservice")
    async def logout(request: Request) -> Response:
        return bonita.logout(request)

    @api.get("/API/system/session/{session_id}")
    async def session(request: Request, session_id: str) -> Response:
        return await bonita.call(request, bonita.session_info)

    # ---- processes and cases --------------------------------------------------------------------

    @api.get(f"{API}/process")
    async def search_processes(request: Request) -> Response:
        return await bonita.call(request, bonita.search_processes)

    @api.get(f"{API}/process/{{pid}}")
    async def get_process(request: Request, pid: str) -> Response:
        return await bonita.call(request, lambda r, u: process_json(bonita.definition(pid)))

    @api.get(f"{API}/process/{{pid}}/contract")
    async def process_contract(request: Request, pid: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.process_contract(pid))

    @api.post(f"{API}/process/{{pid}}/instantiation")
    async def instantiate(request: Request, pid: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.instantiate(r, u, pid))

    @api.get(f"{API}/case")
    async def search_cases(request: Request) -> Response:
        return await bonita.call(request, bonita.search_cases)

    @api.post(f"{API}/case")
    async def create_case(request: Request) -> Response:
        return await bonita.call(request, bonita.create_case)

    @api.get(f"{API}/case/{{cid}}")
    async def get_case(request: Request, cid: str) -> Response:
        return await bonita.call(
            request,
            lambda r, u: case_json(engine, bonita.state, bonita.live(cid), r.query_params.getlist("d")),
        )

    @api.put(f"{API}/case/{{cid}}")
    async def update_case(request: Request, cid: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.update_case(r, cid))

    @api.delete(f"{API}/case/{{cid}}")
    async def delete_case(request: Request, cid: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.delete_case(cid))

    @api.get(f"{API}/archivedCase")
    async def search_archived_cases(request: Request) -> Response:
        return await bonita.call(request, bonita.search_archived_cases)

    @api.get(f"{API}/archivedCase/{{aid}}")
    async def get_archived_case(request: Request, aid: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.archived_case(r, aid))

    # ---- tasks ----------------------------------------------------------------------------------

    @api.get(f"{API}/humanTask")
    async def search_tasks(request: Request) -> Response:
        return await bonita.call(request, bonita.search_tasks)

    @api.get(f"{API}/humanTask/{{tid}}")
    async def get_task(request: Request, tid: str) -> Response:
        return await bonita.call(request, lambda r, u: task_json(engine, bonita.state, bonita.open_task(tid)))

    @api.put(f"{API}/humanTask/{{tid}}")
    async def update_task(request: Request, tid: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.assign(r, tid))

    @api.get(f"{API}/userTask/{{tid}}/contract")
    async def task_contract(request: Request, tid: str) -> Response:
        return await bonita.call(
            request, lambda r, u: contract_json(bonita.task_inputs(bonita.open_task(tid)))
        )

    @api.post(f"{API}/userTask/{{tid}}/execution")
    async def execute(request: Request, tid: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.execute(r, u, tid))

    # ---- variables ------------------------------------------------------------------------------

    @api.get(f"{API}/caseVariable")
    async def search_variables(request: Request) -> Response:
        return await bonita.call(request, lambda r, u: bonita.search_variables(r, archived=False))

    @api.get(f"{API}/caseVariable/{{cid}}/{{name}}")
    async def get_variable(request: Request, cid: str, name: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.case_variable(cid, name, archived=False))

    @api.put(f"{API}/caseVariable/{{cid}}/{{name}}")
    async def update_variable(request: Request, cid: str, name: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.update_variable(r, cid, name))

    @api.get(f"{API}/archivedCaseVariable")
    async def search_archived_variables(request: Request) -> Response:
        return await bonita.call(request, lambda r, u: bonita.search_variables(r, archived=True))

    @api.get(f"{API}/archivedCaseVariable/{{cid}}/{{name}}")
    async def get_archived_variable(request: Request, cid: str, name: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.case_variable(cid, name, archived=True))

    @api.get(f"{API}/activityVariable/{{tid}}/{{name}}")
    async def activity_variable(request: Request, tid: str, name: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.activity_variable(tid, name, archived=False))

    @api.get(f"{API}/archivedActivityVariable/{{tid}}/{{name}}")
    async def archived_activity_variable(request: Request, tid: str, name: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.activity_variable(tid, name, archived=True))

    # ---- documents ------------------------------------------------------------------------------

    @api.get(f"{API}/caseDocument")
    async def search_documents(request: Request) -> Response:
        return await bonita.call(request, lambda r, u: bonita.search_documents(r, archived=False))

    @api.post(f"{API}/caseDocument")
    async def add_document(request: Request) -> Response:
        return await bonita.call(request, bonita.add_document)

    @api.get(f"{API}/caseDocument/{{did}}")
    async def get_document(request: Request, did: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.live_document_json(did))

    @api.put(f"{API}/caseDocument/{{did}}")
    async def update_document(request: Request, did: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.update_document(r, u, did))

    @api.delete(f"{API}/caseDocument/{{did}}")
    async def delete_document(request: Request, did: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.delete_document(did))

    @api.get(f"{API}/archivedCaseDocument")
    async def search_archived_documents(request: Request) -> Response:
        return await bonita.call(request, lambda r, u: bonita.search_documents(r, archived=True))

    @api.delete(f"{API}/archivedCaseDocument/{{aid}}")
    async def delete_archived_content(request: Request, aid: str) -> Response:
        return await bonita.call(request, lambda r, u: bonita.delete_archived_content(aid))

    @api.post("/API/formFileUpload")
    async def upload(request: Request) -> Response:
        return await bonita.call(request, bonita.upload)

    @api.get("/portal/documentDownload")
    async def download(request: Request) -> Response:
        return await bonita.call(request, bonita.download)

    return api


class _Bonita:
    def __init__(self, engine: Engine, faults: FaultPlan, state: BonitaState) -> None:
        self.engine = engine
        self.faults = faults
        self.state = state

    # ---- plumbing ---------------------------------------------------------------------------------

    async def call(self, request: Request, handler: Callable[[Request, str], Any]) -> Response:
        """Authenticate, read the JSON body once, run ``handler`` and turn errors into Bonita's JSON."""
        try:
            login = self.user(request)
            if request.headers.get("content-type", "").startswith("application/json"):
                raw = await request.body()
                try:
                    request.state.json = json.loads(raw or b"null")
                except ValueError:
                    raise ApiError(400, "the body is not valid JSON") from None
            elif request.headers.get("content-type", "").startswith("multipart/form-data"):
                request.state.form = await request.form()
            result = handler(request, login)
            if hasattr(result, "__await__"):
                result = await result
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        except EngineError as exc:
            explanations = [f"{key}: {value}" for key, value in exc.details.items()]
            error = ApiError(ENGINE_STATUS.get(exc.kind, 500), exc.message, explanations=explanations)
            return JSONResponse(error.body(), status_code=error.status)
        if isinstance(result, Response):
            return result
        if result is None:
            return Response(status_code=200)
        return JSONResponse(result)

    def user(self, request: Request) -> str:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            lookup = getattr(self.engine, "user_for_token", None)
            login = lookup(auth[7:].strip()) if lookup is not None else None
            if login is None:
                raise ApiError(401, "the bearer token is not valid")
            return login
        session = self.state.sessions.get(request.cookies.get("JSESSIONID", ""))
        if session is None:
            raise ApiError(401, "no valid session: log in with /loginservice first")
        if request.method in CHANGING and self.state.csrf and request.headers.get(TOKEN) != session.token:
            raise ApiError(401, f"the {TOKEN} header is missing or does not match the session's token")
        return session.login

    @staticmethod
    def body(request: Request) -> Any:
        return getattr(request.state, "json", None)

    def body_object(self, request: Request) -> dict[str, Any]:
        body = self.body(request)
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        return body

    @staticmethod
    def filters(request: Request) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in request.query_params.getlist("f"):
            name, sep, value = item.partition("=")
            if not sep:
                raise ApiError(400, f"filter {item!r} is not name=value")
            out[name] = value
        return out

    def page(self, request: Request, items: list[Any], to_json: Callable[[Any], dict[str, Any]]) -> Response:
        try:
            p = int(request.query_params["p"])
            c = int(request.query_params["c"])
        except (KeyError, ValueError):
            raise ApiError(
                400, "the parameters p (page index) and c (page size) are mandatory integers"
            ) from None
        if p < 0 or c < 1:
            raise ApiError(400, "p must be >= 0 and c >= 1")
        order = request.query_params.get("o")
        start = p * c
        if order:  # sorting needs every row's JSON; without an order only the page is rendered
            rows = [to_json(item) for item in items]
            attribute, _, direction = order.partition(" ")
            rows.sort(
                key=lambda row: _sort_key(row.get(attribute)), reverse=direction.strip().upper() == "DESC"
            )
            chunk = rows[start : start + c]
        else:
            rows = items
            chunk = [to_json(item) for item in items[start : start + c]]
        end = start + len(chunk) - 1 if chunk else start
        return JSONResponse(chunk, headers={"Content-Range": f"{start}-{end}/{len(rows)}"})

    # ---- session --------------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        form = await request.form()
        username, password = form.get("username"), form.get("password")
        if not self.engine.check_password(
            str(username) if username is not None else None, str(password) if password is not None else None
        ):
            return JSONResponse(
                ApiError(401, "Authentication failed: unknown user or wrong password").body(), status_code=401
            )
        session_id, session = self.state.open_session(str(username))
        path = request.url.path.rsplit("/loginservice", 1)[0] or "/"
        redirect = str(form.get("redirect", "true")).lower() != "false"
        response = Response(status_code=302 if redirect else 204, headers={TOKEN: session.token})
        if redirect:
            response.headers["Location"] = f"{path}/apps/"
        response.set_cookie("JSESSIONID", session_id, path=path, httponly=True, samesite="lax")
        response.set_cookie(TOKEN, session.token, path=path, samesite="lax")
        return response

    def logout(self, request: Request) -> Response:
        self.state.sessions.pop(request.cookies.get("JSESSIONID", ""), None)
        path = request.url.path.rsplit("/logoutservice", 1)[0] or "/"
        response = Response(status_code=200)
        response.delete_cookie("JSESSIONID", path=path)
        response.delete_cookie(TOKEN, path=path)
        return response

    def session_info(self, request: Request, login: str) -> dict[str, Any]:
        """Session.yaml."""
        return {
            "user_id": self.state.user_id(self.engine, login),
            "user_name": login,
            "session_id": request.cookies.get("JSESSIONID", ""),
            "conf": "[]",
            "is_technical_user": "false",
            "is_guest_user": "false",
            "version": VERSION,
            "copyright": "Bonitasoft © 2025 (emulated)",
        }

    # ---- lookups --------------------------------------------------------------------------------

    def definition(self, pid: str) -> ProcessDefinition:
        try:
            return self.engine.definition(int(pid))
        except (EngineError, ValueError):
            raise ApiError(404, f"no process definition with id {pid}") from None

    def startable(self, pid: str) -> ProcessDefinition:
        definition = self.definition(pid)
        if not definition.enabled:
            raise ApiError(
                400,
                f"process {definition.key} {definition.version}.0 is disabled",
                exception="org.bonitasoft.engine.bpm.process.ProcessActivationException",
            )
        return definition

    def instance(self, cid: str) -> Instance:
        try:
            return self.engine.instance(int(cid))
        except (EngineError, ValueError):
            raise ApiError(404, f"no case with id {cid}") from None

    def live(self, cid: str) -> Instance:
        instance = self.instance(cid)
        if instance.ended:
            raise ApiError(404, f"no case with id {cid}: it has ended and is archived")
        return instance

    def open_task(self, tid: str) -> TaskInstance:
        try:
            task = self.engine.task(int(tid))
        except (EngineError, ValueError):
            raise ApiError(404, f"no task with id {tid}") from None
        if not task.open:
            raise ApiError(404, f"no task with id {tid}: it is archived")
        return task

    def _variable(self, instance: Instance, name: str) -> DataValue:
        for item in instance.data.values():
            if item.definition.name == name and item.definition.type != "FILE":
                return item
        raise ApiError(404, f"case {instance.id} has no variable {name!r}")

    # ---- processes --------------------------------------------------------------------------------

    def search_processes(self, request: Request, login: str) -> Response:
        f = self.filters(request)
        text = (request.query_params.get("s") or "").lower()
        items = [
            d
            for d in sorted(self.engine.definitions.values(), key=lambda d: d.id)
            if _match(f, "name", d.key)
            and _match(f, "displayName", d.name)
            and _match(f, "version", f"{d.version}.0")
            and _match(f, "activationState", "ENABLED" if d.enabled else "DISABLED")
            and _match(f, "processId", str(d.id))
            and (not text or any(text in v.lower() for v in (d.key, d.name, f"{d.version}.0")))
        ]
        return self.page(request, items, process_json)

    def process_contract(self, pid: str) -> dict[str, Any]:
        definition = self.definition(pid)
        inputs = self.state.contract(definition)
        return contract_json(inputs if inputs is not None else [])

    def _start_inputs(self, definition: ProcessDefinition, given: Mapping[str, Any]) -> list[DataDef]:
        contract = self.state.contract(definition)
        if contract is not None:
            return contract
        # No contract registered: whatever matches a data item by name is taken, nothing is required.
        return [d for d in definition.data if d.name in given]

    def _violation(self, login: str, problems: list[str]) -> ApiError:
        return ApiError(
            400,
            f"USERNAME={login} | Contract is not valid: ",
            exception=CONTRACT_VIOLATION,
            explanations=problems,
        )

    def instantiate(self, request: Request, login: str, pid: str) -> Response:
        """API@bpm@process@{id}@instantiation.yaml: 201 ``{"caseId"}``; 400 on a contract violation."""
        definition = self.startable(pid)
        given = self.body_object(request)
        inputs = self._start_inputs(definition, given)
        problems = contract_problems(inputs, given) + self._missing_uploads(inputs, given)
        if problems:
            raise self._violation(login, problems)
        instance = self._start(definition, login, inputs, given)
        return JSONResponse({"caseId": str(instance.id)}, status_code=201)

    def create_case(self, request: Request, login: str) -> dict[str, Any]:
        """API@bpm@case.yaml POST: processes without a contract, process variables by name."""
        body = self.body_object(request)
        definition = self.startable(str(body.get("processDefinitionId", "")))
        contract = self.state.contract(definition) or []
        required = [d for d in contract if d.required]
        if required:
            raise self._violation(login, [f"Expected input [{d.name}] is missing" for d in required])
        given: dict[str, Any] = {}
        for variable in body.get("variables") or []:
            if not isinstance(variable, Mapping) or "name" not in variable:
                raise ApiError(400, "each variable must be {name, value}")
            data = definition.data_by_name(str(variable["name"]))
            if data is None or data.type == "FILE":
                raise ApiError(400, f"process {definition.key} has no variable {variable['name']!r}")
            given[data.name] = variable.get("value")
        inputs = [d for d in definition.data if d.name in given]
        instance = self._start(definition, login, inputs, given)
        return case_json(self.engine, self.state, instance)

    def _start(
        self, definition: ProcessDefinition, login: str, inputs: list[DataDef], given: Mapping[str, Any]
    ) -> Instance:
        values = {
            d.name: _engine_value(d, given[d.name]) for d in inputs if d.type != "FILE" and d.name in given
        }
        with self.engine.lock:
            instance = self.engine.start(definition, user=login, values=values)
            for document in self.state.initial_documents.get(definition.id, []):
                add_document_version(
                    self.engine,
                    self.state,
                    instance,
                    document_item(self.engine, instance, document.data),
                    document.file_name,
                    content=document.content,
                    size=document.size,
                    content_type=document.content_type,
                    url=document.url,
                    submitted_by=login,
                )
            self._add_file_inputs(instance, inputs, given, login)
        return instance

    def _missing_uploads(self, inputs: list[DataDef], given: Mapping[str, Any]) -> list[str]:
        problems = []
        for data in inputs:
            if data.type != "FILE" or given.get(data.name) is None:
                continue
            values = given[data.name] if isinstance(given[data.name], list) else [given[data.name]]
            for value in values:
                if isinstance(value, Mapping) and value.get("tempPath") not in self.state.uploads:
                    problems.append(f"File [{value.get('tempPath')}] of input [{data.name}] was not uploaded")
        return problems

    def _add_file_inputs(
        self, instance: Instance, inputs: list[DataDef], given: Mapping[str, Any], login: str
    ) -> None:
        for data in inputs:
            if data.type != "FILE" or given.get(data.name) is None:
                continue
            values = given[data.name] if isinstance(given[data.name], list) else [given[data.name]]
            for value in values:
                upload = self.state.uploads.pop(value["tempPath"])
                add_document_version(
                    self.engine,
                    self.state,
                    instance,
                    document_item(self.engine, instance, data.name),
                    str(value.get("filename") or upload.file_name),
                    content=upload.content,
                    content_type=str(value.get("contentType") or upload.content_type),
                    submitted_by=login,
                )

    # ---- cases ------------------------------------------------------------------------------------

    def search_cases(self, request: Request, login: str) -> Response:
        f = self.filters(request)
        deploy = request.query_params.getlist("d")
        items = [i for i in self._cases(f) if not i.ended]
        return self.page(request, items, lambda i: case_json(self.engine, self.state, i, deploy))

    def search_archived_cases(self, request: Request, login: str) -> Response:
        f = self.filters(request)
        deploy = request.query_params.getlist("d")
        items = [i for i in self._cases(f) if i.ended and _match(f, "sourceObjectId", str(i.id))]
        return self.page(request, items, lambda i: archived_case_json(self.engine, self.state, i, deploy))

    def _cases(self, f: Mapping[str, str]) -> Iterator[Instance]:
        for instance in sorted(self.engine.instances.values(), key=lambda i: i.id):
            if (
                _match(f, "processDefinitionId", str(instance.definition.id))
                and _match(f, "name", instance.definition.key)
                # the user id only when filtered by it: looking it up costs a lock per case
                and (
                    "started_by" not in f
                    or _match(f, "started_by", self.state.user_id(self.engine, instance.started_by))
                )
                # searchIndexNValue (API@bpm@case.yaml, since 10.3 - 2025.1)
                and all(
                    _match(f, f"searchIndex{n}Value", search_index_value(self.state, instance, n))
                    for n in range(1, 6)
                    if f"searchIndex{n}Value" in f
                )
            ):
                yield instance

    def archived_case(self, request: Request, aid: str) -> dict[str, Any]:
        instance = self.state.instance_of_archived(self.engine, aid)
        if instance is None or not instance.ended:
            raise ApiError(404, f"no archived case with id {aid}")
        return archived_case_json(self.engine, self.state, instance, request.query_params.getlist("d"))

    def update_case(self, request: Request, cid: str) -> None:
        """ProcessInstanceUpdateRequest.yaml: only ``{"state": "cancelled"}``."""
        body = self.body_object(request)
        if body.get("state") != "cancelled" or set(body) != {"state"}:
            raise ApiError(400, 'only {"state": "cancelled"} can change a case')
        self.engine.end(self.live(cid), CANCELLED, reason="cancelled through the REST API")

    def delete_case(self, cid: str) -> None:
        self.engine.delete(self.live(cid))

    # ---- tasks ------------------------------------------------------------------------------------

    def search_tasks(self, request: Request, login: str) -> Response:
        f = self.filters(request)
        if f.get("state", "ready") != "ready":
            items: list[TaskInstance] = []  # only ready tasks are emulated; the others are archived
        else:
            items = [
                t
                for t in self.engine.open_tasks()
                if _match(f, "caseId", str(t.instance.id))
                and _match(f, "rootCaseId", str(t.instance.id))
                and _match(f, "parentCaseId", str(t.instance.id))
                and _match(f, "name", t.definition.name)
                and _match(f, "processId", str(t.instance.definition.id))
                and _match(f, "processDefinitionId", str(t.instance.definition.id))
                and _match(
                    f, "assigned_id", self.state.user_id(self.engine, t.assignee) if t.assignee else "0"
                )
            ]
        return self.page(request, items, lambda t: task_json(self.engine, self.state, t))

    def assign(self, request: Request, tid: str) -> None:
        """HumanTaskUpdateRequest.yaml: ``assigned_id`` (a user id, "" to release)."""
        body = self.body_object(request)
        if set(body) - {"assigned_id"} or "assigned_id" not in body:
            raise ApiError(400, "the emulator can only change assigned_id of a human task")
        task = self.open_task(tid)
        user_id = str(body["assigned_id"] or "")
        if user_id in ("", "0"):
            self.engine.claim(task, None)
            return
        login = self.state.login_of(self.engine, user_id)
        if login is None:
            raise ApiError(404, f"no user with id {user_id}")
        self.engine.claim(task, login, force=True)

    def task_inputs(self, task: TaskInstance) -> list[DataDef]:
        return [d for d in task.instance.definition.data if d.number in task.definition.editable]

    def execute(self, request: Request, login: str, tid: str) -> Response:
        """API@bpm@userTask@{id}@execution.yaml: 204, or 400 with the contract's explanations."""
        task = self.open_task(tid)
        if task.assignee not in (None, login):
            raise ApiError(403, f"task {tid} is assigned to another user")
        given = self.body_object(request)
        inputs = self.task_inputs(task)
        problems = contract_problems(inputs, given) + self._missing_uploads(inputs, given)
        if problems:
            raise self._violation(login, problems)
        values = {
            d.name: _engine_value(d, given[d.name]) for d in inputs if d.type != "FILE" and d.name in given
        }
        # Bonita has no buttons: a task that offers choices (another dialect's model) takes the first.
        choice = task.definition.choices[0].id if task.definition.choices else None
        with self.engine.lock:
            if request.query_params.get("assign") == "true" and task.assignee is None:
                self.engine.claim(task, login)
            self._add_file_inputs(task.instance, inputs, given, login)
            self.engine.complete(task, user=login, values=values, choice=choice)
        return Response(status_code=204)

    # ---- variables --------------------------------------------------------------------------------

    def search_variables(self, request: Request, *, archived: bool) -> Response:
        case_id = self.filters(request).get("case_id")
        if case_id is None:
            raise ApiError(400, "the filter f=case_id=<case id> is mandatory")
        instance = self.instance(case_id)
        if instance.ended != archived:
            items: list[DataValue] = []
        else:
            items = [v for _, v in sorted(instance.data.items()) if v.definition.type != "FILE"]
        return self.page(request, items, lambda v: self._variable_json(instance, v, archived=archived))

    def _variable_json(self, instance: Instance, item: DataValue, *, archived: bool) -> dict[str, Any]:
        body = variable_json(item, instance)
        if archived:
            body["archivedDate"] = timestamp(instance.ended_at)
            body["sourceObjectId"] = str(item.instance_data_id)
        return body

    def case_variable(self, cid: str, name: str, *, archived: bool) -> dict[str, Any]:
        instance = self.instance(cid)
        if instance.ended != archived:
            state = "has ended" if instance.ended else "is still open"
            raise ApiError(404, f"case {cid} {state}: no {'archived ' if archived else ''}variable {name!r}")
        return self._variable_json(instance, self._variable(instance, name), archived=archived)

    def update_variable(self, request: Request, cid: str, name: str) -> None:
        """PUT caseVariable ``{type, value}``: one of the six types of the spec, the variable's own type."""
        body = self.body_object(request)
        kind = body.get("type")
        if kind not in JAVA_TYPES:
            raise ApiError(500, f"Cannot create converter for class name : {kind}")
        instance = self.live(cid)
        item = self._variable(instance, name)
        declared = java_type(item.definition)
        if kind != declared:
            raise ApiError(
                500,
                "Error when updating case variable",
                explanations=[f"variable {name!r} is a {declared}, the value was sent as {kind}"],
            )
        try:
            value = convert_update(kind, body.get("value"))
        except ValueError as exc:
            raise ApiError(500, "Error when updating case variable", explanations=[str(exc)]) from None
        if item.definition.type == "DATE" and value is not None:
            value = value.date().isoformat()
        elif item.definition.type == "DATETIME" and value is not None:
            value = value.isoformat()
        self.engine.set_values(instance, {item.definition.number: value})

    def activity_variable(self, tid: str, name: str, *, archived: bool) -> dict[str, Any]:
        try:
            task = self.engine.task(int(tid))
        except (EngineError, ValueError):
            raise ApiError(404, f"no activity with id {tid}") from None
        if task.open == archived:
            raise ApiError(404, f"activity {tid} is {'still open' if archived else 'archived'}")
        item = self._variable(task.instance, name)
        if archived:
            return {
                "name": name,
                "description": "",
                "type": java_type(item.definition),
                "containerId": str(task.id),
                "containerType": "ACTIVITY_INSTANCE",
                "value": variable_text(item.definition, item.value),
                "archivedDate": timestamp(task.ended_at),
                "sourceObjectId": str(item.instance_data_id),
            }
        # The engine keeps data on the case: Bonita then names the case as the container.
        return {
            "tenantId": "0",
            "tenantId_string": "0",
            "id": str(item.instance_data_id),
            "id_string": str(item.instance_data_id),
            "name": name,
            "description": "",
            "transientData": "false",
            "className": java_type(item.definition),
            "containerId": str(task.instance.id),
            "containerId_string": str(task.instance.id),
            "containerType": "PROCESS_INSTANCE",
            "value": variable_text(item.definition, item.value),
        }

    # ---- documents --------------------------------------------------------------------------------

    def search_documents(self, request: Request, *, archived: bool) -> Response:
        f = self.filters(request)
        if archived and "archivedCaseId" in f:
            instance = self.state.instance_of_archived(self.engine, f.pop("archivedCaseId"))
            f["caseId"] = str(instance.id) if instance is not None else "-1"
        rows: list[dict[str, Any]] = []
        for instance in sorted(self.engine.instances.values(), key=lambda i: i.id):
            if not _match(f, "caseId", str(instance.id)):
                continue
            for item in documents_of(instance):
                for position in range(len(item.value or [])):
                    is_live = not instance.ended and position == len(item.value) - 1
                    if is_live == archived:
                        continue
                    row = document_json(self.engine, self.state, instance, item, position, archived=archived)
                    if (
                        _contains(f, "name", row["name"])
                        and _contains(f, "description", row["description"])
                        and _match(f, "submittedBy", row["submittedBy"])
                        and _match(f, "sourceObjectId", row.get("sourceObjectId", ""))
                    ):
                        rows.append(row)
        return self.page(request, rows, lambda row: row)

    def _document(self, did: str) -> tuple[Instance, DataValue]:
        for instance in self.engine.instances.values():
            for item in documents_of(instance):
                if str(item.instance_data_id) == str(did) and item.value and not instance.ended:
                    return instance, item
        raise ApiError(404, f"no document with id {did}")

    def live_document_json(self, did: str) -> dict[str, Any]:
        instance, item = self._document(did)
        return document_json(self.engine, self.state, instance, item, len(item.value) - 1, archived=False)

    def add_document(self, request: Request, login: str) -> dict[str, Any]:
        """ProcessInstanceDocumentCreateRequest.yaml: caseId, name and a temp ``file`` or a ``url``."""
        body = self.body_object(request)
        if not body.get("caseId") or not body.get("name"):
            raise ApiError(500, "Error while attaching a new document. Request with bad param value.")
        instance = self.live(str(body["caseId"]))
        name = str(body["name"])
        with self.engine.lock:
            item = next((i for i in documents_of(instance) if i.definition.name == name), None)
            if item is not None and item.value:
                raise ApiError(500, f"a document named {name!r} already exists in case {instance.id}")
            if item is None:
                item = document_item(self.engine, instance, name)
            self._add_version(instance, item, body, login)
        return document_json(self.engine, self.state, instance, item, len(item.value) - 1, archived=False)

    def update_document(self, request: Request, login: str, did: str) -> dict[str, Any]:
        """ProcessInstanceDocumentUpdateRequest.yaml: a new version from a temp ``file`` or a ``url``."""
        body = self.body_object(request)
        instance, item = self._document(did)
        with self.engine.lock:
            self._add_version(instance, item, body, login)
        return document_json(self.engine, self.state, instance, item, len(item.value) - 1, archived=False)

    def _add_version(
        self, instance: Instance, item: DataValue, body: Mapping[str, Any], login: str
    ) -> StoredFile:
        url, temp = body.get("url"), body.get("file")
        if bool(url) == bool(temp):
            raise ApiError(500, "Error while attaching a new document. Give either file or url.")
        description = str(body["description"]) if body.get("description") is not None else None
        if url:
            file_name = str(body.get("fileName") or urlsplit(str(url)).path.rsplit("/", 1)[-1] or "document")
            return add_document_version(
                self.engine, self.state, instance, item, file_name, url=str(url), submitted_by=login,
                description=description,
            )  # fmt: skip
        upload = self.state.uploads.pop(str(temp), None)
        if upload is None:
            raise ApiError(500, f"Cannot find {temp} in the tenant temp directory.")
        return add_document_version(
            self.engine,
            self.state,
            instance,
            item,
            str(body.get("fileName") or upload.file_name),
            content=upload.content,
            content_type=upload.content_type,
            submitted_by=login,
            description=description,
        )

    def delete_document(self, did: str) -> None:
        _, item = self._document(did)
        with self.engine.lock:
            for stored in item.value:
                self.engine.files.pop(stored.id, None)
            item.value = []

    def delete_archived_content(self, aid: str) -> None:
        """DELETE archivedCaseDocument/{id}: the file goes, the version's record stays."""
        try:
            _, _, stored = self.engine.file(int(aid))
        except (EngineError, ValueError):
            raise ApiError(404, f"no archived document with id {aid}") from None
        with self.engine.lock:
            stored.content, stored.size = b"", 0
            self.state.info(stored).content_deleted = True

    async def upload(self, request: Request, login: str) -> Response:
        """API@formFileUpload.yaml: multipart ``file`` → ``{filename, tempPath, contentType}``."""
        form = getattr(request.state, "form", None)
        file = form.get("file") if form is not None else None
        if file is None or not hasattr(file, "read"):
            raise ApiError(400, "expected a multipart/form-data body with a 'file' part")
        content = await file.read()
        name = os.path.basename(file.filename or "upload")
        content_type = file.content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        temp = f"tmp_{secrets.token_hex(8)}{os.path.splitext(name)[1]}"
        self.state.uploads[temp] = Upload(name, content, content_type)
        body = json.dumps({"filename": name, "tempPath": temp, "contentType": content_type})
        return Response(body, media_type="text/plain")

    def download(self, request: Request, login: str) -> Response:
        """/portal/documentDownload?fileName=..&contentStorageId=.. (the document's ``url``)."""
        storage = request.query_params.get("contentStorageId", "")
        try:
            _, _, stored = self.engine.file(int(storage))
        except (EngineError, ValueError):
            raise ApiError(404, f"no document content {storage!r}") from None
        info = self.state.info(stored)
        if info.url or info.content_deleted:
            raise ApiError(404, f"document content {storage} is not stored in Bonita")
        name = request.query_params.get("fileName") or stored.name
        headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}"}
        return file_response(request, stored, self.faults, headers=headers)


def _match(filters: Mapping[str, str], name: str, value: str) -> bool:
    return name not in filters or filters[name] == value


def _contains(filters: Mapping[str, str], name: str, value: str) -> bool:
    return name not in filters or filters[name].lower() in (value or "").lower()


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, Mapping):
        value = value.get("id")
    text = "" if value is None else str(value)
    return (0, int(text)) if text.isdigit() else (1, text)


def _engine_value(data: DataDef, value: Any) -> Any:
    """A contract input or process variable as the engine keeps it (dates as ISO text)."""
    if value is None:
        return None
    if data.type in ("DATE", "DATETIME") and not isinstance(value, str):
        moment = as_datetime(value)
        if moment is not None:
            return moment.date().isoformat() if data.type == "DATE" else moment.isoformat()
    return value
