"""The JSON entries of the Questetra / DataSpider BPM Workflow API, rendered from engine objects.

Shapes follow the vendor's Workflow API reference (ActivityEntry, WorkitemEntry,
ProcessInstanceEntry, ProcessDataEntry; file values as in Questetra's file-download tutorial).
What the engine does not model (organisations, debug mode, deadlines) is rendered as the vendor
renders an absent value: ``null``.
"""

from __future__ import annotations

import json
import math
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow_bpm_provider.testing.engine import (
    CANCELLED,
    COMPLETED,
    FAILED,
    RUNNING,
    SUSPENDED,
    TASK_CLAIMED,
    TASK_ENDED,
    TASK_OPEN,
    DataValue,
    Engine,
    Instance,
    ProcessDefinition,
    StoredFile,
    TaskInstance,
)

# Questetra shows times in the user's time zone; a fixed +09:00 keeps the emulator deterministic
# and makes a client that ignores the offset visibly wrong.
ZONE = timezone(timedelta(hours=9))

PROCESS_STATES = {
    RUNNING: "STARTED",
    SUSPENDED: "STARTED",
    COMPLETED: "ENDED",
    FAILED: "FAILED",
    CANCELLED: "FAILED",
}
TASK_STATES = {TASK_OPEN: "OFFERED", TASK_CLAIMED: "ALLOCATED", TASK_ENDED: "ENDED"}

# engine data type -> (ProcessDataEntry.dataType, workitem-form data-type code)
DATA_TYPES: dict[str, tuple[str, int]] = {
    "STRING": ("STRING", 0),
    "DATE": ("DATE", 5),
    "USER": ("QUSER", 8),
    "DATETIME": ("DATETIME", 10),
    "SELECT": ("SELECT", 11),
    "DECIMAL": ("DECIMAL", 12),
    "FILE": ("FILE2", 14),
    "BOOLEAN": ("STRING", 0),  # Questetra has no boolean item; "true"/"false" strings stand in
}

# Ids above this are given to logins that are not registered users (e.g. a system account).
_EXTRA_QUSER_BASE = 1000


def format_datetime(value: datetime | None) -> str | None:
    """The vendor's datetime form, e.g. ``2010-08-18T14:03:16+0900``."""
    if value is None:
        return None
    return aware(value).astimezone(ZONE).strftime("%Y-%m-%dT%H:%M:%S%z")


def aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=ZONE)


def length_text(size: int) -> str:
    """Human size as Questetra shows it: one decimal, rounded up (71550 -> 69.9 KB, 1056 -> 1.1 KB)."""
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= factor:
            return f"{math.ceil(size * 10 / factor) / 10:.1f} {unit}"
    return f"{size} B"


# ---- values ---------------------------------------------------------------------------------


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def decimal_of(value: Any) -> Decimal | None:
    if is_empty(value) or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).replace(",", ""))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def decimal_text(value: Any) -> str | None:
    number = decimal_of(value)
    if number is None:
        return None
    if number == number.to_integral_value():
        return format(number.quantize(Decimal(1)), "f")
    return format(number.normalize(), "f")


