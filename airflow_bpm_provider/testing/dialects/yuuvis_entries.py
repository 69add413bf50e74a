"""How the emulated yuuvis Momentum BPM engine shows engine objects, and what it reads from requests.

Process and task JSON follow the vendor's examples (Flowable's field names); variables are
``{name, type, value}``. DMS object ids are the ids of the engine's stored files.
"""

from __future__ import annotations

import re
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_bpm_provider.testing.engine import (
    CANCELLED,
    COMPLETED,
    FAILED,
    SUSPENDED,
    Instance,
    ProcessDefinition,
    StoredFile,
    TaskInstance,
)

ATTACHMENTS = "attachments"  # a FILE data item with this name is shown as the instance's attachments
VARIABLE_TYPES = ("string", "integer", "long", "short", "double", "boolean", "date", "json")


class ApiError(Exception):
    """An answer other than 2xx, with the status and the message the gateway would send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# Namespace of the emulated identity provider's user ids (any fixed UUID would do).
USER_ID_NAMESPACE = uuid.UUID("6f1c9a52-3e1b-4d8e-9a40-5b7e2d1c0f88")


def user_id_of(login: str | None) -> str | None:
    """The emulated yuuvis user id of ``login``: UUID-like (seed 002's ``startUserId``) and never
    equal to the login, as the identity provider's ids are not login names."""
    return None if login is None else str(uuid.uuid5(USER_ID_NAMESPACE, login))


@dataclass
class Session:
    user: str  # the login name (the engine keeps logins)
    tenant: str

    @property
    def user_id(self) -> str:
        """What the API calls the user: the identity provider's id, not the login."""
        return str(user_id_of(self.user))


@dataclass
class YuuvisState:
    """What the dialect keeps beside the engine: gateway sessions, tenants, free variables."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sessions: dict[str, Session] = field(default_factory=dict)
    tenant_of: dict[int, str] = field(default_factory=dict)  # instance id -> tenant that started it
    variables: dict[int, dict[str, tuple[str | None, Any]]] = field(default_factory=dict)
    owners: dict[int, str] = field(default_factory=dict)  # task id -> owner while delegated
    delegation: dict[int, str] = field(default_factory=dict)  # task id -> PENDING | RESOLVED


# The dialect's state of each engine, so a test can see what only yuuvis keeps (free variables).
_STATES: weakref.WeakKeyDictionary[Any, YuuvisState] = weakref.WeakKeyDictionary()


def state_of(engine: Any) -> YuuvisState:
    """The yuuvis dialect's state over ``engine`` (one per engine, made on first use)."""
    return _STATES.setdefault(engine, YuuvisState())


# ---- formatting ------------------------------------------------------------------------------


def timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    moment = value.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def definition_id(definition: ProcessDefinition) -> str:
    """Flowable's ``key:version:uuid``; the uuid is derived from the engine id, so it is stable."""
    return f"{definition.key}:{definition.version}:{uuid.UUID(int=definition.id)}"


def envelope(
    objects: list[Any], page: int, size: int, render: Callable[[Any], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """One page of ``objects``; ``render`` turns only the page's items into JSON (a listing of
    50,000 processes must not render all of them for every page)."""
    chunk = objects[page * size : (page + 1) * size]
    if render is not None:
        chunk = [render(item) for item in chunk]
    return {
        "objects": chunk,
        "numItems": len(chunk),
        "totalNumItems": len(objects),
        "hasMoreItems": (page + 1) * size < len(objects),
    }


def definition_json(definition: ProcessDefinition) -> dict[str, Any]:
    return {
        "id": definition_id(definition),
        "category": definition.category,
        "key": definition.key,
        "name": definition.name,
        "description": definition.description or None,
        "version": definition.version,
        "global": False,
        "startFormDefined": False,
        "suspended": not definition.enabled,
    }


def object_id(stored: StoredFile) -> str:
    return str(stored.id)


def delete_reason(instance: Instance) -> str | None:
    if instance.state == CANCELLED:
        return instance.delete_reason or "deleted"
    if instance.state == FAILED:
        return instance.delete_reason or "failed"
    return None


def process_json(instance: Instance, state: YuuvisState, *, with_variables: bool) -> dict[str, Any]:
    definition = instance.definition
    ended = instance.ended
    duration = None
    if ended and instance.ended_at is not None:
        duration = int((instance.ended_at - instance.started_at).total_seconds() * 1000)
    body: dict[str, Any] = {
        "id": str(instance.id),
        "name": instance.title,
        "businessKey": instance.business_key,
        "processDefinitionId": definition_id(definition),
        "processDefinitionName": definition.name,
        "processDefinitionDescription": definition.description or None,
        "startUserId": user_id_of(instance.started_by),
        "startTime": timestamp(instance.started_at),
        "deleteReason": delete_reason(instance),
        "endActivityId": "endEvent" if instance.state == COMPLETED else None,
        "startActivityId": "startEvent1",
        "durationInMillis": duration,
        "endTime": timestamp(instance.ended_at) if ended else None,
        "suspended": instance.state == SUSPENDED,
        "completed": ended,
        "variables": variables_json(instance, state) if with_variables else [],
    }
    attachments = [
        object_id(stored) for item, stored in instance.files() if item.definition.name == ATTACHMENTS
    ]
    if attachments:
        body["attachments"] = attachments
    return body


def variables_json(instance: Instance, state: YuuvisState) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for _, item in sorted(instance.data.items()):
        definition = item.definition
        if definition.type == "FILE":
            if definition.name == ATTACHMENTS or not item.value:
                continue
            ids = [object_id(stored) for stored in item.value]
            value: Any = ids[0] if len(ids) == 1 else ids
            out[definition.name] = _variable(definition.name, "string" if len(ids) == 1 else "json", value)
            continue
        if item.value is None:
            continue
        out[definition.name] = _variable(
            definition.name, _engine_type(definition.type, item.value), item.value
        )
    for name, (kind, value) in state.variables.get(instance.id, {}).items():
        out[name] = _variable(name, kind, value)
    return list(out.values())


def _variable(name: str, kind: str | None, value: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "value": value, "scope": "global"}


def _engine_type(data_type: str, value: Any) -> str:
    if data_type == "DECIMAL":
        return "integer" if isinstance(value, int) and not isinstance(value, bool) else "double"
    if data_type in ("DATE", "DATETIME"):
        return "date"
    if data_type == "BOOLEAN":
        return "boolean"
    return "string"


def task_json(task: TaskInstance, state: YuuvisState, *, with_variables: bool) -> dict[str, Any]:
    instance = task.instance
    return {
        "id": str(task.id),
        "name": task.definition.name,
        "description": None,
        "assignee": task.assignee,
        "owner": state.owners.get(task.id),
        "delegationState": state.delegation.get(task.id),
        "createTime": timestamp(task.created_at),
        "claimTime": timestamp(getattr(task, "claimed_at", None)),
        "dueDate": None,
        "formKey": None,
        "parentTaskId": None,
        "processDefinitionId": definition_id(instance.definition),
        "processInstanceId": str(instance.id),
        "taskDefinitionKey": task.definition.key,
        "suspended": instance.state == SUSPENDED,
        "variables": variables_json(instance, state) if with_variables else [],
    }


def dms_metadata(stored: StoredFile, instance: Instance) -> dict[str, Any]:
    """GET /api/dms/objects/{id}: properties plus one content stream (vendor example's fields)."""
    oid = object_id(stored)
    return {
        "objects": [
            {
                "properties": {
                    "system:objectId": {"value": oid},
                    "system:baseTypeId": {"value": "system:document"},
                    "system:objectTypeId": {"value": "document"},
                    "system:createdBy": {"value": instance.started_by},
                    "system:creationDate": {"value": timestamp(stored.created_at)},
                    "system:versionNumber": {"value": stored.version},
                    "system:contentStreamLength": {"value": stored.size},
                    "system:contentStreamFileName": {"value": stored.name},
                },
                "contentStreams": [
                    {
                        "contentStreamId": f"cs-{oid}",
                        "length": stored.size,
                        "mimeType": stored.content_type,
                        "fileName": stored.name,
                        "repositoryId": "emulator",
                    }
                ],
            }
        ]
    }


# ---- reading requests ------------------------------------------------------------------------


def query_bool(params: Mapping[str, str], name: str) -> bool | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    text = value.strip().lower()
    if text not in ("true", "false"):
        raise ApiError(400, f"Failed to convert value '{value}' of parameter '{name}' to boolean")
    return text == "true"


def query_int(
    params: Mapping[str, str], name: str, default: int | None = None, minimum: int = 0
) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"Failed to convert value '{value}' of parameter '{name}' to int") from None
    if number < minimum:
        raise ApiError(400, f"parameter '{name}' must be at least {minimum}, got {number}")
    return number


def query_date(params: Mapping[str, str], name: str) -> datetime | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ApiError(400, f"parameter '{name}' is not an ISO 8601 date: '{value}'") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def query_sort(params: Mapping[str, str]) -> bool:
    """True for descending."""
    value = (params.get("sort") or "asc").strip().lower()
    if value not in ("asc", "desc"):
        raise ApiError(400, f"sort must be asc or desc, got '{params.get('sort')}'")
    return value == "desc"


def like(pattern: str, value: str | None, *, ignore_case: bool = False) -> bool:
    """SQL LIKE with ``%`` (any run) and ``_`` (one character)."""
    if value is None:
        return False
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, (re.IGNORECASE | re.DOTALL) if ignore_case else re.DOTALL) is not None


def read_variables(raw: Any) -> dict[str, tuple[str | None, Any]]:
    """``[{name, type?, value}]`` checked like Flowable: known type, value that fits it."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise ApiError(400, "variables must be a list of {name, type, value}")
    out: dict[str, tuple[str | None, Any]] = {}
    for item in raw:
        if not isinstance(item, dict) or not item.get("name"):
            raise ApiError(400, f"Variable name is required: {item!r}")
        name, kind, value = str(item["name"]), item.get("type"), item.get("value")
        if kind is not None and kind not in VARIABLE_TYPES:
            raise ApiError(400, f"Variable '{name}': type '{kind}' is not supported")
        out[name] = (kind or _infer_type(value), _check_variable(name, kind, value))
    return out


def _infer_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    if isinstance(value, dict | list):
        return "json"
    return "string"


def _check_variable(name: str, kind: str | None, value: Any) -> Any:
    if value is None or kind in (None, "json"):
        return value
    wrong = ApiError(400, f"Variable '{name}': value {value!r} is not of type {kind}")
    if kind in ("integer", "long", "short"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return value
    if kind == "double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise wrong
        return value
    if kind == "date":
        try:
            datetime.fromisoformat(str(value))
        except ValueError:
            raise wrong from None
        return str(value)
    return str(value)


def split_variables(
    instance_or_definition: Instance | ProcessDefinition, variables: Mapping[str, tuple[str | None, Any]]
) -> tuple[dict[str, Any], dict[str, tuple[str | None, Any]]]:
    """Values for the definition's data items (checked by the engine) and free variables."""
    definition = (
        instance_or_definition.definition
        if isinstance(instance_or_definition, Instance)
        else instance_or_definition
    )
    defined: dict[str, Any] = {}
    free: dict[str, tuple[str | None, Any]] = {}
    for name, (kind, value) in variables.items():
        item = definition.data_by_name(name)
        if item is None or item.type == "FILE":
            free[name] = (kind, value)
        else:
            defined[name] = value
    return defined, free
