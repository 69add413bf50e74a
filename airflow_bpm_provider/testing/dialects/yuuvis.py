"""yuuvis Momentum: the BPM engine API (``/bpm-engine/api``) and DMS content behind the API gateway.

Gateway behaviour emulated here:

- every request needs the ``X-ID-TENANT-NAME`` header; without it the answer is 401 (the gateway
  cannot authenticate a user without the tenant; the real status is not documented);
- Basic credentials (engine users) or a Bearer token (engine tokens); the first authenticated
  answer sets a ``GWSESSIONID`` cookie, and a request carrying a valid cookie of the same tenant
  needs no credentials;
- a user sees only the processes they started in the tenant, and the open tasks of those
  processes or tasks assigned to them or to nobody (everyone is a candidate here);
- lists answer ``{objects, numItems, totalNumItems, hasMoreItems}``, paged by ``page`` (0-based)
  and ``size`` (default 10);
- the API names users by their user id (``startUserId``, ``startedBy``), a UUID distinct from the
  login name; ``GET /tenant-management/api/idm/me`` answers the current user's ``{id, username,
  tenant}`` (the endpoint and its fields are not in the vendor excerpts: unverified). The engine
  keeps logins: a claim's assignee that is a known user's id is stored as that user's login;
- errors answer Spring Boot's ``{timestamp, status, error, message, path}``.

DMS object ids are the ids of the engine's stored files; ``/api/dms/objects/{id}`` gives their
metadata and ``/contents/file`` their bytes with Content-Disposition and Content-Length.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from airflow_bpm_provider.testing.dialects.yuuvis_entries import (
    ApiError,
    Session,
    YuuvisState,
    definition_id,
    definition_json,
    dms_metadata,
    envelope,
    like,
    process_json,
    query_bool,
    query_date,
    query_int,
    query_sort,
    read_variables,
    split_variables,
    state_of,
    task_json,
    timestamp,
    user_id_of,
)
from airflow_bpm_provider.testing.downloads import file_response
from airflow_bpm_provider.testing.engine import (
    CANCELLED,
    SUSPENDED,
    Engine,
    EngineError,
    Instance,
    TaskInstance,
    now,
)
from airflow_bpm_provider.testing.faults import FaultPlan

API = "/bpm-engine/api"
CURRENT_USER = "/tenant-management/api/idm/me"
DMS = "/api/dms/objects"
TENANT_HEADER = "X-ID-TENANT-NAME"
COOKIE = "GWSESSIONID"
DEFAULT_SIZE = 10
ENGINE_STATUS = {"not_found": 404, "conflict": 409, "invalid": 400, "forbidden": 403}


def router(engine: Engine, faults: FaultPlan) -> APIRouter:
    api = APIRouter()
    state = state_of(engine)
    gateway = _Gateway(engine, state)

    # ---- process definitions ------------------------------------------------------------------

    @api.get(f"{API}/process-definitions")
    async def list_definitions(request: Request) -> Response:
        return gateway.serve(request, lambda s: _definitions(engine, request))

    @api.get(f"{API}/process-definitions/{{definition}}")
    async def get_definition(request: Request, definition: str) -> Response:
        def action(session: Session) -> Any:
            for candidate in engine.definitions.values():
                if definition_id(candidate) == definition:
                    return definition_json(candidate)
            raise ApiError(404, f"Process definition '{definition}' not found")

        return gateway.serve(request, action)

    # ---- processes ----------------------------------------------------------------------------

    @api.get(f"{API}/processes")
    async def list_processes(request: Request) -> Response:
        return gateway.serve(request, lambda s: _processes(engine, state, s, request))

    @api.post(f"{API}/processes")
    async def start_process(request: Request) -> Response:
        body = await _json_body(request)
        return gateway.serve(request, lambda s: _start(engine, state, s, body), status=201)

    @api.get(f"{API}/processes/{{instance_id}}")
    async def get_process(request: Request, instance_id: str) -> Response:
        def action(session: Session) -> Any:
            instance = gateway.visible_instance(session, instance_id)
            variables = query_bool(request.query_params, "includeProcessVariables") or False
            return process_json(instance, state, with_variables=variables)

        return gateway.serve(request, action)

    @api.delete(f"{API}/processes/{{instance_id}}")
    async def delete_process(request: Request, instance_id: str) -> Response:
        def action(session: Session) -> Any:
            instance = gateway.visible_instance(session, instance_id)
            with engine.lock:
                if instance.ended:
                    engine.delete(instance)  # an ended one leaves the history too
                else:
                    engine.end(instance, CANCELLED, reason="deleted through the yuuvis BPM API")
            return Response(status_code=200)

        return gateway.serve(request, action)

    # ---- tasks --------------------------------------------------------------------------------

    @api.get(f"{API}/tasks")
    async def list_tasks(request: Request) -> Response:
        return gateway.serve(request, lambda s: _tasks(engine, state, gateway, s, request))

    @api.get(f"{API}/tasks/{{task_id}}")
    async def get_task(request: Request, task_id: str) -> Response:
        def action(session: Session) -> Any:
            task = gateway.visible_task(session, task_id)
            variables = query_bool(request.query_params, "includeProcessVariables") or False
            return task_json(task, state, with_variables=variables)

        return gateway.serve(request, action)

    @api.post(f"{API}/tasks/{{task_id}}")
    async def task_action(request: Request, task_id: str) -> Response:
        body = await _json_body(request)
        return gateway.serve(request, lambda s: _task_action(engine, state, gateway, s, task_id, body))

    # ---- the current user ---------------------------------------------------------------------

    @api.get(CURRENT_USER)
    async def current_user(request: Request) -> Response:
        return gateway.serve(request, lambda s: {"id": s.user_id, "username": s.user, "tenant": s.tenant})

    # ---- DMS ----------------------------------------------------------------------------------

    @api.get(f"{DMS}/{{object_id}}")
    async def object_metadata(request: Request, object_id: str) -> Response:
        def action(session: Session) -> Any:
            instance, _, stored = gateway.visible_file(session, object_id)
            return dms_metadata(stored, instance)

        return gateway.serve(request, action)

    @api.get(f"{DMS}/{{object_id}}/contents/file")
    async def object_content(request: Request, object_id: str) -> Response:
        def action(session: Session) -> Any:
            _, _, stored = gateway.visible_file(session, object_id)
            return file_response(
                request, stored, faults, headers={"Content-Disposition": _disposition(stored.name)}
            )

        return gateway.serve(request, action)

    return api


class _Gateway:
    """Tenant header, credentials, the session cookie, visibility and error bodies."""

    def __init__(self, engine: Engine, state: YuuvisState) -> None:
        self.engine = engine
        self.state = state

    def serve(self, request: Request, action: Callable[[Session], Any], *, status: int = 200) -> Response:
        try:
            session, cookie = self.authenticate(request)
            result = action(session)
        except ApiError as exc:
            return _error(request, exc.status, exc.message)
        except EngineError as exc:
            message = exc.message
            if exc.details:
                message += ": " + "; ".join(f"{k}: {v}" for k, v in exc.details.items())
            return _error(request, ENGINE_STATUS.get(exc.kind, 400), message)
        response = result if isinstance(result, Response) else JSONResponse(result, status_code=status)
        if cookie:
            response.set_cookie(COOKIE, cookie, path="/", httponly=True)
        return response

    def authenticate(self, request: Request) -> tuple[Session, str | None]:
        tenant = (request.headers.get(TENANT_HEADER) or "").strip()
        if not tenant:
            raise ApiError(
                401, f"{TENANT_HEADER} header missing: the gateway cannot authenticate without a tenant"
            )
        header = request.headers.get("authorization") or ""
        scheme, _, credentials = header.partition(" ")
        user: str | None = None
        if scheme.lower() == "basic":
            login, password = _basic(credentials)
            if not self.engine.check_password(login, password):
                raise ApiError(401, "Unauthorized")
            user = login
        elif scheme.lower() == "bearer":
            user = self.engine.user_for_token(credentials.strip())
            if user is None:
                raise ApiError(401, "Unauthorized: invalid or expired token")
        elif header:
            raise ApiError(401, f"Unauthorized: unsupported authorization scheme '{scheme}'")
        cookie = request.cookies.get(COOKIE)
        with self.state.lock:
            known = self.state.sessions.get(cookie) if cookie else None
            if user is None:
                if known is None or known.tenant != tenant:
                    raise ApiError(401, "Unauthorized")
                return known, None
            if known is not None and known.user == user and known.tenant == tenant:
                return known, None
            session_id = secrets.token_urlsafe(24)
            session = Session(user=user, tenant=tenant)
            self.state.sessions[session_id] = session
            return session, session_id

    def can_see(self, session: Session, instance: Instance) -> bool:
        tenant = self.state.tenant_of.get(instance.id)
        return instance.started_by == session.user and tenant in (None, session.tenant)

    def visible_instance(self, session: Session, instance_id: str) -> Instance:
        try:
            instance = self.engine.instance(instance_id)
        except EngineError:
            instance = None
        if instance is None or not self.can_see(session, instance):
            raise ApiError(404, f"Process instance with id '{instance_id}' was not found")
        return instance

    def can_act_on(self, session: Session, task: TaskInstance) -> bool:
        tenant = self.state.tenant_of.get(task.instance.id)
        if tenant not in (None, session.tenant) or not task.open:
            return False
        return task.instance.started_by == session.user or task.assignee in (None, session.user)

    def visible_task(self, session: Session, task_id: str) -> TaskInstance:
        try:
            task = self.engine.task(task_id)
        except EngineError:
            task = None
        if task is None or not self.can_act_on(session, task):
            raise ApiError(404, f"Task with id '{task_id}' was not found")
        return task

    def visible_file(self, session: Session, object_id: str) -> Any:
        try:
            found = self.engine.file(object_id)
        except EngineError:
            found = None
        if found is None or self.state.tenant_of.get(found[0].id) not in (None, session.tenant):
            raise ApiError(404, f"Object '{object_id}' not found")
        return found


# ---- endpoints' work ---------------------------------------------------------------------------


def _definitions(engine: Engine, request: Request) -> dict[str, Any]:
    q = request.query_params
    latest = query_bool(q, "latest")
    if latest and any(q.get(name) for name in q if name not in ("key", "keyLike", "latest", "page", "size")):
        raise ApiError(400, "latest can only be used together with key and keyLike")
    suspended = query_bool(q, "suspended")
    version = query_int(q, "version")
    found = []
    for definition in sorted(engine.definitions.values(), key=lambda d: (d.key, d.version)):
        checks = [
            not q.get("key") or definition.key == q["key"],
            not q.get("keyLike") or like(q["keyLike"], definition.key),
            not q.get("name") or definition.name == q["name"],
            not q.get("nameLike") or like(q["nameLike"], definition.name),
            not q.get("category") or definition.category == q["category"],
            not q.get("categoryLike") or like(q["categoryLike"], definition.category),
            not q.get("categoryNotEquals") or definition.category != q["categoryNotEquals"],
            suspended is None or (not definition.enabled) == suspended,
            version is None or definition.version == version,
        ]
        if all(checks):
            found.append(definition)
    if latest:
        newest: dict[str, Any] = {}
        for definition in found:
            if definition.key not in newest or definition.version > newest[definition.key].version:
                newest[definition.key] = definition
        found = sorted(newest.values(), key=lambda d: d.key)
    if query_sort(q):
        found.reverse()
    page, size = _paging(request)
    return envelope([definition_json(d) for d in found], page, size)


def _processes(engine: Engine, state: YuuvisState, session: Session, request: Request) -> dict[str, Any]:
    q = request.query_params
    started_by = q.get("startedBy")
    if started_by and started_by != session.user_id:
        # Seed 002: startedBy is a userId, and a non-admin may give only their own (a login is
        # not a user id and is refused like any other user's id).
        raise ApiError(
            400, f"startedBy: user '{session.user_id}' may only ask for their own processes (by user id)"
        )
    flags = {name: query_bool(q, name) for name in ("suspended", "isCompleted", "includeProcessVariables")}
    query_bool(q, "excludeSubprocesses")  # every emulated process is a top-level one
    version = query_int(q, "processDefinitionVersion")
    after, before = query_date(q, "startedAfter"), query_date(q, "startedBefore")
    descending = query_sort(q)
    page, size = _paging(request)
    with engine.lock:
        instances = sorted(engine.instances.values(), key=lambda i: (i.started_at, i.id))
        matches = [
            instance
            for instance in instances
            if _visible(state, session, instance)
            and _process_matches(engine, instance, q, flags, version, after, before)
        ]
        if descending:
            matches.reverse()
        with_variables = bool(flags["includeProcessVariables"])
        return envelope(matches, page, size, lambda i: process_json(i, state, with_variables=with_variables))


def _visible(state: YuuvisState, session: Session, instance: Instance) -> bool:
    return instance.started_by == session.user and state.tenant_of.get(instance.id) in (None, session.tenant)


def _process_matches(
    engine: Engine,
    instance: Instance,
    q: Any,
    flags: dict[str, bool | None],
    version: int | None,
    after: Any,
    before: Any,
) -> bool:
    definition = instance.definition
    involved = _login_of(engine, q["involvedUser"]) if q.get("involvedUser") else None
    checks = [
        not q.get("businessKey") or instance.business_key == q["businessKey"],
        not q.get("businessKeyLike") or like(q["businessKeyLike"], instance.business_key),
        not q.get("name") or instance.title == q["name"],
        not q.get("nameLike") or like(q["nameLike"], instance.title),
        not q.get("nameLikeIgnoreCase") or like(q["nameLikeIgnoreCase"], instance.title, ignore_case=True),
        not q.get("processDefinitionCategory") or definition.category == q["processDefinitionCategory"],
        not q.get("processDefinitionId") or definition_id(definition) == q["processDefinitionId"],
        not q.get("processDefinitionKey") or definition.key == q["processDefinitionKey"],
        version is None or definition.version == version,
        after is None or instance.started_at > after,
        before is None or instance.started_at < before,
        not q.get("subProcessInstanceId"),  # no call activities here: nothing has a sub-process
        not q.get("superProcessInstanceId"),
        flags["suspended"] is None or (instance.state == SUSPENDED) == flags["suspended"],
        flags["isCompleted"] is None or instance.ended == flags["isCompleted"],
        not involved
        or instance.started_by == involved
        or any(t.instance is instance and t.assignee == involved for t in engine.tasks.values()),
    ]
    return all(checks)


def _start(engine: Engine, state: YuuvisState, session: Session, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    key = body.get("processDefinitionKey")
    if not key:
        raise ApiError(400, "processDefinitionKey is required")
    try:
        definition = engine.latest(str(key))
    except EngineError:
        raise ApiError(400, f"no process definition found with key '{key}'") from None
    variables = read_variables(body.get("variables"))
    defined, free = split_variables(definition, variables)
    with engine.lock:
        instance = engine.start(
            definition,
            user=session.user,
            title=body.get("name"),
            business_key=body.get("businessKey"),
            values=defined,
        )
        state.tenant_of[instance.id] = session.tenant
        state.variables[instance.id] = free
        return process_json(instance, state, with_variables=True)


def _tasks(
    engine: Engine, state: YuuvisState, gateway: _Gateway, session: Session, request: Request
) -> dict[str, Any]:
    q = request.query_params
    variables = query_bool(q, "includeProcessVariables") or False
    assigned = query_bool(q, "isAssigned")
    after, before = query_date(q, "createdAfter"), query_date(q, "createdBefore")
    descending = query_sort(q)
    page, size = _paging(request)
    with engine.lock:
        found = []
        for task in engine.open_tasks():
            instance = task.instance
            checks = [
                gateway.can_act_on(session, task),
                not q.get("processInstanceId") or str(instance.id) == q["processInstanceId"],
                not q.get("processDefinitionId")
                or definition_id(instance.definition) == q["processDefinitionId"],
                not q.get("processDefinitionKey") or instance.definition.key == q["processDefinitionKey"],
                not q.get("processDefinitionKeyLike")
                or like(q["processDefinitionKeyLike"], instance.definition.key),
                not q.get("name") or task.definition.name == q["name"],
                not q.get("nameLike") or like(q["nameLike"], task.definition.name),
                assigned is None or (task.assignee == session.user) == assigned,
                after is None or task.created_at > after,
                before is None or task.created_at < before,
            ]
            if all(checks):
                found.append(task)
        if descending:
            found.reverse()
        objects = [task_json(t, state, with_variables=variables) for t in found]
    return envelope(objects, page, size)


def _task_action(
    engine: Engine, state: YuuvisState, gateway: _Gateway, session: Session, task_id: str, body: Any
) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    task = gateway.visible_task(session, task_id)
    action = body.get("action")
    assignee = body.get("assignee")
    variables = read_variables(body.get("variables"))
    defined, free = split_variables(task.instance, variables)
    with engine.lock:
        if action == "claim" and "assignee" in body and assignee is None:
            engine.claim(task, None)  # Flowable: a claim for null gives the task back
        elif action == "claim":
            engine.claim(task, _login_of(engine, assignee) if assignee else session.user)
        elif action == "complete":
            engine.complete(task, user=session.user, values=defined)
            _store_free(state, task, free)
        elif action in ("delegate", "resolve"):
            if task.assignee != session.user:
                raise ApiError(403, f"only the assignee of task '{task_id}' may {action} it")
            if defined:
                engine.set_values(task.instance, defined)
            _store_free(state, task, free)
            if action == "delegate":
                if not assignee:
                    raise ApiError(400, "delegate needs an assignee")
                state.owners.setdefault(task.id, session.user)
                state.delegation[task.id] = "PENDING"
                engine.claim(task, _login_of(engine, assignee), force=True)
            else:
                if state.delegation.get(task.id) != "PENDING":
                    raise ApiError(400, f"task '{task_id}' is not delegated")
                state.delegation[task.id] = "RESOLVED"
                engine.claim(task, state.owners.get(task.id), force=True)
        else:
            raise ApiError(400, f"Invalid action: '{action}'; expected claim, complete, delegate or resolve")
        return task_json(task, state, with_variables=False)


def _login_of(engine: Engine, assignee: Any) -> str:
    """The engine's login for an assignee the API names by user id; other text as it is."""
    text = str(assignee)
    for login in engine.users:
        if user_id_of(login) == text:
            return login
    return text


def _store_free(state: YuuvisState, task: TaskInstance, free: dict[str, Any]) -> None:
    if free:
        state.variables.setdefault(task.instance.id, {}).update(free)


# ---- helpers -----------------------------------------------------------------------------------


def _paging(request: Request) -> tuple[int, int]:
    q = request.query_params
    return query_int(q, "page", 0) or 0, query_int(q, "size", DEFAULT_SIZE, minimum=1) or DEFAULT_SIZE


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None  # answered as "the request body must be a JSON object"


def _basic(credentials: str) -> tuple[str | None, str | None]:
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    login, sep, password = decoded.partition(":")
    return (login, password) if sep else (None, None)


def _error(request: Request, status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "timestamp": timestamp(now()),
            "status": status,
            "error": HTTPStatus(status).phrase,
            "message": message,
            "path": request.url.path,
        },
        status_code=status,
    )


def _disposition(name: str) -> str:
    fallback = name.encode("ascii", "replace").decode("ascii").replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
