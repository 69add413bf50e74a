"""How the emulated Activiti / Flowable REST API shows engine objects, and what it reads from requests.

Three flavours share one engine and differ where the real servers differ:

- ``wso2`` (``/bpmn``, WSO2 EI with Activiti 5.21): errors ``{"statusCode", "errorMessage"}`` as in
  WSO2's documentation; task answers carry URLs (``processInstance``) rather than ids, as in its
  documented examples; no Flowable-only fields;
- ``activiti`` (``/activiti-rest/service``): Activiti 5.21 field names, errors
  ``{"message", "exception"}``;
- ``flowable`` (``/flowable-rest/service``): adds Flowable's newer fields (``startTime``,
  ``processDefinitionName``, ``json`` variables, ``outcome`` on complete).

Ids are the engine's integer ids as strings; a definition id is ``key:version:engineId``.
Variables are the instance's data items by name; binary ones are single-file FILE items.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from airflow_bpm_provider.testing.engine import (
    Attachment,
    DataValue,
    Deployment,
    Instance,
    ProcessDefinition,
    StoredFile,
    TaskInstance,
)

PREFIXES = {"/bpmn": "wso2", "/activiti-rest/service": "activiti", "/flowable-rest/service": "flowable"}
DEFAULT_SIZE = 10
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
NUMBER_TYPES = {"short": (-(2**15), 2**15 - 1), "integer": INT32, "long": INT64}


class ApiError(Exception):
    """An answer other than 2xx, with the status and the engine's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Site:
    """Where a request came in: its flavour and the URL root that answers' ``url`` fields use."""

    def __init__(self, scheme_host: str, path: str) -> None:
        self.flavour = "activiti"
        self.root = scheme_host
        for prefix, flavour in PREFIXES.items():
            if path == prefix or path.startswith(prefix + "/"):
                self.flavour, self.root = flavour, scheme_host + prefix
                break

    @property
    def flowable(self) -> bool:
        return self.flavour == "flowable"

    def url(self, *parts: object) -> str:
        return "/".join([self.root, *(str(part) for part in parts)])

    def error(self, status: int, message: str) -> dict[str, Any]:
        if self.flavour == "wso2":
            return {"statusCode": status, "errorMessage": message}
        return {"message": HTTPStatus(status).phrase, "exception": message}


# ---- formatting ------------------------------------------------------------------------------


def timestamp(value: datetime | None) -> str | None:
    """The engines' ``2015-01-17T10:17:43.902+0000``."""
    if value is None:
        return None
    moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


# RequestUtil.getDate of Activiti 5.21 / WSO2 EI: "yyyy-MM-dd'T'HH:mm:ssz" after a trailing Z or
# the last six characters ("+hh:mm") became a GMT zone; nothing else parses.
QUERY_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})")


def query_time(value: Any, name: str, site: Site) -> datetime | None:
    """A date from the URL's query string, as strictly as the flavour's server reads it."""
    if value in (None, ""):
        return None
    if not site.flowable and not QUERY_DATE.fullmatch(str(value).strip()):
        raise ApiError(400, f"Failed to parse date {value}")
    return parse_time(str(value).strip(), name)


def parse_time(value: Any, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ApiError(400, f"Failed to parse date {value!r} of '{name}'") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def definition_id(definition: ProcessDefinition) -> str:
    return f"{definition.key}:{definition.version}:{definition.id}"


def engine_id(text: str) -> int | None:
    """The engine id inside a REST id (``"42"`` or ``"key:1:42"``); None if there is none."""
    tail = str(text).rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


def envelope(
    rows: list[dict[str, Any]], *, total: int, start: int, size: int, sort: str, order: str
) -> dict[str, Any]:
    return {"data": rows, "total": total, "start": start, "sort": sort, "order": order, "size": len(rows)}


def paging(source: Mapping[str, Any], fallback: Mapping[str, Any] | None = None) -> tuple[int, int]:
    """``start`` and ``size`` from the body of a query, else from the URL (both engines do so)."""

    def number(name: str, default: int) -> int:
        for where in (source, fallback or {}):
            if where.get(name) not in (None, ""):
                try:
                    return max(int(where[name]), 0)
                except (TypeError, ValueError):
                    raise ApiError(400, f"Value for param '{name}' is not a valid number") from None
        return default

    return number("start", 0), number("size", DEFAULT_SIZE)


def sort_rows(
    items: list[Any], keys: Mapping[str, Callable[[Any], Any]], sort: str | None, order: str | None
) -> tuple[list[Any], str, str]:
    sort = sort or next(iter(keys))
    if sort not in keys:
        raise ApiError(400, f"Value for param 'sort' is not valid, '{sort}' is not a valid property")
    order = (order or "asc").lower()
    if order not in ("asc", "desc"):
        raise ApiError(400, f"Value for param 'order' is not valid, '{order}' must be 'asc' or 'desc'")
    key = keys[sort]
    ordered = sorted(items, key=lambda item: _sortable(key(item)), reverse=order == "desc")
    return ordered, sort, order


def _sortable(value: Any) -> tuple[int, Any]:
    return (0, "") if value is None else (1, value)


def boolean(value: Any, name: str) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "false"):
        return text == "true"
    raise ApiError(400, f"Value for param '{name}' is not a valid boolean: {value!r}")


