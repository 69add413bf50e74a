"""What the yuuvis Momentum BPM engine API sends and expects, as pure functions.

Filters, typed variables, process states, paging and the DMS references of a process. Facts
the vendor documentation does not confirm are marked "(unverified)", one function each.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from airflow_bpm_provider.exceptions import BpmConfigError
from airflow_bpm_provider.hooks.answers import parse_json
from airflow_bpm_provider.models import ProcessState, Task

INT32 = 2**31

# Pythonic filter name -> query parameter of GET /bpm-engine/api/processes (seed 002).
PROCESS_FILTERS: dict[str, str] = {
    "business_key": "businessKey",
    "business_key_like": "businessKeyLike",
    "exclude_subprocesses": "excludeSubprocesses",
    "include_process_variables": "includeProcessVariables",
    "involved_user": "involvedUser",
    "name": "name",
    "name_like": "nameLike",
    "name_like_ignore_case": "nameLikeIgnoreCase",
    "process_definition_category": "processDefinitionCategory",
    "process_definition_id": "processDefinitionId",
    "process_definition_key": "processDefinitionKey",
    "process_definition_version": "processDefinitionVersion",
    "started_after": "startedAfter",
    "started_before": "startedBefore",
    "started_by": "startedBy",
    "sub_process_instance_id": "subProcessInstanceId",
    "super_process_instance_id": "superProcessInstanceId",
    "suspended": "suspended",
    "is_completed": "isCompleted",
    "sort": "sort",
}

# GET /bpm-engine/api/tasks (vendor documentation of 2021 Autumn and later).
TASK_FILTERS: dict[str, str] = {
    "process_instance_id": "processInstanceId",  # (unverified) see task_query
    "process_definition_id": "processDefinitionId",
    "process_definition_key": "processDefinitionKey",
    "process_definition_key_like": "processDefinitionKeyLike",
    "name": "name",
    "name_like": "nameLike",
    "description": "description",
    "include_process_variables": "includeProcessVariables",
    "created_after": "createdAfter",
    "created_before": "createdBefore",
    "created_on": "createdOn",
    "due_after": "dueAfter",
    "due_before": "dueBefore",
    "due_on": "dueOn",
    "is_assigned": "isAssigned",
    "sort": "sort",
}

# GET /bpm-engine/api/process-definitions.
DEFINITION_FILTERS: dict[str, str] = {
    "category": "category",
    "category_like": "categoryLike",
    "category_not_equals": "categoryNotEquals",
    "key": "key",
    "key_like": "keyLike",
    "latest": "latest",
    "name": "name",
    "name_like": "nameLike",
    "startable_by_user": "startableByUser",
    "suspended": "suspended",
    "version": "version",
    "sort": "sort",
}

BOOLEAN_PARAMS = frozenset(
    {
        "excludeSubprocesses",
        "includeProcessVariables",
        "suspended",
        "isCompleted",
        "latest",
        "isAssigned",
    }
)
INTEGER_PARAMS = frozenset({"processDefinitionVersion", "version"})
DATE_PARAMS = frozenset(
    {
        "startedAfter",
        "startedBefore",
        "createdAfter",
        "createdBefore",
        "createdOn",
        "dueAfter",
        "dueBefore",
        "dueOn",
    }
)


def has_more_items(body: Mapping[str, Any], received: int, size: int) -> bool:
    """``hasMoreItems`` decides; without it (never seen, but cheap to survive) a full page means more."""
    more = body.get("hasMoreItems")
    if isinstance(more, bool):
        return more
    if isinstance(more, str):
        return more.strip().lower() == "true"
    return received >= size > 0


def first_object(body: Any) -> Any:
    """A single object, also when it comes wrapped in the list envelope.

    The documentation shows POST /processes (and an old GET /processes/{id}) answering with the
    ``objects`` envelope, the current GET /processes/{id} with the bare object: accept both.
    """
    if isinstance(body, Mapping) and "id" not in body and isinstance(body.get("objects"), list):
        return body["objects"][0] if body["objects"] else {}
    return body


def definition_key(raw: Mapping[str, Any]) -> str | None:
    """The definition key: Flowable ids are ``key:version:uuid``."""
    if raw.get("processDefinitionKey"):
        return str(raw["processDefinitionKey"])
    definition_id = raw.get("processDefinitionId")
    if not definition_id:
        return None
    return str(definition_id).split(":", 1)[0]


def process_state(raw: Mapping[str, Any]) -> tuple[ProcessState, str]:
    """Ended ⇔ ``endTime`` set (or ``completed`` true); a ``deleteReason`` means it was cancelled."""
    ended = bool(raw.get("endTime")) or raw.get("completed") is True
    if ended:
        reason = raw.get("deleteReason")
        if reason:
            return ProcessState.CANCELLED, f"deleted: {reason}"
        return ProcessState.COMPLETED, "completed"
    if raw.get("suspended") is True:
        return ProcessState.SUSPENDED, "suspended"
    return ProcessState.RUNNING, "active"


def parse_timestamp(value: Any) -> datetime | None:
    """``2021-11-01T12:28:46.363Z`` or ``2018-04-17T10:17:43.902+0000`` (both in the documentation)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def format_query_date(value: Any, *, name: str, conn_id: str | None = None) -> str:
    """A date filter value: ISO 8601 in UTC with milliseconds and ``Z``.

    (unverified) The documentation types ``startedAfter``/``startedBefore`` as "string" without a
    format; this one mirrors the ``startTime`` the engine returns. Naive values are taken as UTC,
    as everywhere in Airflow.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise BpmConfigError(
                f"filter '{name}' must be an ISO 8601 date-time (e.g. 2024-05-01T08:00:00Z), got {value!r}",
                conn_id=conn_id,
            ) from None
    else:
        raise BpmConfigError(
            f"filter '{name}' must be a datetime or an ISO 8601 string, got {type(value).__name__}",
            conn_id=conn_id,
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _format_param(vendor: str, value: Any, *, name: str, conn_id: str | None) -> Any:
    if vendor in BOOLEAN_PARAMS:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower()
        raise BpmConfigError(f"filter '{name}' must be true or false, got {value!r}", conn_id=conn_id)
    if vendor in INTEGER_PARAMS:
        try:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise BpmConfigError(
                f"filter '{name}' must be an integer, got {value!r}", conn_id=conn_id
            ) from None
    if vendor in DATE_PARAMS:
        return format_query_date(value, name=name, conn_id=conn_id)
    if vendor == "sort":
        text = str(value).strip().lower()
        if text not in ("asc", "desc"):
            raise BpmConfigError(f"filter '{name}' must be 'asc' or 'desc', got {value!r}", conn_id=conn_id)
        return text
    return str(value)


def vendor_params(
    filters: Mapping[str, Any],
    names: Mapping[str, str],
    *,
    what: str,
    system: str,
    conn_id: str,
    also_known: Sequence[str] = (),
) -> dict[str, Any]:
    """Pythonic or vendor filter names to query parameters; unknown names are refused by name."""
    vendor_names = set(names.values())
    params: dict[str, Any] = {}
    unknown = []
    for name, value in filters.items():
        vendor = names.get(name) or (name if name in vendor_names else None)
        if vendor is None:
            unknown.append(name)
            continue
        if value is None:
            continue
        params[vendor] = _format_param(vendor, value, name=name, conn_id=conn_id)
    if unknown:
        known = ", ".join(sorted({*names, *also_known}))
        raise BpmConfigError(
            f"unknown {what}(s) for {system}: {', '.join(sorted(unknown))}; known: {known}",
            conn_id=conn_id,
        )
    return params


def state_params(states: frozenset[ProcessState] | None) -> dict[str, str]:
    """What the API can filter: ``isCompleted`` and ``suspended``; the rest is checked per result.

    RUNNING → isCompleted=false & suspended=false; SUSPENDED → suspended=true; RUNNING+SUSPENDED →
    isCompleted=false; only ended states (COMPLETED, CANCELLED, FAILED) → isCompleted=true. A
    mix of running and ended states is not narrowed on the server.
    """
    if not states:
        return {}
    live = {ProcessState.RUNNING, ProcessState.SUSPENDED}
    if states == {ProcessState.RUNNING}:
        return {"isCompleted": "false", "suspended": "false"}
    if states == {ProcessState.SUSPENDED}:
        return {"suspended": "true"}
    if states <= live:
        return {"isCompleted": "false"}
    if not states & live:
        return {"isCompleted": "true"}
    return {}


def positive_page_size(value: Any, *, conn_id: str) -> int:
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if size < 1:
        raise BpmConfigError(f"page_size must be a positive integer, got {value!r}", conn_id=conn_id)
    return size


def task_query(*, process_instance_id: str | None, name: str | None) -> dict[str, Any]:
    """Query parameters for the open tasks of one process and/or with one name.

    (unverified) ``processInstanceId`` is documented for the gateway's /api-web/api/bpm/tasks and
    for Flowable, not in the excerpts of /bpm-engine/api/tasks we could read; the hook therefore
    filters the answer by process instance as well.
    """
    params: dict[str, Any] = {}
    if process_instance_id is not None:
        params["processInstanceId"] = str(process_instance_id)
    if name is not None:
        params["name"] = name
    return params


def task_from(raw: Mapping[str, Any]) -> Task:
    assignee = raw.get("assignee")
    pid = raw.get("processInstanceId")
    return Task(
        id=str(raw["id"]),
        name=raw.get("name"),
        process_instance_id=str(pid) if pid is not None else None,
        assignee=str(assignee) if assignee else None,
        state="CLAIMED" if assignee else "OPEN",
        raw=dict(raw),
    )


def typed_variable(name: str, value: Any, *, conn_id: str | None = None) -> dict[str, Any]:
    """One Flowable REST variable ``{name, type, value}`` from a Python value.

    str → string, bool → boolean, int → integer (long beyond 32 bits), float/Decimal → double,
    datetime/date → date (ISO 8601, UTC, ``Z``), None → value null without a type, dict/list →
    json (unverified: Flowable's json type; yuuvis documents only ``type`` as free text).
    """
    if value is None:
        return {"name": name, "value": None}
    if isinstance(value, bool):
        return {"name": name, "type": "boolean", "value": value}
    if isinstance(value, int):
        return {"name": name, "type": "integer" if -INT32 <= value < INT32 else "long", "value": value}
    if isinstance(value, float | Decimal):
        return {"name": name, "type": "double", "value": float(value)}
    if isinstance(value, datetime | date):
        return {"name": name, "type": "date", "value": format_query_date(value, name=name, conn_id=conn_id)}
    if isinstance(value, str):
        return {"name": name, "type": "string", "value": value}
    if isinstance(value, Mapping | list | tuple):
        return {"name": name, "type": "json", "value": _jsonable(value, name=name, conn_id=conn_id)}
    raise BpmConfigError(
        f"variable '{name}' has a type yuuvis cannot take: {type(value).__name__}; use str, bool, int, "
        "float, datetime or a {name, type, value} dict",
        conn_id=conn_id,
    )


def _jsonable(value: Any, *, name: str, conn_id: str | None) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError, RecursionError):  # RecursionError: nested too deeply
        raise BpmConfigError(f"variable '{name}' cannot be sent as JSON", conn_id=conn_id) from None


def typed_variables(
    variables: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None, *, conn_id: str | None = None
) -> list[dict[str, Any]]:
    """A mapping is typed value by value; a list of ``{name, type?, value}`` dicts passes as it is."""
    if not variables:
        return []
    if isinstance(variables, Mapping):
        return [typed_variable(str(name), value, conn_id=conn_id) for name, value in variables.items()]
    if isinstance(variables, Sequence) and not isinstance(variables, str | bytes):
        out = []
        for item in variables:
            if not isinstance(item, Mapping) or not item.get("name"):
                raise BpmConfigError(
                    f"a variable list must hold {{name, type, value}} dicts, got {item!r}", conn_id=conn_id
                )
            out.append(dict(item))
        return out
    raise BpmConfigError(
        f"variables must be a dict or a list of {{name, type, value}} dicts, got {type(variables).__name__}",
        conn_id=conn_id,
    )


def document_references(process: Mapping[str, Any], variable_names: Sequence[str]) -> list[tuple[str, str]]:
    """(DMS object id, where it was found) for every document the process references, in order.

    Variables named in ``variable_names`` hold one object id or a list of them (or a JSON text of
    a list). The documentation recommends ``documentId`` for the document a process is about.
    """
    seen: set[str] = set()
    refs: list[tuple[str, str]] = []

    def add(object_id: Any, group: str) -> None:
        text = str(object_id).strip() if object_id is not None else ""
        if text and text not in seen:
            seen.add(text)
            refs.append((text, group))

    variables = process.get("variables") or []
    by_name: dict[str, Any] = {}
    if isinstance(variables, list):
        for variable in variables:
            if isinstance(variable, Mapping) and variable.get("name") is not None:
                by_name.setdefault(str(variable["name"]), variable.get("value"))
    elif isinstance(variables, Mapping):
        by_name.update({str(k): v for k, v in variables.items()})
    for name in variable_names:
        for object_id in _ids(by_name.get(name)):
            add(object_id, name)
    for object_id in attachment_ids(process):
        add(object_id, "attachments")
    return refs


def attachment_ids(process: Mapping[str, Any]) -> list[str]:
    """(unverified) Object ids in the process's ``attachments``.

    The gateway's /api-web/api/bpm/process/instances documents ``attachments`` as a list of
    strings; that the BPM engine's own process answer carries the same field is an assumption.
    Entries that are dicts with an ``id``/``objectId`` are accepted too.
    """
    out = []
    for item in _ids(process.get("attachments")):
        out.append(item)
    return out


def _ids(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return _ids(parse_json(text.encode("utf-8")))
            except ValueError:  # not JSON, or nested too deeply to be a list of ids
                return [text]
        return [text] if text else []
    if isinstance(value, Mapping):
        found = value.get("objectId") or value.get("id")
        return [str(found)] if found else []
    if isinstance(value, list | tuple):
        return [item for entry in value for item in _ids(entry)]
    return [str(value)]


def content_stream(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    """The first content stream of DMS metadata: ``{fileName, length, mimeType, ...}``."""
    streams = metadata.get("contentStreams") if isinstance(metadata, Mapping) else None
    if isinstance(streams, list) and streams and isinstance(streams[0], Mapping):
        return dict(streams[0])
    return None


def int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
