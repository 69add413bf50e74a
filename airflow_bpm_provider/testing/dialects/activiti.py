"""Activiti / Flowable REST (WSO2 EI's ``/bpmn``, ``/activiti-rest/service``, ``/flowable-rest/service``).

Server behaviour emulated here (see :mod:`.activiti_entries` for the answers' shapes):

- HTTP Basic on every request (401 otherwise); any engine user may see and change everything;
- lists answer ``{data, total, start, sort, order, size}``, paged by ``start``/``size`` (default 10),
  from the URL or, for ``POST query/...``, from the body;
- ``includeProcessVariables=true`` on process-instance lists reproduces flowable-engine #1348: the
  page is cut over instance x variable rows, so pages come back short;
- an ended instance answers 404 on every ``runtime/...`` path and lives on in ``history/...``;
  deleting one records its ``deleteReason`` there;
- starting an unknown key, id or message answers 400 with the engine's message, as the real
  servers do; claiming a task someone else holds answers 409;
- WSO2 EI (``/bpmn``) answers 400 to a start by key or message without ``tenantId`` and 405 to
  ``POST repository/deployments`` (its REST API only lists and reads deployments);
- Activiti 5.21 and WSO2 EI read query-string dates as ``yyyy-MM-dd'T'HH:mm:ss`` plus ``Z`` or
  ``+hh:mm`` and answer 400 to anything else (a fraction of a second included); Flowable reads
  any ISO 8601 date;
- a delete without ``deleteReason`` records the server's default: ``""`` on WSO2 EI,
  ``ACTIVITI_DELETED`` on Activiti 5;
- binary variables are single-file FILE data items; task attachments and comments outlive their task.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from airflow_bpm_provider.testing.bpmn import deploy_model
from airflow_bpm_provider.testing.dialects.activiti_entries import (
    ApiError,
    Site,
    attachment_json,
    boolean,
    comment_json,
    definition_id,
    definition_json,
    deployment_json,
    deployment_of,
    engine_id,
    envelope,
    historic_task_json,
    history_json,
    implicit_deployment,
    paging,
    parse_time,
    query_time,
    read_variable,
    runtime_json,
    sort_rows,
    task_json,
    variable_file,
    variable_json,
    visible,
)
from airflow_bpm_provider.testing.downloads import file_response
from airflow_bpm_provider.testing.engine import (
    CANCELLED,
    SUSPENDED,
    DataValue,
    Engine,
    EngineError,
    Instance,
    ProcessDefinition,
    StoredFile,
    TaskInstance,
    now,
)
from airflow_bpm_provider.testing.faults import FaultPlan

ENGINE_STATUS = {"not_found": 404, "conflict": 409, "invalid": 400, "forbidden": 403}
TASK_ACTIONS = ("complete", "claim", "delegate", "resolve")
TENANT_REQUIRED = "TenantId should be specified to be used with either processDefinitionKey or message."
# What each server records as the reason of a delete that gave none.
DEFAULT_DELETE_REASON = {"wso2": "", "activiti": "ACTIVITI_DELETED", "flowable": "deleted"}


@dataclass
class Call:
    """One request, read up front (the handlers are synchronous)."""

    request: Request
    site: Site
    params: Mapping[str, str]
    path: Mapping[str, str]
    body: Any = None
    form: dict[str, str] = field(default_factory=dict)
    upload: tuple[str, bytes, str] | None = None  # (file name, content, content type)
    user: str = ""

    @property
    def multipart(self) -> bool:
        return self.upload is not None or bool(self.form)

    def json_object(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise ApiError(400, "The request body must be a JSON object")
        return self.body


Handler = Callable[[Call], Any]


def router(engine: Engine, faults: FaultPlan) -> APIRouter:
    api = APIRouter()
    rest = _Rest(engine, faults)

    def add(method: str, path: str, handler: Handler, *, status: int = 200) -> None:
        async def endpoint(request: Request) -> Response:
            return await rest.serve(request, handler, status)

        endpoint.__name__ = f"activiti_{handler.__name__}"
        api.add_api_route(path, endpoint, methods=[method], include_in_schema=False)

    add("GET", "/repository/deployments", rest.list_deployments)
    add("POST", "/repository/deployments", rest.create_deployment, status=201)
    add("GET", "/repository/deployments/{deployment_id}", rest.get_deployment)
    add("GET", "/repository/process-definitions", rest.list_definitions)
    add("GET", "/repository/process-definitions/{definition_id}", rest.get_definition)

    add("GET", "/runtime/process-instances", rest.list_instances)
    add("POST", "/runtime/process-instances", rest.start_instance, status=201)
    add("POST", "/query/process-instances", rest.query_instances)
    add("GET", "/runtime/process-instances/{instance_id}", rest.get_instance)
    add("PUT", "/runtime/process-instances/{instance_id}", rest.instance_action)
    add("DELETE", "/runtime/process-instances/{instance_id}", rest.delete_instance, status=204)
    add("GET", "/runtime/process-instances/{instance_id}/variables", rest.list_variables)
    add("POST", "/runtime/process-instances/{instance_id}/variables", rest.create_variables, status=201)
    add("PUT", "/runtime/process-instances/{instance_id}/variables", rest.put_variables, status=201)
    add("GET", "/runtime/process-instances/{instance_id}/variables/{name}", rest.get_variable)
    add("PUT", "/runtime/process-instances/{instance_id}/variables/{name}", rest.update_variable)
    add("GET", "/runtime/process-instances/{instance_id}/variables/{name}/data", rest.variable_data)

    add("GET", "/history/historic-process-instances", rest.list_history)
    add("POST", "/query/historic-process-instances", rest.query_history)
    add("GET", "/history/historic-process-instances/{instance_id}", rest.get_history)
    add("GET", "/history/historic-process-instances/{instance_id}/variables/{name}/data", rest.history_data)
    add("GET", "/history/historic-variable-instances", rest.list_historic_variables)
    add("GET", "/history/historic-task-instances", rest.list_historic_tasks)

    add("GET", "/runtime/tasks", rest.list_tasks)
    add("POST", "/query/tasks", rest.query_tasks)
    add("GET", "/runtime/tasks/{task_id}", rest.get_task)
    add("PUT", "/runtime/tasks/{task_id}", rest.update_task)
    add("POST", "/runtime/tasks/{task_id}", rest.task_action)
    add("DELETE", "/runtime/tasks/{task_id}", rest.delete_task, status=204)
    add("GET", "/runtime/tasks/{task_id}/attachments", rest.list_attachments)
    add("POST", "/runtime/tasks/{task_id}/attachments", rest.create_attachment, status=201)
    add("GET", "/runtime/tasks/{task_id}/attachments/{attachment_id}", rest.get_attachment)
    add("GET", "/runtime/tasks/{task_id}/attachments/{attachment_id}/content", rest.attachment_content)
    add("GET", "/runtime/tasks/{task_id}/comments", rest.list_comments)
    add("POST", "/runtime/tasks/{task_id}/comments", rest.create_comment, status=201)
    add("GET", "/runtime/tasks/{task_id}/comments/{comment_id}", rest.get_comment)
    add("DELETE", "/runtime/tasks/{task_id}/comments/{comment_id}", rest.delete_comment, status=204)
    return api


class _Rest:
    def __init__(self, engine: Engine, faults: FaultPlan) -> None:
        self.engine = engine
        self.faults = faults

    # ---- plumbing -------------------------------------------------------------------------------

    async def serve(self, request: Request, handler: Handler, status: int) -> Response:
        site = Site(f"{request.url.scheme}://{request.url.netloc}", request.url.path)
        try:
            call = await _read(request, site)
            call.user = self._authenticate(request)
            result = handler(call)
        except ApiError as exc:
            return _error(site, exc.status, exc.message)
        except EngineError as exc:
            message = exc.message
            if exc.details:
                message += ": " + "; ".join(f"{k}: {v}" for k, v in exc.details.items())
            return _error(site, ENGINE_STATUS.get(exc.kind, 400), message)
        if isinstance(result, Response):
            return result
        if status == 204:
            return Response(status_code=204)
        return JSONResponse(result, status_code=status)

    def _authenticate(self, request: Request) -> str:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            login, _, password = decoded.partition(":")
            if self.engine.check_password(login, password):
                return login
        raise ApiError(401, "Authentication required: send HTTP Basic credentials of an engine user")

    def _instance(self, call: Call, *, running: bool = True) -> Instance:
        raw = call.path["instance_id"]
        try:
            instance = self.engine.instance(raw)
        except EngineError:
            instance = None
        if instance is None or (running and instance.ended):
            what = "process instance" if running else "historic process instance"
            raise ApiError(404, f"Could not find a {what} with id '{raw}'.")
        return instance

    def _task(self, call: Call, *, open_only: bool = True) -> TaskInstance:
        raw = call.path["task_id"]
        try:
            task = self.engine.task(raw)
        except EngineError:
            task = None
        if task is None or (open_only and not task.open):
            raise ApiError(404, f"Could not find a task with id '{raw}'.")
        return task

    def _definition(self, text: str) -> ProcessDefinition | None:
        number = engine_id(text)
        definition = self.engine.definitions.get(number) if number is not None else None
        if definition is None or definition_id(definition) != text:
            return None
        return definition

    def _stream(self, call: Call, stored: StoredFile, content_type: str) -> Response:
        return file_response(call.request, stored, self.faults, media_type=content_type)

    # ---- repository -----------------------------------------------------------------------------

    def _deployments(self) -> list[Any]:
        uploaded = list(self.engine.deployments.values())
        implicit = [
            implicit_deployment(d) for d in self.engine.definitions.values() if d.deployment_id is None
        ]
        return uploaded + implicit

    def list_deployments(self, call: Call) -> Any:
        p = call.params
        rows = [
            d
            for d in self._deployments()
            if _match(p.get("name"), d.name)
            and _like(p.get("nameLike"), d.name)
            and _match(p.get("category"), d.category)
            and _match(p.get("tenantId"), d.tenant_id)
        ]
        keys = {"id": lambda d: d.id, "name": lambda d: d.name, "deployTime": lambda d: d.deployed_at}
        keys["tenantId"] = lambda d: d.tenant_id
        return _page(call, rows, keys, lambda d: deployment_json(call.site, d))

    def get_deployment(self, call: Call) -> Any:
        raw = call.path["deployment_id"]
        for deployment in self._deployments():
            if str(deployment.id) == raw:
                return deployment_json(call.site, deployment)
        raise ApiError(404, f"Could not find a deployment with id '{raw}'.")

    def create_deployment(self, call: Call) -> Any:
        if call.site.flavour == "wso2":
            raise ApiError(405, "Method Not Allowed: deployments are read-only through the BPMN REST API")
        if call.upload is None:
            raise ApiError(400, "Multipart request with a file is required")
        file_name, content, _ = call.upload
        tenant = call.params.get("tenantId") or call.form.get("tenantId") or ""
        name = call.params.get("deploymentName") or call.form.get("deploymentName")
        deployment, _ = deploy_model(self.engine, file_name, content, name=name, tenant_id=tenant)
        return deployment_json(call.site, deployment)

    def list_definitions(self, call: Call) -> Any:
        p = call.params
        latest = boolean(p.get("latest"), "latest")
        suspended = boolean(p.get("suspended"), "suspended")
        rows = [
            d
            for d in self.engine.definitions.values()
            if _match(p.get("key"), d.key)
            and _like(p.get("keyLike"), d.key)
            and _match(p.get("name"), d.name)
            and _like(p.get("nameLike"), d.name)
            and _match(p.get("version"), str(d.version))
            and _match(p.get("category"), d.category)
            and _match(p.get("deploymentId"), str(deployment_of(d)))
            and _match(p.get("tenantId"), d.tenant_id)
            and (suspended is None or suspended == (not d.enabled))
        ]
        if latest:
            newest: dict[tuple[str, str], ProcessDefinition] = {}
            for d in rows:
                key = (d.key, d.tenant_id)
                if key not in newest or newest[key].version < d.version:
                    newest[key] = d
            rows = list(newest.values())
        keys: dict[str, Callable[[ProcessDefinition], Any]] = {
            "name": lambda d: d.name,
            "id": lambda d: d.id,
            "key": lambda d: d.key,
            "category": lambda d: d.category,
            "deploymentId": deployment_of,
            "version": lambda d: d.version,
        }
        return _page(call, rows, keys, lambda d: definition_json(call.site, d))

    def get_definition(self, call: Call) -> Any:
        raw = call.path["definition_id"]
        definition = self._definition(raw)
        if definition is None:
            raise ApiError(404, f"Could not find a process definition with id '{raw}'.")
        return definition_json(call.site, definition)

    # ---- runtime process instances ----------------------------------------------------------

    def _runtime_rows(self, call: Call, criteria: Mapping[str, Any]) -> Any:
        ids = _id_set(criteria)

        def wanted(instance: Instance) -> bool:
            definition = instance.definition
            return (
                not instance.ended
                and _match(criteria.get("id") or criteria.get("processInstanceId"), str(instance.id))
                and (ids is None or str(instance.id) in ids)
                and _match(criteria.get("processDefinitionKey"), definition.key)
                and _match(criteria.get("processDefinitionId"), definition_id(definition))
                and _match(
                    criteria.get("businessKey") or criteria.get("processBusinessKey"), instance.business_key
                )
                and _match(criteria.get("tenantId"), definition.tenant_id)
                and _match(criteria.get("startedBy"), instance.started_by)
                and _flag(criteria, "suspended", instance.state == SUSPENDED)
                and _variables_match(instance, criteria.get("variables"))
            )

        with self.engine.lock:
            rows = [i for i in self.engine.instances.values() if wanted(i)]
            keys: dict[str, Callable[[Instance], Any]] = {
                "id": lambda i: i.id,
                "processDefinitionId": lambda i: definition_id(i.definition),
                "tenantId": lambda i: i.definition.tenant_id,
                "processDefinitionKey": lambda i: i.definition.key,
            }
            rows, sort, order = sort_rows(
                rows, keys, _get(criteria, call, "sort"), _get(criteria, call, "order")
            )
            start, size = paging(criteria if isinstance(call.body, dict) else {}, call.params)
            if boolean(criteria.get("includeProcessVariables"), "includeProcessVariables"):
                page = _short_page(rows, start, size, lambda i: self._variable_rows(call.site, i))
                data = [runtime_json(call.site, i, variables=self._variable_rows(call.site, i)) for i in page]
            else:
                data = [runtime_json(call.site, i) for i in rows[start : start + size]]
            return envelope(data, total=len(rows), start=start, size=size, sort=sort, order=order)

    def _variable_rows(self, site: Site, instance: Instance) -> list[dict[str, Any]]:
        return [variable_json(site, instance, item) for item in _sorted_items(instance) if visible(item)]

    def list_instances(self, call: Call) -> Any:
        return self._runtime_rows(call, call.params)

    def query_instances(self, call: Call) -> Any:
        return self._runtime_rows(call, call.json_object())

    def get_instance(self, call: Call) -> Any:
        return runtime_json(call.site, self._instance(call))

    def start_instance(self, call: Call) -> Any:
        body = call.json_object()
        chosen = [
            name for name in ("processDefinitionId", "processDefinitionKey", "message") if body.get(name)
        ]
        if not chosen:
            raise ApiError(400, "Either processDefinitionId, processDefinitionKey or message is required.")
        if len(chosen) > 1:
            raise ApiError(
                400, "Only one of processDefinitionId, processDefinitionKey or message should be set."
            )
        tenant = body.get("tenantId")
        if tenant is not None and chosen[0] == "processDefinitionId":
            raise ApiError(400, "TenantId can only be used with either processDefinitionKey or message.")
        if call.site.flavour == "wso2" and not tenant and chosen[0] != "processDefinitionId":
            raise ApiError(400, TENANT_REQUIRED)
        variables = [read_variable(call.site, raw) for raw in body.get("variables") or []]
        definition = self._definition_to_start(chosen[0], str(body[chosen[0]]), tenant or "")
        with self.engine.lock:
            instance = self.engine.start(
                definition, user=call.user, business_key=body.get("businessKey"), title=body.get("name")
            )
            for name, kind, vendor, value in variables:
                self.engine.set_variable(instance, name, value, type=kind, vendor_type=vendor)
            wants_variables = boolean(body.get("returnVariables"), "returnVariables")
            returned = self._variable_rows(call.site, instance) if wants_variables else None
            return runtime_json(call.site, instance, variables=returned)

    def _definition_to_start(self, field_name: str, value: str, tenant: str) -> ProcessDefinition:
        tenant_text = f" for tenant identifier '{tenant}'" if tenant else ""
        if field_name == "processDefinitionId":
            definition = self._definition(value)
            if definition is None:
                raise ApiError(400, f"no deployed process definition found with id '{value}'")
            return definition
        if field_name == "processDefinitionKey":
            candidates = [
                d for d in self.engine.definitions.values() if d.key == value and d.tenant_id == tenant
            ]
            if not candidates:
                raise ApiError(400, f"no processes deployed with key '{value}'{tenant_text}")
        else:
            # Only the latest version of a definition holds the message start subscription.
            latest: dict[str, ProcessDefinition] = {}
            for d in self.engine.definitions.values():
                if d.tenant_id == tenant and (d.key not in latest or latest[d.key].version < d.version):
                    latest[d.key] = d
            candidates = [d for d in latest.values() if value in d.start_messages]
            if not candidates:
                raise ApiError(
                    400,
                    f"Cannot start process instance by message: no subscription to message with name "
                    f"'{value}' found.",
                )
        return max(candidates, key=lambda d: d.version)

    def instance_action(self, call: Call) -> Any:
        instance = self._instance(call)
        action = call.json_object().get("action")
        if action not in ("suspend", "activate"):
            raise ApiError(400, f"Invalid action: '{action}'.")
        try:
            self.engine.suspend(instance, action == "suspend")
        except EngineError:
            state = "suspended" if action == "suspend" else "active"
            raise ApiError(409, f"Process instance with id '{instance.id}' is already {state}.") from None
        return runtime_json(call.site, instance)

    def delete_instance(self, call: Call) -> Any:
        instance = self._instance(call)
        reason = call.params.get("deleteReason")
        if reason is None:
            reason = DEFAULT_DELETE_REASON[call.site.flavour]
        self.engine.end(instance, CANCELLED, reason=reason)
        return None

    # ---- variables ------------------------------------------------------------------------------

    def list_variables(self, call: Call) -> Any:
        instance = self._instance(call)
        return self._variable_rows(call.site, instance)

    def _item(self, instance: Instance, name: str) -> DataValue:
        for item in instance.data.values():
            if item.definition.name == name and visible(item):
                return item
        raise ApiError(404, f"Process instance '{instance.id}' doesn't have a variable with name: '{name}'.")

    def _exists(self, instance: Instance, name: str) -> bool:
        return any(item.definition.name == name and visible(item) for item in instance.data.values())

    def get_variable(self, call: Call) -> Any:
        instance = self._instance(call)
        return variable_json(call.site, instance, self._item(instance, call.path["name"]))

    def _set_many(self, call: Call, *, create_only: bool) -> Any:
        instance = self._instance(call)
        if call.multipart:
            return self._set_binary(call, instance, call.form.get("name"), create_only=create_only)
        if not isinstance(call.body, list) or not call.body:
            raise ApiError(400, "Request did not contain a list of variables to create.")
        variables = [read_variable(call.site, raw) for raw in call.body]
        with self.engine.lock:
            if create_only:
                for name, *_ in variables:
                    if self._exists(instance, name):
                        raise ApiError(
                            409, f"Variable '{name}' is already present on execution '{instance.id}'."
                        )
            items = [
                self.engine.set_variable(instance, name, value, type=kind, vendor_type=vendor)
                for name, kind, vendor, value in variables
            ]
            return [variable_json(call.site, instance, item) for item in items]

    def create_variables(self, call: Call) -> Any:
        return self._set_many(call, create_only=True)

    def put_variables(self, call: Call) -> Any:
        return self._set_many(call, create_only=False)

    def update_variable(self, call: Call) -> Any:
        instance = self._instance(call)
        name = call.path["name"]
        if call.multipart:
            if call.form.get("name") not in (None, name):
                raise ApiError(
                    400, "Variable name in the body should be equal to the name used in the requested URL."
                )
            return self._set_binary(call, instance, name, create_only=False, status=200)
        body = call.json_object()
        if body.get("name") != name:
            raise ApiError(
                400, "Variable name in the body should be equal to the name used in the requested URL."
            )
        self._item(instance, name)
        _, kind, vendor, value = read_variable(call.site, body)
        item = self.engine.set_variable(instance, name, value, type=kind, vendor_type=vendor)
        return variable_json(call.site, instance, item)

    def _set_binary(
        self, call: Call, instance: Instance, name: str | None, *, create_only: bool, status: int = 201
    ) -> Any:
        if not name:
            raise ApiError(400, "No variable name was found in request body.")
        if call.upload is None:
            raise ApiError(400, "No file content was found in request body.")
        kind = call.form.get("type") or "binary"
        if kind not in ("binary", "serializable"):
            raise ApiError(
                400, f"Only 'binary' and 'serializable' are supported as variable type, got '{kind}'."
            )
        file_name, content, content_type = call.upload
        with self.engine.lock:
            if create_only and self._exists(instance, name):
                raise ApiError(409, f"Variable '{name}' is already present on execution '{instance.id}'.")
            vendor = None if kind == "binary" else kind
            item = self.engine.set_variable(instance, name, None, type="FILE", vendor_type=vendor)
            self.engine.add_file(
                instance, name, file_name or name, content=content, content_type=content_type
            )
            return JSONResponse(variable_json(call.site, instance, item), status_code=status)

    def variable_data(self, call: Call) -> Any:
        instance = self._instance(call)
        return self._variable_content(call, instance, call.path["name"])

    def history_data(self, call: Call) -> Any:
        instance = self._instance(call, running=False)
        return self._variable_content(call, instance, call.path["name"])

    def _variable_content(self, call: Call, instance: Instance, name: str) -> Response:
        stored = variable_file(self._item(instance, name))
        if stored is None:
            raise ApiError(404, f"The variable '{name}' does not have a binary data stream.")
        return self._stream(call, stored, "application/octet-stream")

    # ---- history --------------------------------------------------------------------------------

    def _history_rows(self, call: Call, criteria: Mapping[str, Any], *, from_url: bool = False) -> Any:
        # Dates in a URL go through the servers' RequestUtil; dates in a JSON body through Jackson.
        def read(name: str) -> Any:
            if from_url:
                return query_time(criteria.get(name), name, call.site)
            return parse_time(criteria.get(name), name)

        started_after, started_before = read("startedAfter"), read("startedBefore")
        finished_after, finished_before = read("finishedAfter"), read("finishedBefore")
        ids = _id_set(criteria)

        def wanted(instance: Instance) -> bool:
            definition = instance.definition
            return (
                _match(criteria.get("processInstanceId"), str(instance.id))
                and (ids is None or str(instance.id) in ids)
                and _match(criteria.get("processDefinitionKey"), definition.key)
                and _match(criteria.get("processDefinitionId"), definition_id(definition))
                and _match(
                    criteria.get("businessKey") or criteria.get("processBusinessKey"), instance.business_key
                )
                and _match(criteria.get("tenantId"), definition.tenant_id)
                and _match(criteria.get("startedBy"), instance.started_by)
                and _flag(criteria, "finished", instance.ended)
                and (started_after is None or instance.started_at > started_after)
                and (started_before is None or instance.started_at < started_before)
                and (
                    finished_after is None
                    or (instance.ended_at is not None and instance.ended_at > finished_after)
                )
                and (
                    finished_before is None
                    or (instance.ended_at is not None and instance.ended_at < finished_before)
                )
                and _variables_match(instance, criteria.get("variables"))
            )

        with self.engine.lock:
            rows = [i for i in self.engine.instances.values() if wanted(i)]
            keys: dict[str, Callable[[Instance], Any]] = {
                "processInstanceId": lambda i: i.id,
                "processDefinitionId": lambda i: definition_id(i.definition),
                "businessKey": lambda i: i.business_key,
                "startTime": lambda i: i.started_at,
                "endTime": lambda i: i.ended_at,
                "duration": lambda i: (i.ended_at - i.started_at) if i.ended_at else None,
                "tenantId": lambda i: i.definition.tenant_id,
            }
            rows, sort, order = sort_rows(
                rows, keys, _get(criteria, call, "sort"), _get(criteria, call, "order")
            )
            start, size = paging(criteria if isinstance(call.body, dict) else {}, call.params)
            data = [history_json(call.site, i) for i in rows[start : start + size]]
            return envelope(data, total=len(rows), start=start, size=size, sort=sort, order=order)

    def list_history(self, call: Call) -> Any:
        return self._history_rows(call, call.params, from_url=True)

    def query_history(self, call: Call) -> Any:
        return self._history_rows(call, call.json_object())

    def get_history(self, call: Call) -> Any:
        return history_json(call.site, self._instance(call, running=False))

    def list_historic_variables(self, call: Call) -> Any:
        p = call.params
        rows = []
        with self.engine.lock:
            for instance in sorted(self.engine.instances.values(), key=lambda i: i.id):
                if not _match(p.get("processInstanceId"), str(instance.id)):
                    continue
                for item in _sorted_items(instance):
                    if visible(item) and _match(p.get("variableName"), item.definition.name):
                        rows.append((instance, item))
        keys: dict[str, Callable[[tuple[Instance, DataValue]], Any]] = {
            "processInstanceId": lambda row: row[0].id,
            "variableName": lambda row: row[1].definition.name,
        }

        def render(row: tuple[Instance, DataValue]) -> dict[str, Any]:
            instance, item = row
            return {
                "id": str(item.instance_data_id),
                "processInstanceId": str(instance.id),
                "processInstanceUrl": call.site.url("history", "historic-process-instances", instance.id),
                "taskId": None,
                "variable": variable_json(call.site, instance, item, history=True),
            }

        return _page(call, rows, keys, render)

    def list_historic_tasks(self, call: Call) -> Any:
        p = call.params
        finished = boolean(p.get("finished"), "finished")
        with self.engine.lock:
            rows = [
                t
                for t in self.engine.tasks.values()
                if _match(p.get("processInstanceId"), str(t.instance.id))
                and _match(p.get("taskDefinitionKey"), t.definition.key)
                and (finished is None or finished == (not t.open))
            ]
        keys: dict[str, Callable[[TaskInstance], Any]] = {
            "taskInstanceId": lambda t: t.id,
            "processInstanceId": lambda t: t.instance.id,
            "name": lambda t: t.name,
            "startTime": lambda t: t.created_at,
            "endTime": lambda t: t.ended_at,
        }
        return _page(call, rows, keys, lambda t: historic_task_json(call.site, t))

    # ---- tasks ----------------------------------------------------------------------------------

    def _task_rows(self, call: Call, criteria: Mapping[str, Any]) -> Any:
        unassigned = boolean(criteria.get("unassigned"), "unassigned")
        active = boolean(criteria.get("active"), "active")

        def wanted(task: TaskInstance) -> bool:
            instance = task.instance
            return (
                task.open
                and _match(criteria.get("processInstanceId"), str(instance.id))
                and _match(criteria.get("name"), task.name)
                and _like(criteria.get("nameLike"), task.name)
                and _match(criteria.get("assignee"), task.assignee)
                and _match(criteria.get("owner"), task.owner)
                and _match(criteria.get("taskDefinitionKey"), task.definition.key)
                and _match(criteria.get("processDefinitionKey"), instance.definition.key)
                and _match(criteria.get("processInstanceBusinessKey"), instance.business_key)
                and _match(criteria.get("delegationState"), task.delegation)
                and _match(criteria.get("tenantId"), instance.definition.tenant_id)
                and (unassigned is None or unassigned == (task.assignee is None))
                and (active is None or active == (instance.state != SUSPENDED))
            )

        with self.engine.lock:
            rows = [t for t in self.engine.tasks.values() if wanted(t)]
            keys: dict[str, Callable[[TaskInstance], Any]] = {
                "id": lambda t: t.id,
                "name": lambda t: t.name,
                "priority": lambda t: t.priority,
                "assignee": lambda t: t.assignee,
                "createTime": lambda t: t.created_at,
                "dueDate": lambda t: t.due_at,
                "processInstanceId": lambda t: t.instance.id,
                "tenantId": lambda t: t.instance.definition.tenant_id,
            }
            rows, sort, order = sort_rows(
                rows, keys, _get(criteria, call, "sort"), _get(criteria, call, "order")
            )
            start, size = paging(criteria if isinstance(call.body, dict) else {}, call.params)
            data = [task_json(call.site, t) for t in rows[start : start + size]]
            return envelope(data, total=len(rows), start=start, size=size, sort=sort, order=order)

    def list_tasks(self, call: Call) -> Any:
        return self._task_rows(call, call.params)

    def query_tasks(self, call: Call) -> Any:
        return self._task_rows(call, call.json_object())

    def get_task(self, call: Call) -> Any:
        return task_json(call.site, self._task(call))

    def update_task(self, call: Call) -> Any:
        task = self._task(call)
        body = call.json_object()
        with self.engine.lock:
            if "assignee" in body:
                task.assignee = body["assignee"]
                task.claimed_at = now() if task.assignee else None
            if "owner" in body:
                task.owner = body["owner"]
            if "name" in body:
                task.display_name = body["name"]
            if "description" in body:
                task.description = body["description"]
            if "priority" in body:
                if not isinstance(body["priority"], int) or isinstance(body["priority"], bool):
                    raise ApiError(400, f"priority must be an integer, got {body['priority']!r}")
                task.priority = body["priority"]
            if "dueDate" in body:
                task.due_at = parse_time(body["dueDate"], "dueDate")
            if "delegationState" in body:
                if body["delegationState"] not in (None, "pending", "resolved"):
                    raise ApiError(400, f"Illegal value for delegationState: '{body['delegationState']}'.")
                task.delegation = body["delegationState"]
        return task_json(call.site, task)

    def task_action(self, call: Call) -> Any:
        task = self._task(call)
        body = call.json_object()
        action = body.get("action")
        if action not in TASK_ACTIONS:
            raise ApiError(400, f"Invalid action: '{action}'.")
        if action == "claim":
            try:
                self.engine.claim(task, body.get("assignee"))
            except EngineError as exc:
                if exc.kind == "conflict" and task.open:
                    raise ApiError(409, f"Task '{task.id}' is already claimed by someone else.") from None
                raise
        elif action == "delegate":
            if not body.get("assignee"):
                raise ApiError(400, "An assignee is required when delegating a task.")
            self.engine.delegate(task, body["assignee"])
        elif action == "resolve":
            self.engine.resolve(task)
        else:
            self._complete(call, task, body)
        return Response(status_code=200)

    def _complete(self, call: Call, task: TaskInstance, body: Mapping[str, Any]) -> None:
        variables = [read_variable(call.site, raw) for raw in body.get("variables") or []]
        choice = None
        if body.get("outcome") is not None and call.site.flowable:
            outcome = str(body["outcome"])
            chosen = next((c for c in task.definition.choices if outcome in (c.name, str(c.id))), None)
            if chosen is None:
                raise ApiError(400, f"Task '{task.id}' has no outcome '{outcome}'.")
            choice = chosen.id
        with self.engine.lock:
            if task.instance.state == SUSPENDED:
                raise ApiError(409, f"Cannot complete task '{task.id}': its process instance is suspended.")
            for name, kind, vendor, value in variables:
                self.engine.set_variable(task.instance, name, value, type=kind, vendor_type=vendor)
            self.engine.complete(task, user=call.user, choice=choice)

    def delete_task(self, call: Call) -> Any:
        self._task(call)
        # Every engine task belongs to a process instance, which the real servers refuse to cut.
        raise ApiError(403, "Cannot delete a task that is part of a process-instance.")

    # ---- attachments and comments -------------------------------------------------------------

    def _attachment(self, call: Call, task: TaskInstance) -> Any:
        raw = call.path["attachment_id"]
        for attachment in task.attachments:
            if str(attachment.id) == raw:
                return attachment
        raise ApiError(404, f"Task '{task.id}' doesn't have an attachment with id '{raw}'.")

    def list_attachments(self, call: Call) -> Any:
        task = self._task(call, open_only=False)
        return [attachment_json(call.site, task, a) for a in task.attachments]

    def get_attachment(self, call: Call) -> Any:
        task = self._task(call, open_only=False)
        return attachment_json(call.site, task, self._attachment(call, task))

    def create_attachment(self, call: Call) -> Any:
        task = self._task(call)
        if call.multipart:
            name = call.form.get("name")
            if not name:
                raise ApiError(400, "Attachment name is required.")
            if call.upload is None:
                raise ApiError(400, "Attachment content is required.")
            _, content, content_type = call.upload
            attachment = self.engine.add_attachment(
                task,
                name,
                content=content,
                content_type=call.form.get("type") or content_type,
                description=call.form.get("description"),
                user=call.user,
            )
        else:
            body = call.json_object()
            if not body.get("name"):
                raise ApiError(400, "Attachment name is required.")
            attachment = self.engine.add_attachment(
                task,
                body["name"],
                content=b"",
                content_type=body.get("type"),
                description=body.get("description"),
                external_url=body.get("externalUrl"),
                user=call.user,
            )
        return attachment_json(call.site, task, attachment)

    def attachment_content(self, call: Call) -> Any:
        task = self._task(call, open_only=False)
        attachment = self._attachment(call, task)
        if attachment.file is None:
            raise ApiError(
                404, f"Attachment with id '{attachment.id}' doesn't have content associated with it."
            )
        content_type = (
            attachment.type if attachment.type and "/" in attachment.type else "application/octet-stream"
        )
        return self._stream(call, attachment.file, content_type)

    def list_comments(self, call: Call) -> Any:
        task = self._task(call, open_only=False)
        return [comment_json(call.site, task, c) for c in task.comments]

    def _comment(self, call: Call, task: TaskInstance) -> dict[str, Any]:
        raw = call.path["comment_id"]
        for comment in task.comments:
            if str(comment["id"]) == raw:
                return comment
        raise ApiError(404, f"Task '{task.id}' doesn't have a comment with id '{raw}'.")

    def create_comment(self, call: Call) -> Any:
        task = self._task(call, open_only=False)
        body = call.json_object()
        if not body.get("message"):
            raise ApiError(400, "Comment text is required.")
        save = boolean(body.get("saveProcessInstanceId"), "saveProcessInstanceId")
        with self.engine.lock:
            comment = {
                "id": self.engine.next_id(),
                "author": call.user,
                "message": str(body["message"]),
                "time": now(),
                "processInstanceId": str(task.instance.id) if save else None,
            }
            task.comments.append(comment)
        return comment_json(call.site, task, comment)

    def get_comment(self, call: Call) -> Any:
        task = self._task(call, open_only=False)
        return comment_json(call.site, task, self._comment(call, task))

    def delete_comment(self, call: Call) -> Any:
        task = self._task(call, open_only=False)
        comment = self._comment(call, task)
        with self.engine.lock:
            task.comments.remove(comment)
        return None


# ---- helpers -------------------------------------------------------------------------------------


async def _read(request: Request, site: Site) -> Call:
    call = Call(request=request, site=site, params=request.query_params, path=request.path_params)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        for key, value in form.multi_items():
            if isinstance(value, str):
                call.form[key] = value
            elif call.upload is None:
                content = await value.read()
                call.upload = (
                    value.filename or "",
                    content,
                    value.content_type or "application/octet-stream",
                )
        return call
    raw = await request.body()
    if raw:
        try:
            call.body = json.loads(raw)
        except ValueError:
            raise ApiError(400, "The request body is not valid JSON") from None
    return call


def _error(site: Site, status: int, message: str) -> JSONResponse:
    headers = None
    if status == 401:
        headers = {"WWW-Authenticate": 'Basic realm="Activiti"'}
    elif status == 405:
        headers = {"Allow": "GET"}  # the only 405 here: POST on WSO2's read-only deployments
    return JSONResponse(site.error(status, message), status_code=status, headers=headers)


def _id_set(criteria: Mapping[str, Any]) -> set[str] | None:
    """The ``processInstanceIds`` list filter of a query body; None when absent."""
    wanted = criteria.get("processInstanceIds")
    if wanted is None:
        return None
    if not isinstance(wanted, list):
        raise ApiError(400, "processInstanceIds must be an array")
    return {str(item) for item in wanted}


def _match(wanted: Any, actual: Any) -> bool:
    return wanted in (None, "") or str(wanted) == ("" if actual is None else str(actual))


def _like(pattern: Any, actual: Any) -> bool:
    """SQL ``LIKE`` with ``%`` wildcards, as the engines' ``...Like`` parameters."""
    if pattern in (None, ""):
        return True
    regex = "^" + ".*".join(re.escape(part) for part in str(pattern).split("%")) + "$"
    return re.match(regex, "" if actual is None else str(actual), re.DOTALL) is not None