def date_of(value: Any) -> date | None:
    if isinstance(value, datetime):
        return aware(value).astimezone(ZONE).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def datetime_of(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return aware(value)
    if isinstance(value, date):
        return datetime.combine(value, time(), ZONE)
    if isinstance(value, str) and value:
        return parse_datetime(value)
    return None


def parse_datetime(text: str) -> datetime | None:
    """``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM[:SS]`` (vendor's zone) or ISO 8601 with an offset."""
    text = text.strip()
    for layout in ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=ZONE)
        except ValueError:
            pass
    try:
        return aware(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def selected(value: Any) -> list[str]:
    if is_empty(value):
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def stored_files(item: DataValue) -> list[StoredFile]:
    return list(item.value or []) if item.definition.type == "FILE" else []


# ---- per-engine dialect state ---------------------------------------------------------------


@dataclass
class QuestetraState:
    """What the Questetra dialect knows beyond the engine; shared by both mount points."""

    engine: Engine
    extra_qusers: dict[str, int] = field(default_factory=dict)
    read: set[int] = field(default_factory=set)  # workitems whose form was opened
    started: dict[int, datetime] = field(default_factory=dict)  # saved (saveOnly) workitems
    allocated_directly: set[int] = field(default_factory=set)  # first tasks, never offered
    task_groups: dict[int, int] = field(default_factory=dict)  # workitem -> allocated qgroup

    # ---- users --------------------------------------------------------------------------------

    def quser_id(self, login: str) -> int:
        for number, known in enumerate(self.engine.users, start=1):
            if known == login:
                return number
        if login not in self.extra_qusers:
            self.extra_qusers[login] = _EXTRA_QUSER_BASE + len(self.extra_qusers) + 1
        return self.extra_qusers[login]

    def login_for(self, quser_id: int) -> str | None:
        for number, known in enumerate(self.engine.users, start=1):
            if number == quser_id:
                return known
        return next((login for login, number in self.extra_qusers.items() if number == quser_id), None)

    @staticmethod
    def quser_name(login: str) -> str:
        return login.split("@", 1)[0]

    def quser(self, login: str) -> dict[str, Any]:
        return {"email": login, "id": self.quser_id(login), "name": self.quser_name(login)}

    # ---- groups -------------------------------------------------------------------------------

    def qgroup_name(self, qgroup_id: int | None) -> str | None:
        if qgroup_id is None:
            return None
        for definition in self.engine.definitions.values():
            for task in definition.tasks:
                for number, name in task.candidate_groups:
                    if number == qgroup_id:
                        return name
        return None

    def allocated_group(self, task: TaskInstance) -> int | None:
        if task.id in self.task_groups:
            return self.task_groups[task.id]
        groups = task.definition.candidate_groups
        return groups[0][0] if len(groups) == 1 and task.assignee else None

    # ---- process models -------------------------------------------------------------------------

    def info_id(self, definition: ProcessDefinition) -> int:
        """processModelInfoId: one id per app, whatever the version (the first version's id)."""
        return min(d.id for d in self.engine.definitions.values() if d.key == definition.key)

    def startable(self) -> list[ProcessDefinition]:
        """The newest enabled version of every app that begins with a human task."""
        newest: dict[str, ProcessDefinition] = {}
        for definition in self.engine.definitions.values():
            if not definition.enabled or not definition.tasks:
                continue
            if definition.key not in newest or definition.version > newest[definition.key].version:
                newest[definition.key] = definition
        return sorted(newest.values(), key=self.info_id)

    @staticmethod
    def activity_id(definition: ProcessDefinition) -> int:
        return definition.id * 1000 + definition.tasks[0].node_number

    @staticmethod
    def data_definition_id(definition: ProcessDefinition, number: int) -> int:
        return definition.id * 1000 + number


_STATES: weakref.WeakKeyDictionary[Engine, QuestetraState] = weakref.WeakKeyDictionary()


def state_for(engine: Engine) -> QuestetraState:
    with engine.lock:
        if engine not in _STATES:
            _STATES[engine] = QuestetraState(engine)
        return _STATES[engine]


# ---- entries ----------------------------------------------------------------------------------


def activity_entry(state: QuestetraState, definition: ProcessDefinition) -> dict[str, Any]:
    first = definition.tasks[0]
    return {
        "id": state.activity_id(definition),
        "nodeName": first.name,
        "nodeNumber": first.node_number,
        "processModelActivateDatetime": format_datetime(definition.deployed_at),
        "processModelId": definition.id,
        "processModelInfoCategory": definition.category,
        "processModelInfoId": state.info_id(definition),
        "processModelInfoName": definition.name,
        "processModelInfoShortExplanation": definition.description,
        "processModelInfoViewPriority": 0,
        "processModelVersion": definition.version,
    }


def _process_fields(state: QuestetraState, instance: Instance) -> dict[str, Any]:
    definition = instance.definition
    return {
        "processInstanceEndDatetime": format_datetime(instance.ended_at),
        "processInstanceId": instance.id,
        "processInstanceIdForView": f"p{instance.id}",
        "processInstanceInitQgroupId": None,
        "processInstanceInitQgroupName": None,
        "processInstanceInitQuserId": state.quser_id(instance.started_by),
        "processInstanceInitQuserName": state.quser_name(instance.started_by),
        "processInstanceSequenceNumber": instance.sequence,
        "processInstanceStartDatetime": format_datetime(instance.started_at),
        "processInstanceState": PROCESS_STATES[instance.state],
        "processInstanceDebug": False,
        "processInstanceTitle": instance.title,
        "processModelInfoCategory": definition.category,
        "processModelInfoId": state.info_id(definition),
        "processModelInfoName": definition.name,
        "processModelVersion": definition.version,
    }


def workitem_state(state: QuestetraState, task: TaskInstance) -> str:
    if task.state == TASK_CLAIMED and task.id in state.started:
        return "STARTED"
    return TASK_STATES[task.state]


def workitem_entry(
    state: QuestetraState, task: TaskInstance, *, me: str, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    group = state.allocated_group(task)
    assignee = task.assignee
    entry: dict[str, Any] = {
        "allocateDatetime": format_datetime(task.claimed_at or task.created_at) if assignee else None,
        "allocatedQgroupId": group,
        "allocatedQgroupName": state.qgroup_name(group),
        "allocatedQuserId": state.quser_id(assignee) if assignee else None,
        "allocatedQuserName": state.quser_name(assignee) if assignee else None,
        "offerDatetime": None if task.id in state.allocated_directly else format_datetime(task.created_at),
        "data": data,
        "endDatetime": format_datetime(task.ended_at),
        "failType": None,
        "id": task.id,
        "nodeName": task.definition.name,
        "nodeNumber": task.definition.node_number,
    }
    entry.update(_process_fields(state, task.instance))
    entry.update(
        {
            "read": task.id in state.read,
            "starred": state.quser_id(me) in task.instance.starred,
            "startDatetime": format_datetime(state.started.get(task.id)),
            "state": workitem_state(state, task),
            "swimlaneType": "NORMAL",
            "timeLimitDatetime": None,
        }
    )
    return entry


def active_node_name(instance: Instance) -> str | None:
    if instance.ended or instance.current_node is None:
        return None
    return next((t.name for t in instance.definition.tasks if t.node_number == instance.current_node), None)


def process_entry(
    state: QuestetraState, instance: Instance, *, data_numbers: list[int] | None
) -> dict[str, Any]:
    """A ProcessInstanceEntry; ``data_numbers`` None means ``"data": null`` (no item was asked for)."""
    entry = _process_fields(state, instance)
    entry["activeTokenNodeName"] = active_node_name(instance)
    entry["data"] = None if data_numbers is None else data_map(state, instance, data_numbers)
    return entry


def data_map(state: QuestetraState, instance: Instance, numbers: list[int]) -> dict[str, Any]:
    return {
        str(number): data_entry(state, instance, instance.data[number])
        for number in numbers
        if number in instance.data
    }


def data_entry(state: QuestetraState, instance: Instance, item: DataValue) -> dict[str, Any]:
    definition = item.definition
    view_order = next(
        (index for index, d in enumerate(instance.definition.data, start=1) if d.number == definition.number),
        definition.number + 1,
    )
    return {
        "dataType": DATA_TYPES.get(definition.type, ("STRING", 0))[0],
        "id": item.instance_data_id,
        "name": definition.name,
        "processDataDefinitionNumber": definition.number,
        "subType": None,
        "value": data_value(state, item),
        "viewOrder": view_order,
    }


def file_entry(stored: StoredFile, data_instance_id: int) -> dict[str, Any]:
    return {
        "contentType": stored.content_type,
        "id": stored.id,
        "image": stored.content_type.startswith("image/"),
        "length": stored.size,
        "lengthText": length_text(stored.size),
        "name": stored.name,
        "processDataInstanceId": data_instance_id,
    }


def data_value(state: QuestetraState, item: DataValue) -> Any:
    kind, value = item.definition.type, item.value
    if kind == "FILE":
        return [file_entry(f, item.instance_data_id) for f in stored_files(item)] or None
    if is_empty(value):
        return None
    if kind == "SELECT":
        labels = dict(item.definition.choices)
        return [{"display": labels.get(v, v), "value": v} for v in selected(value)]
    if kind == "DECIMAL":
        return decimal_text(value)
    if kind == "DATE":
        day = date_of(value)
        return day.isoformat() if day else str(value)
    if kind == "DATETIME":
        return format_datetime(datetime_of(value)) or str(value)
    if kind == "USER":
        return state.quser(str(value))
    if kind == "BOOLEAN":
        return "true" if value in (True, "true", "True", 1) else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def display_text(item: DataValue) -> str:
    """A data value as one CSV cell."""
    kind, value = item.definition.type, item.value
    if kind == "FILE":
        return "\n".join(f.name for f in stored_files(item))
    if is_empty(value):
        return ""
    if kind == "SELECT":
        labels = dict(item.definition.choices)
        return "\n".join(labels.get(v, v) for v in selected(value))
    if kind == "DECIMAL":
        return decimal_text(value) or ""
    if kind == "DATE":
        day = date_of(value)
        return day.isoformat() if day else str(value)
    if kind == "DATETIME":
        moment = datetime_of(value)
        return moment.astimezone(ZONE).strftime("%Y-%m-%d %H:%M") if moment else str(value)
    return str(value)
