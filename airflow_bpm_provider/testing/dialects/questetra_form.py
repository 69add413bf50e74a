"""Task forms of the Questetra Workflow API: ``Workitem/Form/viewXml`` and ``Workitem/Form/save``.

The form XML follows the vendor's ``workitem-form`` sample (namespace prefix ``ns2`` for
``process-data-definition-detail``). Save parameters use the names of Questetra's HTTP message
start event: ``data[N].input``, ``.usdecimal``, ``.selects`` (repeated), ``.datetime``,
``.email`` and ``.upload``; a validation error's key is the parameter's name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from airflow_bpm_provider.testing.dialects.questetra_entries import (
    DATA_TYPES,
    ZONE,
    QuestetraState,
    decimal_of,
    decimal_text,
    display_text,
    is_empty,
)
from airflow_bpm_provider.testing.engine import DataDef, TaskInstance

DETAIL_NS = "process-data-definition-detail"
DATA_PARAMETER = re.compile(r"^data\[(\d+)\]\.([A-Za-z_]+)$")

# engine data type -> the one parameter suffix that carries its value
SUFFIXES: dict[str, str] = {
    "STRING": "input",
    "BOOLEAN": "input",
    "DATE": "input",
    "DECIMAL": "usdecimal",
    "SELECT": "selects",
    "DATETIME": "datetime",
    "USER": "email",
    "FILE": "upload",
}


def parameter_name(definition: DataDef) -> str:
    return f"data[{definition.number}].{SUFFIXES.get(definition.type, 'input')}"


# ---- viewXml ----------------------------------------------------------------------------------


def form_xml(state: QuestetraState, task: TaskInstance) -> bytes:
    from lxml import etree

    ns = f"{{{DETAIL_NS}}}"
    instance = task.instance
    root = etree.Element("workitem-form", nsmap={"ns2": DETAIL_NS})

    def add(parent: Any, tag: str, text: Any = None) -> Any:
        child = etree.SubElement(parent, tag)
        if text is not None:
            child.text = _text(text)
        return child

    if instance.title is not None:
        add(root, "title", instance.title)
    add(root, "title-accessibility", 3)
    add(root, "title-description", "")
    add(root, "title-columns", 1)
    for view_order, definition in enumerate(instance.definition.data, start=1):
        item = instance.data[definition.number]
        editable = definition.number in task.definition.editable
        form_data = add(root, "form-data")
        form_data.set("number", str(definition.number))
        form_data.set("id", str(state.data_definition_id(instance.definition, definition.number)))
        add(form_data, "accessibility", 3 if editable else 1)
        add(form_data, "data-type", DATA_TYPES.get(definition.type, ("STRING", 0))[1])
        if definition.type == "SELECT":
            add(form_data, "form-type", 2)  # radio buttons
        elif definition.type in ("STRING", "BOOLEAN"):
            add(form_data, "form-type", 0)  # text field
        add(form_data, "name", definition.name)
        add(form_data, "data-instance-id", item.instance_data_id)
        add(form_data, "process-instance-id", instance.id)
        add(form_data, "view-order", view_order)
        if definition.type == "SELECT":
            add(form_data, "button-direction", 1)
            add(form_data, "button-rows", max(1, len(definition.choices)))
            items = add(form_data, "items")
            for value, display in definition.choices:
                choice = add(items, f"{ns}item")
                add(choice, f"{ns}value", value)
                add(choice, f"{ns}display", display)
        elif definition.type in ("STRING", "BOOLEAN"):
            detail = add(form_data, f"{ns}string-detail")
            add(detail, f"{ns}required", definition.required)
            add(detail, f"{ns}regex", "")
            add(detail, f"{ns}textarea-rows", 0)
        elif definition.type == "DECIMAL":
            detail = add(form_data, f"{ns}decimal-detail")
            add(detail, f"{ns}required", definition.required)
            add(detail, f"{ns}prefix", "")
            add(detail, f"{ns}suffix", "")
            add(
                detail, f"{ns}minimum", "" if definition.minimum is None else decimal_text(definition.minimum)
            )
            add(
                detail, f"{ns}maximum", "" if definition.maximum is None else decimal_text(definition.maximum)
            )
            add(detail, f"{ns}operation", "")
            add(detail, f"{ns}summary", "")
            add(detail, f"{ns}decimal-separator", ".")
            add(detail, f"{ns}grouping-separator", ",")
            add(detail, f"{ns}ref-summary", False)
            add(detail, f"{ns}scale", 0)
        add(form_data, "description", _range_text(definition))
        add(form_data, "columns", 1)
        add(form_data, "required", definition.required)
        if not is_empty(item.value):
            add(form_data, "value", display_text(item))
    add(root, "node-number", task.definition.node_number)
    add(root, "swimlane-type", 0)
    add(root, "task-name", task.definition.name)
    selects = add(root, "user-selects")
    for choice in task.definition.choices:
        user_select = add(selects, "user-select")
        add(user_select, "flow-id", choice.id)
        add(user_select, "name", choice.name)
    groups = task.definition.candidate_groups
    if len(groups) > 1:
        roles = add(root, "executing-roles")
        for number, name in groups:
            role = add(roles, "executing-role")
            add(role, "qgroup-id", number)
            add(role, "qgroup-name", name)
    group = state.allocated_group(task)
    if group is not None:
        add(root, "qgroup-id", group)
    add(root, "workitem-id", task.id)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _range_text(definition: DataDef) -> str:
    if definition.type != "DECIMAL" or (definition.minimum is None and definition.maximum is None):
        return ""
    low, high = decimal_text(definition.minimum), decimal_text(definition.maximum)
    if low is not None and high is not None:
        return f"The value must be at least {low} and at most {high}."
    return f"The value must be at least {low}." if low is not None else f"The value must be at most {high}."


# ---- save -------------------------------------------------------------------------------------


@dataclass
class Upload:
    name: str
    content_type: str
    content: bytes


@dataclass
class FormInput:
    """What a Form/save request asks for, checked against the task; ``errors`` maps key -> detail."""

    values: dict[int, Any] = field(default_factory=dict)
    uploads: dict[int, list[Upload]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def read_form_input(
    state: QuestetraState,
    task: TaskInstance,
    parameters: Sequence[tuple[str, Any]],
    *,
    save_only: bool,
) -> FormInput:
    """Validate every ``data[N].*`` parameter; on completion also the task's required items."""
    result = FormInput()
    definition = task.instance.definition
    grouped: dict[tuple[int, str], list[Any]] = {}
    for name, value in parameters:
        match = DATA_PARAMETER.match(name)
        if match:
            grouped.setdefault((int(match.group(1)), match.group(2)), []).append(value)
    for (number, suffix), values in grouped.items():
        key = f"data[{number}].{suffix}"
        data = next((d for d in definition.data if d.number == number), None)
        if data is None:
            result.errors[key] = f"The process has no data item number {number}."
            continue
        if SUFFIXES.get(data.type, "input") != suffix:
            result.errors[key] = f"Data item {number} ({data.name}) takes {parameter_name(data)}."
            continue
        if number not in task.definition.editable:
            result.errors[key] = f"Data item {number} ({data.name}) cannot be edited in this task."
            continue
        if data.type == "FILE":
            uploads = [v for v in values if hasattr(v, "filename")]
            if len(uploads) != len(values):
                result.errors[key] = "A file must be sent as multipart/form-data."
                continue
            result.uploads[number] = [_upload(v) for v in uploads]
            continue
        texts = [v for v in values if isinstance(v, str)]
        converted, problem = _convert(state, data, texts)
        if problem:
            result.errors[key] = problem
        else:
            result.values[number] = converted
    if not save_only:
        for data in definition.data:
            if not data.required or data.number not in task.definition.editable:
                continue
            current = task.instance.data[data.number].value
            new = result.values.get(data.number, current)
            files = result.uploads.get(data.number)
            key = parameter_name(data)
            if is_empty(new) and not files and key not in result.errors:
                result.errors[key] = f"{data.name} is required."
    return result