def _flag(criteria: Mapping[str, Any], name: str, actual: bool) -> bool:
    wanted = boolean(criteria.get(name), name)
    return wanted is None or wanted == actual


def _get(criteria: Mapping[str, Any], call: Call, name: str) -> Any:
    return criteria.get(name) or call.params.get(name)


def _sorted_items(instance: Instance) -> list[DataValue]:
    return [instance.data[number] for number in sorted(instance.data)]


def _variables_match(instance: Instance, conditions: Any) -> bool:
    """Query ``variables: [{name, value, operation}]`` with equals / notEquals (enough for tests)."""
    if not conditions:
        return True
    if not isinstance(conditions, list):
        raise ApiError(400, "variables must be a list of {name, value, operation}")
    values = {item.definition.name: item.value for item in instance.data.values() if visible(item)}
    for condition in conditions:
        operation = condition.get("operation", "equals")
        if operation not in ("equals", "notEquals"):
            raise ApiError(400, f"Unsupported variable query operation: '{operation}'")
        equal = condition.get("name") in values and values[condition.get("name")] == condition.get("value")
        if equal != (operation == "equals"):
            return False
    return True


def _page(
    call: Call, rows: list[Any], keys: Mapping[str, Callable[[Any], Any]], render: Callable[[Any], Any]
) -> Any:
    rows, sort, order = sort_rows(rows, keys, call.params.get("sort"), call.params.get("order"))
    start, size = paging(call.params)
    data = [render(row) for row in rows[start : start + size]]
    return envelope(data, total=len(rows), start=start, size=size, sort=sort, order=order)


def _short_page(
    rows: list[Instance], start: int, size: int, variables: Callable[[Instance], list[Any]]
) -> list[Instance]:
    """flowable-engine #1348: the database pages over instance x variable rows, then de-duplicates."""
    joined = [instance for instance in rows for _ in range(max(1, len(variables(instance))))]
    page: list[Instance] = []
    for instance in joined[start : start + size]:
        if instance not in page:
            page.append(instance)
    return page
