"""Activiti / Flowable REST answers to the provider's vendor-neutral models.

Runtime answers (``runtime/process-instances``) know suspension but not the end; history answers
(``history/historic-process-instances``) know the end and the delete reason but not suspension.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from airflow_bpm_provider.hooks.activiti_variables import parse_date
from airflow_bpm_provider.models import ProcessInstance, ProcessState, Task


def definition_id(raw: Mapping[str, Any]) -> str | None:
    """``processDefinitionId``, else the id at the end of the definition's URL.

    Activiti 5.21 (WSO2 EI) answers carry the definition as a URL: ``processDefinitionUrl`` on
    instances, ``processDefinition`` on tasks (seed 004, ".../process-definitions/
    bpmnTaskProcess%3A1%3A4"); its last path segment is the id, percent-encoded.
    """
    value = raw.get("processDefinitionId")
    if value:
        # The Activiti 5.21 user guide prints the id percent-encoded ("oneTaskProcess%3A1%3A4").
        return unquote(str(value)) if ":" not in str(value) else str(value)
    url = raw.get("processDefinitionUrl") or raw.get("processDefinition")
    segment = last_segment(str(url).split("?", 1)[0].split("#", 1)[0]) if isinstance(url, str) else None
    return unquote(segment) if segment else None


def definition_key(raw: Mapping[str, Any]) -> str | None:
    """``processDefinitionKey`` when the server sends it, else the key part of ``key:version:id``."""
    key = raw.get("processDefinitionKey")
    if key:
        return str(key)
    found = definition_id(raw)
    if not found:
        return None
    parts = found.rsplit(":", 2)
    return parts[0] if len(parts) == 3 else found


def runtime_state(raw: Mapping[str, Any]) -> tuple[ProcessState, str]:
    if raw.get("ended") or raw.get("completed"):
        return ProcessState.COMPLETED, "ended"
    if raw.get("suspended"):
        return ProcessState.SUSPENDED, "suspended"
    return ProcessState.RUNNING, "active"


# The one delete reason the engines write for a normal end: a terminate end event ends the
# instance by deleting it, recorded as "terminate end event (<activity id>)" (Activiti 5.21,
# Activiti 6 and Flowable alike).
TERMINATE_END_EVENT = "terminate end event"


def history_state(raw: Mapping[str, Any], *, suspended: bool = False) -> tuple[ProcessState, str]:
    """Ended once ``endTime`` is set; deleted when there is a ``deleteReason`` but a terminate end's.

    A reason that reads like a failure ("boundary error", "timeout") is still a deletion:
    CANCELLED, never FAILED. An empty reason is a deletion too: WSO2 EI stores "" when a client
    deletes without one (only ``null`` means no deletion).
    """
    if raw.get("endTime"):
        reason = raw.get("deleteReason")
        if reason is None:
            return ProcessState.COMPLETED, "ended"
        if str(reason).startswith(TERMINATE_END_EVENT):
            return ProcessState.COMPLETED, f"ended: {reason}"
        return ProcessState.CANCELLED, f"deleted: {reason}" if reason else "deleted"
    if suspended:
        return ProcessState.SUSPENDED, "suspended"
    return ProcessState.RUNNING, "active"


def process_from_runtime(raw: Mapping[str, Any]) -> ProcessInstance:
    state, raw_state = runtime_state(raw)
    return _process(raw, state, raw_state, ended_at=None)


def process_from_history(raw: Mapping[str, Any], *, suspended: bool = False) -> ProcessInstance:
    state, raw_state = history_state(raw, suspended=suspended)
    return _process(raw, state, raw_state, ended_at=parse_date(raw.get("endTime")))


def _process(
    raw: Mapping[str, Any], state: ProcessState, raw_state: str, *, ended_at: Any
) -> ProcessInstance:
    return ProcessInstance(
        id=str(raw["id"]),
        state=state,
        definition=definition_key(raw),
        business_key=raw.get("businessKey"),
        started_at=parse_date(raw.get("startTime")),
        ended_at=ended_at,
        raw=dict(raw),
        title=raw.get("name") or None,
        definition_name=raw.get("processDefinitionName") or None,
        raw_state=raw_state,
    )


def last_segment(url: Any) -> str | None:
    """The id at the end of a REST URL (WSO2's documented task answer has URLs, not ids)."""
    if not url:
        return None
    return str(url).rstrip("/").rsplit("/", 1)[-1] or None


def task_from_raw(raw: Mapping[str, Any]) -> Task:
    process_instance_id = raw.get("processInstanceId") or last_segment(
        raw.get("processInstanceUrl") or raw.get("processInstance")
    )
    if raw.get("suspended"):
        state = "SUSPENDED"
    elif raw.get("assignee"):
        state = "CLAIMED"
    else:
        state = "OPEN"
    return Task(
        id=str(raw["id"]),
        name=raw.get("name"),
        process_instance_id=str(process_instance_id) if process_instance_id is not None else None,
        assignee=raw.get("assignee"),
        raw=dict(raw),
        state=state,
    )