def _upload(value: Any) -> Upload:
    # Starlette has already spooled the part; reading it whole is fine for test-sized uploads.
    content = value.file.read()
    return Upload(value.filename or "upload", value.content_type or "application/octet-stream", content)


def _convert(state: QuestetraState, data: DataDef, texts: list[str]) -> tuple[Any, str | None]:
    if data.type == "SELECT":
        chosen = [t for t in texts if t != ""]
        allowed = [value for value, _ in data.choices]
        bad = [t for t in chosen if t not in allowed]
        if bad:
            return None, f"{bad[0]!r} is not a choice of {data.name} ({', '.join(allowed)})."
        return chosen, None
    if len(texts) > 1:
        return None, f"{data.name} takes one value, got {len(texts)}."
    text = texts[0] if texts else ""
    if text == "":
        return None, None
    if data.type == "DECIMAL":
        number = decimal_of(text)
        if number is None:
            return None, f"{text!r} is not a number."
        if data.minimum is not None and number < decimal_of(data.minimum):
            return None, f"The value must be at least {decimal_text(data.minimum)}."
        if data.maximum is not None and number > decimal_of(data.maximum):
            return None, f"The value must be at most {decimal_text(data.maximum)}."
        return decimal_text(number), None
    if data.type == "DATE":
        day = _iso_date(text)
        return (day, None) if day else (None, f"{text!r} is not a date (YYYY-MM-DD).")
    if data.type == "DATETIME":
        try:
            return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=ZONE), None
        except ValueError:
            return None, f"{text!r} is not a date and time (YYYY-MM-DD HH:MM)."
    if data.type == "USER":
        if text not in state.engine.users:
            return None, f"No user has the e-mail address {text!r}."
        return text, None
    if data.type == "BOOLEAN":
        if text.lower() not in ("true", "false"):
            return None, f"{text!r} is not true or false."
        return text.lower() == "true", None
    return text, None


def _iso_date(text: str) -> str | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        return None


def result_xml(
    *, validation_errors: dict[str, str] | None = None, errors: dict[str, str] | None = None
) -> bytes:
    """``<result success="true"/>``, or ``success="false"`` with the errors by key."""
    from lxml import etree

    root = etree.Element("result")
    root.set("success", "false" if validation_errors or errors else "true")
    for tag, found in (("process-data-validation-errors", validation_errors), ("errors", errors)):
        if not found:
            continue
        container = etree.SubElement(root, tag)
        for key, detail in found.items():
            error = etree.SubElement(container, "error")
            etree.SubElement(error, "key").text = key
            etree.SubElement(error, "detail").text = detail
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