# ---- repository ------------------------------------------------------------------------------


def deployment_json(site: Site, deployment: Deployment) -> dict[str, Any]:
    body = {
        "id": str(deployment.id),
        "name": deployment.name,
        "deploymentTime": timestamp(deployment.deployed_at),
        "category": deployment.category,
        "url": site.url("repository", "deployments", deployment.id),
        "tenantId": deployment.tenant_id,
    }
    if site.flowable:
        body["parentDeploymentId"] = str(deployment.id)
    return body


def implicit_deployment(definition: ProcessDefinition) -> Deployment:
    """Definitions seeded from Python have no uploaded model; they get a deployment of their own id."""
    return Deployment(
        id=definition.id,
        name=f"{definition.key}.bpmn20.xml",
        tenant_id=definition.tenant_id,
        deployed_at=definition.deployed_at,
    )


def deployment_of(definition: ProcessDefinition) -> int:
    return definition.deployment_id if definition.deployment_id is not None else definition.id


def definition_json(site: Site, definition: ProcessDefinition) -> dict[str, Any]:
    deployment = deployment_of(definition)
    return {
        "id": definition_id(definition),
        "url": site.url("repository", "process-definitions", definition_id(definition)),
        "key": definition.key,
        "version": definition.version,
        "name": definition.name,
        "description": definition.description or None,
        "tenantId": definition.tenant_id,
        "deploymentId": str(deployment),
        "deploymentUrl": site.url("repository", "deployments", deployment),
        "resource": site.url(
            "repository", "deployments", deployment, "resources", f"{definition.key}.bpmn20.xml"
        ),
        "diagramResource": None,
        "category": definition.category,
        "graphicalNotationDefined": False,
        "suspended": not definition.enabled,
        "startFormDefined": False,
    }


# ---- process instances -----------------------------------------------------------------------


def current_activity(instance: Instance) -> str | None:
    for task in instance.definition.tasks:
        if task.node_number == instance.current_node:
            return task.key
    return None


