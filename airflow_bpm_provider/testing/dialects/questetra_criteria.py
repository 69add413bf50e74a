"""Search criteria XML of the Questetra Workflow API: parsing, matching and sorting.

Roots ``process-instance-criteria`` (OR/ProcessInstance/list) and ``workitem-criteria``
(OR/Workitem/list). Only the data items named under ``<data>`` appear in results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_bpm_provider.testing.dialects.questetra_entries import (
    PROCESS_STATES,
    QuestetraState,
    date_of,
    datetime_of,
    decimal_of,
    is_empty,
    parse_datetime,
    selected,
    stored_files,
    workitem_state,
)
from airflow_bpm_provider.testing.engine import Instance, TaskInstance

PROCESS_ROOT, WORKITEM_ROOT = "process-instance-criteria", "workitem-criteria"

# criteria element under <data> -> engine data types it can address
DATA_KINDS: dict[str, tuple[str, ...]] = {
    "string": ("STRING", "BOOLEAN"),
    "discussion": (),
    "decimal": ("DECIMAL",),
    "date": ("DATE",),
    "datetime": ("DATETIME",),
    "select": ("SELECT",),
    "file": ("FILE",),
    "quser": ("USER",),
    "qgroup": (),
    "table": (),
}
OPERATORS: dict[str, tuple[str, ...]] = {
    "string": ("empty", "not-empty", "contains"),
    "discussion": ("empty", "not-empty", "contains"),
    "decimal": ("equals", "greater-equals", "less-equals"),
    "date": ("equals", "after-equals", "before-equals"),
    "datetime": ("equals", "after-equals", "before-equals"),
    "select": ("selected",),
    "file": ("contains",),
    "quser": ("equals",),
    "qgroup": ("equals",),
    "table": (),
}
NO_VALUE_OPERATORS = ("empty", "not-empty")
PROCESS_SORTS = ("processInstanceStartDatetime", "processInstanceEndDatetime")
WORKITEM_SORTS = ("offerDatetime", "endDatetime", "timeLimitDatetime", "allocatedQuserId", "nodeName")
PROCESS_STATE_NAMES = ("STARTED", "ENDED", "FAILED")
WORKITEM_STATE_NAMES = ("OFFERED", "ALLOCATED", "STARTED", "ENDED", "FAILED")


class CriteriaError(ValueError):
    """The criteria cannot be used; ``element`` names the part that is wrong."""

    def __init__(self, element: str, message: str) -> None:
        super().__init__(f"{element}: {message}")
        self.element = element


@dataclass
class DataCondition:
    kind: str
    number: int
    operator: str | None  # None: only show the item (<view/>)
    value: str | None


@dataclass
class Criteria:
    root: str
    process_model_info_id: int | None = None
    states: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    start_from: datetime | None = None
    start_to: datetime | None = None
    end_from: datetime | None = None
    end_to: datetime | None = None
    init_quser_id: str | None = None
    init_qgroup_id: int | None = None
    sort_property: str | None = None
    sort_direction: str = "DESC"
    data: list[DataCondition] = field(default_factory=list)
    # workitem-criteria only
    process_instance_id: int | None = None
    node_number: int | None = None
    workitem_states: list[str] = field(default_factory=list)
    workitem_starred: bool | None = None
    allocated_quser_id: str | None = None
    offer_from: datetime | None = None
    offer_to: datetime | None = None
    workitem_end_from: datetime | None = None
    workitem_end_to: datetime | None = None
    time_limit_given: bool = False  # the emulator's tasks have no deadline, so nothing matches

    @property
    def data_numbers(self) -> list[int] | None:
        """The data items to render, in criteria order; None when no item was named."""
        if not self.data:
            return None
        return list(dict.fromkeys(condition.number for condition in self.data))


def parse_criteria(text: str | None, root: str) -> Criteria:
    if text is None or not text.strip():
        return Criteria(root=root)
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        document = etree.fromstring(text.strip().encode("utf-8"), parser)
    except etree.XMLSyntaxError as exc:
        raise CriteriaError("criteria", f"not well-formed XML ({exc})") from None
    if document.tag != root:
        raise CriteriaError("criteria", f"the root element must be <{root}>, not <{document.tag}>")
    criteria = Criteria(root=root)
    for element in document:
        if not isinstance(element.tag, str):
            continue  # comments and processing instructions
        _apply(criteria, element)
    return criteria


def _text(element: Any) -> str:
    return (element.text or "").strip()


def _integer(element: Any) -> int:
    try:
        return int(_text(element))
    except ValueError:
        raise CriteriaError(element.tag, f"must be an integer, got {_text(element)!r}") from None


def _moment(element: Any, *, end_of_day: bool) -> datetime:
    text = _text(element)
    moment = parse_datetime(text)
    if moment is None:
        raise CriteriaError(element.tag, f"must be a date like 2013-01-01 or 2013-01-01 09:00, got {text!r}")
    if end_of_day and len(text) == 10:
        moment += timedelta(days=1, microseconds=-1)  # a day given as "to" includes the whole day
    return moment


def _names(element: Any, child: str, allowed: tuple[str, ...]) -> list[str]:
    values = []
    for item in element:
        if not isinstance(item.tag, str):
            continue
        if item.tag != child:
            raise CriteriaError(element.tag, f"may only contain <{child}>, found <{item.tag}>")
        value = _text(item).upper()
        if value not in allowed:
            raise CriteriaError(child, f"must be one of {', '.join(allowed)}, got {_text(item)!r}")
        values.append(value)
    return values


def _apply(criteria: Criteria, element: Any) -> None:
    tag = element.tag
    workitem = criteria.root == WORKITEM_ROOT
    if tag == "process-model-info-id":
        criteria.process_model_info_id = _integer(element)
    elif tag == "states":
        criteria.states = _names(element, "state", PROCESS_STATE_NAMES)
    elif tag == "title":
        if _text(element):
            criteria.titles.append(_text(element))
    elif tag in ("start-date-from", "start-date-to", "end-date-from", "end-date-to"):
        attribute = tag.replace("-date-", "_")
        setattr(criteria, attribute, _moment(element, end_of_day=tag.endswith("-to")))
    elif tag == "init-quser-id":
        criteria.init_quser_id = _text(element) or None
    elif tag == "init-qgroup-id":
        criteria.init_qgroup_id = _integer(element)
    elif tag == "sort-property":
        allowed = WORKITEM_SORTS if workitem else PROCESS_SORTS
        if _text(element) not in allowed:
            raise CriteriaError(tag, f"must be one of {', '.join(allowed)}, got {_text(element)!r}")
        criteria.sort_property = _text(element)
    elif tag == "sort-direction":
        direction = _text(element).upper()
        if direction not in ("ASC", "DESC"):
            raise CriteriaError(tag, f"must be ASC or DESC, got {_text(element)!r}")
        criteria.sort_direction = direction
    elif tag == "data":
        criteria.data.extend(_data_conditions(element))
    elif workitem and tag == "process-instance-id":
        criteria.process_instance_id = _integer(element)
    elif workitem and tag == "node-number":
        criteria.node_number = _integer(element)
    elif workitem and tag == "workitem-states":
        criteria.workitem_states = _names(element, "workitem-state", WORKITEM_STATE_NAMES)
    elif workitem and tag == "workitem-starred":
        if _text(element).lower() not in ("true", "false"):
            raise CriteriaError(tag, f"must be true or false, got {_text(element)!r}")
        criteria.workitem_starred = _text(element).lower() == "true"
    elif workitem and tag == "workitem-allocated-quser-id":
        criteria.allocated_quser_id = _text(element) or None
    elif workitem and tag in ("workitem-offer-date-from", "workitem-offer-date-to"):
        attribute = "offer_from" if tag.endswith("from") else "offer_to"
        setattr(criteria, attribute, _moment(element, end_of_day=tag.endswith("-to")))
    elif workitem and tag in ("workitem-end-date-from", "workitem-end-date-to"):
        attribute = "workitem_end_from" if tag.endswith("from") else "workitem_end_to"
        setattr(criteria, attribute, _moment(element, end_of_day=tag.endswith("-to")))
    elif workitem and tag in ("workitem-time-limit-from", "workitem-time-limit-to"):
        _moment(element, end_of_day=False)
        criteria.time_limit_given = True
    else:
        raise CriteriaError(tag, f"is not a known element of <{criteria.root}>")


def _data_conditions(element: Any) -> list[DataCondition]:
    conditions = []
    for item in element:
        if not isinstance(item.tag, str):
            continue
        if item.tag not in DATA_KINDS:
            raise CriteriaError(f"data/{item.tag}", f"must be one of {', '.join(DATA_KINDS)}")
        number: int | None = None
        value: str | None = None
        operators: list[str] = []
        for part in item:
            if not isinstance(part.tag, str):
                continue
            if part.tag == "data-definition-number":
                number = _integer(part)
            elif part.tag == "value":
                value = part.text or ""
            elif part.tag == "view":
                continue
            elif part.tag in OPERATORS[item.tag]:
                operators.append(part.tag)
            else:
                raise CriteriaError(f"data/{item.tag}/{part.tag}", "is not a known condition for this type")
        if number is None:
            raise CriteriaError(f"data/{item.tag}", "needs a <data-definition-number>")
        for operator in operators:
            if operator not in NO_VALUE_OPERATORS and not (value or "").strip():
                raise CriteriaError(f"data/{item.tag}/{operator}", "needs a <value>")
        if not operators:
            conditions.append(DataCondition(item.tag, number, None, value))
        conditions.extend(DataCondition(item.tag, number, operator, value) for operator in operators)
    return conditions


# ---- matching ---------------------------------------------------------------------------------


def _within(moment: datetime | None, start: datetime | None, end: datetime | None) -> bool:
    if start is None and end is None:
        return True
    if moment is None:
        return False
    return (start is None or moment >= start) and (end is None or moment <= end)


def _quser_matches(state: QuestetraState, wanted: str, login: str | None, me: str) -> bool:
    if login is None:
        return False
    if wanted == "#me":
        return login == me
    return wanted == str(state.quser_id(login))


def process_matches(state: QuestetraState, criteria: Criteria, instance: Instance, me: str) -> bool:
    if (
        criteria.process_model_info_id is not None
        and state.info_id(instance.definition) != criteria.process_model_info_id
    ):
        return False
    if criteria.states and PROCESS_STATES[instance.state] not in criteria.states:
        return False
    title = instance.title or ""
    if any(part not in title for part in criteria.titles):
        return False
    if not _within(instance.started_at, criteria.start_from, criteria.start_to):
        return False
    if not _within(instance.ended_at, criteria.end_from, criteria.end_to):
        return False
    if criteria.init_quser_id and not _quser_matches(state, criteria.init_quser_id, instance.started_by, me):
        return False
    if criteria.init_qgroup_id is not None:
        return False  # the emulator starts no process on behalf of an organisation
    return all(_data_matches(state, condition, instance) for condition in criteria.data if condition.operator)


def workitem_matches(state: QuestetraState, criteria: Criteria, task: TaskInstance, me: str) -> bool:
    if criteria.time_limit_given or not process_matches(state, criteria, task.instance, me):
        return False
    if criteria.process_instance_id is not None and task.instance.id != criteria.process_instance_id:
        return False
    if criteria.node_number is not None and task.definition.node_number != criteria.node_number:
        return False
    if criteria.workitem_states and workitem_state(state, task) not in criteria.workitem_states:
        return False
    if criteria.workitem_starred is not None and criteria.workitem_starred != (
        state.quser_id(me) in task.instance.starred
    ):
        return False
    if criteria.allocated_quser_id and not _quser_matches(
        state, criteria.allocated_quser_id, task.assignee, me
    ):
        return False
    offered = None if task.id in state.allocated_directly else task.created_at
    if not _within(offered, criteria.offer_from, criteria.offer_to):
        return False
    return _within(task.ended_at, criteria.workitem_end_from, criteria.workitem_end_to)


def _data_matches(state: QuestetraState, condition: DataCondition, instance: Instance) -> bool:
    item = instance.data.get(condition.number)
    if item is None or item.definition.type not in DATA_KINDS[condition.kind]:
        return False
    wanted = (condition.value or "").strip()
    value = item.value
    operator = condition.operator
    if operator == "empty":
        return is_empty(value)
    if operator == "not-empty":
        return not is_empty(value)
    if condition.kind == "file":
        return any(wanted in stored.name for stored in stored_files(item))
    if operator == "contains":
        return not is_empty(value) and wanted in str(value)
    if operator == "selected":
        return wanted in selected(value)
    if condition.kind == "quser":
        return not is_empty(value) and wanted in (str(value), str(state.quser_id(str(value))))
    if condition.kind == "decimal":
        return _compare(decimal_of(value), decimal_of(wanted), operator, condition)
    if condition.kind == "date":
        return _compare(date_of(value), date_of(wanted), operator, condition)
    if condition.kind == "datetime":
        return _compare(_minute(datetime_of(value)), _minute(parse_datetime(wanted)), operator, condition)
    return False


def _minute(moment: datetime | None) -> datetime | None:
    return moment.replace(second=0, microsecond=0) if moment else None


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "equals": lambda a, b: a == b,
    "greater-equals": lambda a, b: a >= b,
    "less-equals": lambda a, b: a <= b,
    "after-equals": lambda a, b: a >= b,
    "before-equals": lambda a, b: a <= b,
}


def _compare(actual: Any, wanted: Any, operator: str | None, condition: DataCondition) -> bool:
    if wanted is None:
        raise CriteriaError(f"data/{condition.kind}/value", f"cannot be read: {condition.value!r}")
    if actual is None or operator is None:
        return False
    return _COMPARISONS[operator](actual, wanted)


def check_values(criteria: Criteria) -> None:
    """Reject unreadable comparison values up front, so they fail even when nothing matches."""
    readers: dict[str, Callable[[str], Any]] = {
        "decimal": decimal_of,
        "date": date_of,
        "datetime": parse_datetime,
    }
    for condition in criteria.data:
        reader = readers.get(condition.kind)
        if reader and condition.operator and reader((condition.value or "").strip()) is None:
            raise CriteriaError(f"data/{condition.kind}/value", f"cannot be read: {condition.value!r}")


# ---- sorting ----------------------------------------------------------------------------------


def _ordered(items: list[Any], key: Callable[[Any], Any], direction: str) -> list[Any]:
    def sort_key(item: Any) -> tuple[int, Any, int]:
        value = key(item)
        return (0 if value is None else 1, value if value is not None else 0, item.id)

    return sorted(items, key=sort_key, reverse=direction == "DESC")


def sort_processes(criteria: Criteria, instances: list[Instance]) -> list[Instance]:
    prop = criteria.sort_property or "processInstanceStartDatetime"
    if prop == "processInstanceEndDatetime":
        return _ordered(instances, lambda i: i.ended_at, criteria.sort_direction)
    return _ordered(instances, lambda i: i.started_at, criteria.sort_direction)


def sort_workitems(
    state: QuestetraState, criteria: Criteria, tasks: list[TaskInstance]
) -> list[TaskInstance]:
    keys: dict[str, Callable[[TaskInstance], Any]] = {
        "offerDatetime": lambda t: t.created_at,
        "endDatetime": lambda t: t.ended_at,
        "timeLimitDatetime": lambda t: None,
        "allocatedQuserId": lambda t: state.quser_id(t.assignee) if t.assignee else None,
        "nodeName": lambda t: t.definition.name,
    }
    return _ordered(tasks, keys[criteria.sort_property or "offerDatetime"], criteria.sort_direction)
