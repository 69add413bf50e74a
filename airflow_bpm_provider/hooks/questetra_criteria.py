"""Search criteria XML for ``/API/OR/ProcessInstance/list`` and ``/API/OR/Workitem/list``.

Criteria are built with lxml from a plain mapping, so every value is escaped by the XML library
and a typo in a key fails here, before any request, with the key named. Raw XML text is accepted
too, but it is parsed first: a criteria string the server cannot read fails fast as well.

Mapping keys (element names with ``_`` for ``-``, in the order the vendor documents them)::

    process_model_info_id, states (str or list), title (str or list: one element each, AND),
    start_date_from, start_date_to, end_date_from, end_date_to (date, datetime or text),
    init_quser_id (id or "#me"), init_qgroup_id, sort_property, sort_direction,
    data: [{"type": "string", "number": 0, "condition": "contains", "value": "x"}, ...]

and for ``workitem-criteria`` also ``process_instance_id``, ``node_number``, ``workitem_states``,
``workitem_starred``, ``workitem_allocated_quser_id``, ``workitem_offer_date_from/_to``,
``workitem_end_date_from/_to`` and ``workitem_time_limit_from/_to``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import tzinfo
from typing import Any

from airflow_bpm_provider.exceptions import BpmConfigError
from airflow_bpm_provider.hooks.questetra_dates import format_criteria_time

PROCESS_ROOT = "process-instance-criteria"
WORKITEM_ROOT = "workitem-criteria"
ROOTS = (PROCESS_ROOT, WORKITEM_ROOT)

PROCESS_STATES = ("STARTED", "ENDED", "FAILED")
WORKITEM_STATES = ("OFFERED", "ALLOCATED", "STARTED", "ENDED", "FAILED")
SORT_DIRECTIONS = ("ASC", "DESC")
SORT_PROPERTIES = {
    PROCESS_ROOT: ("processInstanceStartDatetime", "processInstanceEndDatetime"),
    WORKITEM_ROOT: ("offerDatetime", "endDatetime", "timeLimitDatetime", "allocatedQuserId", "nodeName"),
}

# Conditions each data type accepts; "view" only asks for the item in the results.
DATA_CONDITIONS: dict[str, tuple[str, ...]] = {
    "string": ("empty", "not-empty", "contains", "view"),
    "discussion": ("empty", "not-empty", "contains", "view"),
    "decimal": ("equals", "greater-equals", "less-equals", "view"),
    "date": ("equals", "after-equals", "before-equals", "view"),
    "datetime": ("equals", "after-equals", "before-equals", "view"),
    "select": ("selected", "view"),
    "file": ("contains", "view"),
    "quser": ("equals", "view"),
    "qgroup": ("equals", "view"),
    "table": ("view",),
}
VALUELESS_CONDITIONS = frozenset({"empty", "not-empty", "view"})
DATA_ENTRY_KEYS = frozenset({"type", "number", "condition", "value"})

# (mapping key, element path, kind, roots it is valid for)
_BOTH = ROOTS
_WORKITEM = (WORKITEM_ROOT,)
_FIELDS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("process_model_info_id", "process-model-info-id", "integer", _BOTH),
    ("states", "states/state", "process-states", _BOTH),
    ("process_instance_id", "process-instance-id", "integer", _WORKITEM),
    ("title", "title", "repeat", _BOTH),
    ("start_date_from", "start-date-from", "time", _BOTH),
    ("start_date_to", "start-date-to", "time", _BOTH),
    ("end_date_from", "end-date-from", "time", _BOTH),
    ("end_date_to", "end-date-to", "time", _BOTH),
    ("init_quser_id", "init-quser-id", "user", _BOTH),
    ("init_qgroup_id", "init-qgroup-id", "integer", _BOTH),
    ("node_number", "node-number", "integer", _WORKITEM),
    ("workitem_states", "workitem-states/workitem-state", "workitem-states", _WORKITEM),
    ("workitem_starred", "workitem-starred", "boolean", _WORKITEM),
    ("workitem_allocated_quser_id", "workitem-allocated-quser-id", "user", _WORKITEM),
    ("workitem_offer_date_from", "workitem-offer-date-from", "time", _WORKITEM),
    ("workitem_offer_date_to", "workitem-offer-date-to", "time", _WORKITEM),
    ("workitem_end_date_from", "workitem-end-date-from", "time", _WORKITEM),
    ("workitem_end_date_to", "workitem-end-date-to", "time", _WORKITEM),
    ("workitem_time_limit_from", "workitem-time-limit-from", "time", _WORKITEM),
    ("workitem_time_limit_to", "workitem-time-limit-to", "time", _WORKITEM),
    ("sort_property", "sort-property", "sort-property", _BOTH),
    ("sort_direction", "sort-direction", "sort-direction", _BOTH),
    ("data", "data", "data", _BOTH),
)
FIELD_KEYS = tuple(field[0] for field in _FIELDS)


def criteria_text(
    criteria: Mapping[str, Any] | str | bytes | None, *, root: str, tz: tzinfo | None = None
) -> str | None:
    """The ``criteria`` parameter for a search: built from a mapping, or checked raw XML."""
    if criteria is None:
        return None
    if isinstance(criteria, bytes):
        try:
            criteria = criteria.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BpmConfigError(f"criteria XML bytes are not UTF-8: {exc}") from None
    if isinstance(criteria, str):
        return check_criteria_xml(criteria, root=root)
    if isinstance(criteria, Mapping):
        return build_criteria(criteria, root=root, tz=tz)
    raise BpmConfigError(f"criteria must be a mapping or an XML string, got {type(criteria).__name__}")


def check_criteria_xml(text: str, *, root: str) -> str:
    """Parse raw criteria XML (no entities, no network) and check its root element."""
    from lxml import etree

    _check_root_name(root)
    if not text.strip():
        raise BpmConfigError(f"criteria XML is empty; expected a <{root}> document")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        element = etree.fromstring(text.strip().encode("utf-8"), parser)
    except etree.XMLSyntaxError as exc:
        raise BpmConfigError(f"criteria XML is not well-formed: {exc}") from None
    if element.getroottree().docinfo.doctype:
        # criteria never need a DTD; refusing one keeps entity tricks away from the server too
        raise BpmConfigError("criteria XML must not contain a DOCTYPE declaration")
    if element.tag != root:
        raise BpmConfigError(f"criteria XML has the root element <{element.tag}>; expected <{root}>")
    return text


def build_criteria(criteria: Mapping[str, Any], *, root: str, tz: tzinfo | None = None) -> str:
    """Criteria XML from a mapping; unknown keys and invalid values raise BpmConfigError."""
    from lxml import etree

    _check_root_name(root)
    allowed = [key for key, _, _, roots in _FIELDS if root in roots]
    unknown = [str(key) for key in criteria if key not in allowed]
    if unknown:
        raise BpmConfigError(
            f"unknown criteria key(s) for <{root}>: {', '.join(sorted(unknown))}; "
            f"valid keys: {', '.join(allowed)}"
        )
    document = etree.Element(root)
    for key, path, kind, roots in _FIELDS:
        if root not in roots or criteria.get(key) is None:
            continue
        value = criteria[key]
        if kind == "data":
            _append_data(document, value, tz)
            continue
        texts = _field_texts(key, kind, value, root=root, tz=tz)
        if "/" in path:
            container, child = path.split("/")
            parent = etree.SubElement(document, container)
            for text in texts:
                etree.SubElement(parent, child).text = text
        else:
            for text in texts:
                etree.SubElement(document, path).text = text
    return etree.tostring(document, encoding="unicode")


def _check_root_name(root: str) -> None:
    if root not in ROOTS:
        raise BpmConfigError(f"criteria root must be one of {', '.join(ROOTS)}, got {root!r}")


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | set | frozenset):
        return [value]
    return list(value)


def _integer_text(key: str, value: Any) -> str:
    text = str(value).strip()
    if isinstance(value, bool) or not text.lstrip("-").isdigit():
        raise BpmConfigError(f"criteria key '{key}' must be an integer id, got {value!r}")
    return text


def _choice_text(key: str, value: Any, choices: Sequence[str]) -> str:
    text = str(value).strip()
    for choice in choices:
        if text.lower() == choice.lower():
            return choice
    raise BpmConfigError(f"criteria key '{key}' must be one of {', '.join(choices)}, got {value!r}")


def _field_texts(key: str, kind: str, value: Any, *, root: str, tz: tzinfo | None) -> list[str]:
    if kind == "integer":
        return [_integer_text(key, value)]
    if kind == "process-states":
        return [_choice_text(key, item, PROCESS_STATES) for item in _as_list(value)]
    if kind == "workitem-states":
        return [_choice_text(key, item, WORKITEM_STATES) for item in _as_list(value)]
    if kind == "repeat":
        return [str(item) for item in _as_list(value)]
    if kind == "time":
        return [format_criteria_time(value, tz)]
    if kind == "user":
        text = str(value).strip()
        return [text if text == "#me" else _integer_text(key, value)]
    if kind == "boolean":
        if not isinstance(value, bool):
            raise BpmConfigError(f"criteria key '{key}' must be True or False, got {value!r}")
        return ["true" if value else "false"]
    if kind == "sort-property":
        return [_choice_text(key, value, SORT_PROPERTIES[root])]
    if kind == "sort-direction":
        return [_choice_text(key, value, SORT_DIRECTIONS)]
    raise AssertionError(f"unhandled criteria kind {kind}")  # pragma: no cover - table above is fixed


def _append_data(document: Any, entries: Any, tz: tzinfo | None) -> None:
    from lxml import etree

    if isinstance(entries, Mapping | str | bytes) or not isinstance(entries, Iterable):
        raise BpmConfigError(
            "criteria key 'data' must be a list of {type, number, condition, value} mappings"
        )
    container = etree.SubElement(document, "data")
    for position, entry in enumerate(entries):
        where = f"criteria data[{position}]"
        if not isinstance(entry, Mapping):
            raise BpmConfigError(f"{where} must be a mapping with type, number, condition, value")
        unknown = sorted(str(key) for key in entry if key not in DATA_ENTRY_KEYS)
        if unknown:
            raise BpmConfigError(
                f"{where} has unknown key(s) {', '.join(unknown)}; valid: type, number, condition, value"
            )
        data_type = str(entry.get("type", "")).strip().lower()
        if data_type not in DATA_CONDITIONS:
            raise BpmConfigError(
                f"{where} type must be one of {', '.join(DATA_CONDITIONS)}, got {entry.get('type')!r}"
            )
        if entry.get("number") is None:
            raise BpmConfigError(f"{where} needs 'number' (the data item number)")
        number = _integer_text(f"data[{position}].number", entry["number"])
        condition = str(entry.get("condition") or "view").strip().lower()
        if condition not in DATA_CONDITIONS[data_type]:
            raise BpmConfigError(
                f"{where}: condition {condition!r} is not valid for {data_type} items; "
                f"use one of {', '.join(DATA_CONDITIONS[data_type])}"
            )
        value = entry.get("value")
        if condition in VALUELESS_CONDITIONS and value is not None:
            raise BpmConfigError(f"{where}: condition {condition!r} takes no value, got {value!r}")
        if condition not in VALUELESS_CONDITIONS and value is None:
            raise BpmConfigError(f"{where}: condition {condition!r} needs a 'value'")
        item = etree.SubElement(container, data_type)
        etree.SubElement(item, "data-definition-number").text = number
        etree.SubElement(item, condition)
        if value is not None:
            text = format_criteria_time(value, tz) if data_type in ("date", "datetime") else str(value)
            etree.SubElement(item, "value").text = text