def runtime_json(
    site: Site, instance: Instance, *, variables: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    definition = instance.definition
    body: dict[str, Any] = {
        "id": str(instance.id),
        "url": site.url("runtime", "process-instances", instance.id),
        "businessKey": instance.business_key,
        "suspended": instance.state == "SUSPENDED",
        "ended": instance.ended,
        "processDefinitionId": definition_id(definition),
        "processDefinitionUrl": site.url("repository", "process-definitions", definition_id(definition)),
        "activityId": current_activity(instance),
        "variables": variables or [],
        "tenantId": definition.tenant_id,
        "completed": instance.ended and instance.delete_reason is None,
    }
    if site.flowable:
        body.update(
            {
                "name": instance.title,
                "processDefinitionName": definition.name,
                "processDefinitionDescription": definition.description or None,
                "startUserId": instance.started_by,
                "startTime": timestamp(instance.started_at),
            }
        )
    return body


def history_json(site: Site, instance: Instance) -> dict[str, Any]:
    definition = instance.definition
    duration = None
    if instance.ended_at is not None:
        duration = int((instance.ended_at - instance.started_at).total_seconds() * 1000)
    body: dict[str, Any] = {
        "id": str(instance.id),
        "url": site.url("history", "historic-process-instances", instance.id),
        "businessKey": instance.business_key,
        "processDefinitionId": definition_id(definition),
        "processDefinitionUrl": site.url("repository", "process-definitions", definition_id(definition)),
        "startTime": timestamp(instance.started_at),
        "endTime": timestamp(instance.ended_at),
        "durationInMillis": duration,
        "startUserId": instance.started_by,
        "startActivityId": "start",
        "endActivityId": ("end" if instance.ended and instance.delete_reason is None else None),
        "deleteReason": instance.delete_reason if instance.ended else None,
        "superProcessInstanceId": None,
        "variables": [],
        "tenantId": definition.tenant_id,
    }
    if site.flowable:
        body.update({"name": instance.title, "processDefinitionName": definition.name})
    return body


# ---- variables -------------------------------------------------------------------------------


def visible(item: DataValue) -> bool:
    """A variable exists once it was set (declared data items without a value are not shown)."""
    if item.definition.type == "FILE":
        return bool(item.value)
    return item.value not in (None, [], "") or item.definition.vendor_type is not None


def rest_type(item: DataValue) -> str:
    definition = item.definition
    if definition.vendor_type:
        return definition.vendor_type
    kind = definition.type
    if kind == "FILE":
        return "binary"
    if kind == "BOOLEAN":
        return "boolean"
    if kind in ("DATE", "DATETIME"):
        return "date"
    if kind == "JSON":
        return "json"
    if kind == "DECIMAL":
        value = item.value
        if isinstance(value, int) and not isinstance(value, bool):
            return "integer" if INT32[0] <= value <= INT32[1] else "long"
        return "double"
    return "string"


def rest_value(item: DataValue) -> Any:
    kind = rest_type(item)
    value = item.value
    if kind in ("binary", "serializable") or value is None:
        return None
    if kind == "date":
        if isinstance(value, datetime):
            return timestamp(value)
        return str(value)
    if isinstance(value, list) and kind == "string":
        return ", ".join(str(v) for v in value)
    return value


def variable_json(
    site: Site, instance: Instance, item: DataValue, *, history: bool = False
) -> dict[str, Any]:
    kind = rest_type(item)
    body: dict[str, Any] = {"name": item.definition.name, "type": kind, "value": rest_value(item)}
    if kind in ("binary", "serializable"):
        area = ("history", "historic-process-instances") if history else ("runtime", "process-instances")
        body["valueUrl"] = site.url(*area, instance.id, "variables", item.definition.name, "data")
    if not history:
        body["scope"] = "local"
    return body


def variable_file(item: DataValue) -> StoredFile | None:
    """A binary variable's content: the newest file of its FILE item."""
    if item.definition.type != "FILE" or not item.value:
        return None
    return item.value[-1]


def read_variable(site: Site, raw: Any) -> tuple[str, str, str | None, Any]:
    """``(name, engine type, vendor type, value)`` of a REST variable, or 400 like the engine."""
    if not isinstance(raw, Mapping):
        raise ApiError(400, "A variable must be a JSON object with a name and a value")
    name = raw.get("name")
    if not name:
        raise ApiError(400, "Variable name is required")
    kind = raw.get("type")
    value = raw.get("value")
    if value is None:
        # A null variable keeps the type it was sent with, or the engine's "null" type.
        return name, "STRING", kind or "null", None
    if kind is None:
        kind = _guess_type(name, value)
    if kind == "string":
        if not isinstance(value, str):
            raise ApiError(400, f"Variable '{name}': converter can only convert strings")
        return name, "STRING", None, value
    if kind in NUMBER_TYPES:
        if not isinstance(value, int | float) or isinstance(value, bool) or value != int(value):
            raise ApiError(400, f"Variable '{name}': converter can only convert {kind}s")
        low, high = NUMBER_TYPES[kind]
        if not low <= int(value) <= high:
            raise ApiError(400, f"Variable '{name}': {value} does not fit type {kind}")
        return name, "DECIMAL", kind, int(value)
    if kind == "double":
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise ApiError(400, f"Variable '{name}': converter can only convert doubles")
        return name, "DECIMAL", kind, float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ApiError(400, f"Variable '{name}': converter can only convert booleans")
        return name, "BOOLEAN", None, value
    if kind == "date":
        if not isinstance(value, str):
            raise ApiError(400, f"Variable '{name}': converter can only convert dates as ISO 8601 strings")
        try:
            return name, "DATETIME", None, parse_time(value, name)
        except ApiError:
            raise ApiError(400, f"Variable '{name}': {value!r} is not an ISO 8601 date") from None
    if kind == "json" and site.flowable:
        return name, "JSON", None, value
    if kind in ("binary", "serializable"):
        raise ApiError(400, f"Variable '{name}': {kind} values must be uploaded as multipart/form-data")
    raise ApiError(400, f"Variable '{name}' has unsupported type: '{kind}'.")


def _guess_type(name: str, value: Any) -> str:
    """No explicit type: the engine takes the JSON value's own type."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if INT32[0] <= value <= INT32[1] else "long"
    if isinstance(value, float):
        return "double"
    raise ApiError(400, f"Variable '{name}': no type given and the value is neither text, number nor boolean")


# ---- tasks -----------------------------------------------------------------------------------


def task_json(site: Site, task: TaskInstance) -> dict[str, Any]:
    instance = task.instance
    definition = instance.definition
    body: dict[str, Any] = {
        "id": str(task.id),
        "url": site.url("runtime", "tasks", task.id),
        "owner": task.owner,
        "assignee": task.assignee,
        "delegationState": task.delegation,
        "name": task.name,
        "description": task.description,
        "createTime": timestamp(task.created_at),
        "dueDate": timestamp(task.due_at),
        "priority": task.priority,
        "suspended": instance.state == "SUSPENDED",
        "taskDefinitionKey": task.definition.key,
        "tenantId": definition.tenant_id or None,
    }
    if site.flavour == "wso2":
        # The shape of WSO2's documented examples: links instead of ids.
        body.update(
            {
                "execution": site.url("runtime", "executions", instance.id),
                "parentTask": None,
                "processDefinition": site.url("repository", "process-definitions", definition_id(definition)),
                "processInstance": site.url("runtime", "process-instances", instance.id),
            }
        )
        return body
    body.update(
        {
            "category": None,
            "formKey": None,
            "parentTaskId": None,
            "parentTaskUrl": None,
            "executionId": str(instance.id),
            "executionUrl": site.url("runtime", "executions", instance.id),
            "processInstanceId": str(instance.id),
            "processInstanceUrl": site.url("runtime", "process-instances", instance.id),
            "processDefinitionId": definition_id(definition),
            "processDefinitionUrl": site.url("repository", "process-definitions", definition_id(definition)),
            "variables": [],
        }
    )
    if site.flowable:
        body["claimTime"] = timestamp(task.claimed_at)
    return body


def historic_task_json(site: Site, task: TaskInstance) -> dict[str, Any]:
    instance = task.instance
    return {
        "id": str(task.id),
        "url": site.url("history", "historic-task-instances", task.id),
        "processDefinitionId": definition_id(instance.definition),
        "processInstanceId": str(instance.id),
        "processInstanceUrl": site.url("history", "historic-process-instances", instance.id),
        "executionId": str(instance.id),
        "name": task.name,
        "description": task.description,
        "deleteReason": (instance.delete_reason if task.ended_at and instance.delete_reason else None),
        "owner": task.owner,
        "assignee": task.assignee,
        "startTime": timestamp(task.created_at),
        "endTime": timestamp(task.ended_at),
        "durationInMillis": (
            int((task.ended_at - task.created_at).total_seconds() * 1000) if task.ended_at else None
        ),
        "taskDefinitionKey": task.definition.key,
        "priority": task.priority,
        "dueDate": timestamp(task.due_at),
        "tenantId": instance.definition.tenant_id,
    }


def attachment_json(site: Site, task: TaskInstance, attachment: Attachment) -> dict[str, Any]:
    content = None
    if attachment.file is not None:
        content = site.url("runtime", "tasks", task.id, "attachments", attachment.id, "content")
    return {
        "id": str(attachment.id),
        "url": site.url("runtime", "tasks", task.id, "attachments", attachment.id),
        "name": attachment.name,
        "userId": attachment.user,
        "description": attachment.description,
        "type": attachment.type,
        "taskUrl": site.url("runtime", "tasks", task.id),
        "processInstanceUrl": site.url("history", "historic-process-instances", task.instance.id),
        "externalUrl": attachment.external_url,
        "contentUrl": content,
        "time": timestamp(attachment.created_at),
    }


def comment_json(site: Site, task: TaskInstance, comment: Mapping[str, Any]) -> dict[str, Any]:
    instance_id = comment.get("processInstanceId")
    return {
        "id": str(comment["id"]),
        "author": comment.get("author"),
        "message": comment.get("message"),
        "time": timestamp(comment.get("time")),
        "taskId": str(task.id),
        "taskUrl": site.url("runtime", "tasks", task.id, "comments", comment["id"]),
        "processInstanceId": instance_id,
        "processInstanceUrl": (
            site.url("history", "historic-process-instances", instance_id, "comments", comment["id"])
            if instance_id
            else None
        ),
    }
