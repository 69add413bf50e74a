"""Task forms: ``/API/PE/Workitem/Form/viewXml`` parsed, ``Form/save`` parameters built and checked.

A caller names data items by number (``4``) or by name (``"Amount"``); the form view says each
item's type, so the values are encoded the way the API wants them and obvious mistakes (unknown
items, read-only items, choices that do not exist) fail before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from airflow_bpm_provider.exceptions import BpmConfigError, BpmValidationError
from airflow_bpm_provider.hooks.questetra_dates import format_minute, normalize_minute_text

# data-type codes of <form-data> (DataSpider BPM Workflow API, XML: workitem-form)
STRING = 0
DATE = 5
QUSER = 8
DISCUSSION = 9
DATETIME = 10
SELECT = 11
DECIMAL = 12
TABLE = 13
FILE = 14
GUIDE_PANEL = 15
QGROUP = 16
TYPE_NAMES = {
    STRING: "string",
    DATE: "date",
    QUSER: "user",
    DISCUSSION: "discussion",
    DATETIME: "datetime",
    SELECT: "select",
    DECIMAL: "decimal",
    TABLE: "table",
    FILE: "file",
    GUIDE_PANEL: "guide panel",
    QGROUP: "organization",
}
EDITABLE = 3  # accessibility: 3 editable, 1 display only, 0 hidden

# Date sub-types: what part of a date the item holds.
_DATE_FORMATS = {0: "%Y-%m-%d", 1: "%Y-%m", 2: "%m-%d", 3: "%Y"}
_PLAIN_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
_DATA_KEY = re.compile(r"^data\[(\d+)\]")


# The ``kind`` of each data type's save parameter (``data[N].kind``). Form/save takes the names of
# the HTTP message start event; the API reference (section 1) confirms input (string, date),
# usdecimal, selects, datetime and email. The kinds marked (unverified) appear in neither the
# reference nor seed 003: they are our assumption, kept here so a correction touches one line.
PARAM_KINDS = {
    STRING: "input",
    DATE: "input",
    DATETIME: "datetime",
    DECIMAL: "usdecimal",
    SELECT: "selects",
    QUSER: "email",
    QGROUP: "qgroupName",  # (unverified) organization items: by organization name
    DISCUSSION: "console",  # (unverified) discussion items
    TABLE: "input",  # (unverified) table items: the <list><row><col> XML as text
}


def data_param(number: int, kind: str) -> str:
    """The name of a data item's save parameter.

    Questetra announced that the ``data[N].kind`` naming of HTTP message events is discontinued
    from 2026-04 in favour of field names (``q_xxx``); whether Form/save follows is not known.
    Every parameter name is made here, so a change touches one line.
    """
    return f"data[{number}].{kind}"


@dataclass(frozen=True)
class Choice:
    value: str  # the choice ID, what the API expects
    display: str


@dataclass(frozen=True)
class FormItem:
    number: int
    id: str | None
    name: str
    data_type: int | None
    type_name: str
    accessibility: int
    required: bool
    data_instance_id: str | None
    choices: tuple[Choice, ...] = ()
    value: str | None = None
    sub_type: int | None = None
    form_type: int | None = None

    @property
    def editable(self) -> bool:
        return self.accessibility == EDITABLE

    @property
    def label(self) -> str:
        return f"data item {self.number} '{self.name}'"


@dataclass(frozen=True)
class UserSelect:
    flow_id: str
    name: str


@dataclass(frozen=True)
class ExecutingRole:
    qgroup_id: str
    qgroup_name: str


@dataclass(frozen=True)
class WorkitemForm:
    workitem_id: str | None
    task_name: str | None
    node_number: int | None
    title: str | None
    title_accessibility: int | None
    qgroup_id: str | None
    items: tuple[FormItem, ...]
    user_selects: tuple[UserSelect, ...] = ()
    executing_roles: tuple[ExecutingRole, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def item(self, key: int | str) -> FormItem:
        """The item with this number (int or digits) or name; BpmConfigError names the known ones."""
        if isinstance(key, bool):
            raise BpmConfigError(f"data item key must be a number or a name, got {key!r}")
        if isinstance(key, str):
            named = [item for item in self.items if item.name == key]
            if len(named) == 1:
                return named[0]
            if len(named) > 1:
                numbers = ", ".join(str(item.number) for item in named)
                raise BpmConfigError(
                    f"several data items of task '{self.task_name}' are named {key!r} "
                    f"(numbers {numbers}); use the number"
                )
            if not key.strip().isdigit():
                raise BpmConfigError(
                    f"task '{self.task_name}' has no data item named {key!r}; {self._known()}"
                )
        if isinstance(key, int | str):
            number = int(key)
            for item in self.items:
                if item.number == number:
                    return item
            raise BpmConfigError(f"task '{self.task_name}' has no data item number {number}; {self._known()}")
        raise BpmConfigError(f"data item key must be a number or a name, got {key!r}")

    def _known(self) -> str:
        if not self.items:
            return "its form has no data items"
        return "its form has: " + ", ".join(f"{item.number} '{item.name}'" for item in self.items)

    def describe_key(self, key: str) -> str:
        """``data[4].input`` → ``data[4].input (data item 4 'Amount')`` for error messages."""
        match = _DATA_KEY.match(key or "")
        if match:
            for item in self.items:
                if item.number == int(match.group(1)):
                    return f"{key} ({item.label})"
        return key


# ---- parsing --------------------------------------------------------------------------------


def _local(element: Any) -> str:
    # comments and processing instructions have no string tag
    return element.tag.rpartition("}")[2] if isinstance(element.tag, str) else ""


def _child(element: Any, name: str) -> Any:
    for child in element:
        if _local(child) == name:
            return child
    return None


def _children(element: Any, name: str) -> list[Any]:
    return [child for child in element if _local(child) == name]


def _text(element: Any, name: str) -> str | None:
    child = _child(element, name)
    if child is None:
        return None
    return "".join(child.itertext())


def _int(text: str | None) -> int | None:
    if text is None or not text.strip().lstrip("-").isdigit():
        return None
    return int(text.strip())


def _type_name(data_type: int | None) -> str:
    if data_type is None:
        return "unknown"
    return TYPE_NAMES.get(data_type, f"type {data_type}")


def parse_xml(body: bytes | str, *, root: str) -> Any:
    """Parse an XML answer safely (no entities, no network); ValueError when it is not ``root``."""
    from lxml import etree

    data = body.encode("utf-8") if isinstance(body, str) else body
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        element = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"the body is not XML: {exc}") from None
    if _local(element) != root:
        raise ValueError(f"expected <{root}>, got <{_local(element)}>")
    return element


def parse_form(body: bytes | str) -> WorkitemForm:
    """The ``<workitem-form>`` answer of ``Form/viewXml`` as plain values."""
    root = parse_xml(body, root="workitem-form")
    items = []
    for data in _children(root, "form-data"):
        number = _int(data.get("number"))
        if number is None:
            raise ValueError(f"a <form-data> has no data item number: {data.get('number')!r}")
        data_type = _int(_text(data, "data-type"))
        choices_parent = _child(data, "items")
        choices = ()
        if choices_parent is not None:
            choices = tuple(
                Choice(value=_text(choice, "value") or "", display=_text(choice, "display") or "")
                for choice in _children(choices_parent, "item")
            )
        items.append(
            FormItem(
                number=number,
                id=data.get("id"),
                name=_text(data, "name") or "",
                data_type=data_type,
                type_name=_type_name(data_type),
                accessibility=_int(_text(data, "accessibility")) or 0,
                required=(_text(data, "required") or "").strip().lower() == "true",
                data_instance_id=(_text(data, "data-instance-id") or "").strip() or None,
                choices=choices,
                value=_text(data, "value"),
                sub_type=_int(_text(data, "sub-type")),
                form_type=_int(_text(data, "form-type")),
            )
        )
    user_selects = tuple(
        UserSelect(flow_id=(_text(select, "flow-id") or "").strip(), name=_text(select, "name") or "")
        for parent in _children(root, "user-selects")
        for select in _children(parent, "user-select")
    )
    roles = tuple(
        ExecutingRole(
            qgroup_id=(_text(role, "qgroup-id") or "").strip(), qgroup_name=_text(role, "qgroup-name") or ""
        )
        for parent in _children(root, "executing-roles")
        for role in _children(parent, "executing-role")
    )
    return WorkitemForm(
        workitem_id=(_text(root, "workitem-id") or "").strip() or None,
        task_name=_text(root, "task-name"),
        node_number=_int(_text(root, "node-number")),
        title=_text(root, "title"),
        title_accessibility=_int(_text(root, "title-accessibility")),
        qgroup_id=(_text(root, "qgroup-id") or "").strip() or None,
        items=tuple(items),
        user_selects=user_selects,
        executing_roles=roles,
    )


@dataclass(frozen=True)
class SaveError:
    section: str  # "process-data-validation-errors" or "errors"
    key: str
    detail: str


def parse_save_result(body: bytes | str) -> list[SaveError]:
    """The errors of a ``<result>`` answer; empty when ``success="true"``.

    Form/save answers HTTP 200 also when it refused the input, so success is read from here.
    """
    root = parse_xml(body, root="result")
    if (root.get("success") or "").strip().lower() == "true":
        return []
    errors = [
        SaveError(
            section=_local(section),
            key=(_text(error, "key") or "").strip(),
            detail=_text(error, "detail") or "",
        )
        for section in root
        if _local(section) in ("process-data-validation-errors", "errors")
        for error in _children(section, "error")
    ]
    return errors or [SaveError(section="errors", key="", detail='success="false" without an error list')]


# ---- building save parameters ---------------------------------------------------------------


def build_save_params(
    form: WorkitemForm,
    values: Mapping[int | str, Any] | None,
    *,
    workitem_id: str,
    title: str | None = None,
    flow: int | str | None = None,
    qgroup_id: int | str | None = None,
    save_only: bool = False,
    tz: tzinfo | None = None,
) -> list[tuple[str, str]]:
    """Form/save parameters in request order; raises before any request when a value cannot fit.

    Unknown items and a ``flow``/``qgroup_id`` the form does not offer raise BpmConfigError;
    read-only items, a read-only title and values the item's type refuses raise
    BpmValidationError. Every problem is listed, not only the first.
    """
    params: list[tuple[str, str]] = [("workitemId", str(workitem_id))]
    if title is not None:
        if form.title_accessibility is not None and form.title_accessibility != EDITABLE:
            raise BpmValidationError(f"the title is read-only in task '{form.task_name}'")
        params.append(("title", str(title)))

    resolved: dict[int, tuple[FormItem, Any]] = {}
    unknown: list[str] = []
    for key, value in (values or {}).items():
        try:
            item = form.item(key)
        except BpmConfigError as exc:
            unknown.append(str(exc))
            continue
        if item.number in resolved:
            unknown.append(f"{item.label} is given twice (by number and by name)")
            continue
        resolved[item.number] = (item, value)
    if unknown:
        raise BpmConfigError("cannot map the values onto the task form", details=unknown)

    invalid: list[str] = []
    data_params: list[tuple[str, str]] = []
    for number in sorted(resolved):
        item, value = resolved[number]
        if not item.editable:
            what = "display only" if item.accessibility == 1 else "not shown"
            invalid.append(f"{item.label} is {what} in task '{form.task_name}' and cannot be set")
            continue
        try:
            kind, texts = encode_value(item, value, tz=tz)
        except ValueError as exc:
            invalid.append(f"{item.label}: {exc}")
            continue
        data_params.extend((data_param(item.number, kind), text) for text in texts)
    if invalid:
        raise BpmValidationError("values do not fit the task form", details=invalid)
    params.extend(data_params)

    role = _resolve_role(form, qgroup_id, save_only=save_only)
    if role is not None:
        params.append(("qgroupId", role))
    chosen = _resolve_flow(form, flow, save_only=save_only)
    if chosen is not None:
        params.append(("flow", chosen))
    if save_only:
        params.append(("saveOnly", "true"))
    return params


def encode_value(item: FormItem, value: Any, *, tz: tzinfo | None = None) -> tuple[str, list[str]]:
    """(parameter kind, texts) for one item; ValueError says why the value does not fit."""
    data_type = item.data_type
    if data_type in (STRING, QUSER, QGROUP, DISCUSSION):
        return PARAM_KINDS[data_type], [_scalar_text(value)]
    if data_type == DATE:
        return PARAM_KINDS[DATE], [_date_text(item, value)]
    if data_type == DATETIME:
        return PARAM_KINDS[DATETIME], [_datetime_text(value, tz)]
    if data_type == DECIMAL:
        return PARAM_KINDS[DECIMAL], [_decimal_text(value)]
    if data_type == SELECT:
        return PARAM_KINDS[SELECT], _select_texts(item, value)
    if data_type == TABLE:
        return PARAM_KINDS[TABLE], [_table_text(value)]
    if data_type == FILE:
        raise ValueError("file items need a multipart upload, which this hook does not send")
    raise ValueError(f"{item.type_name} items cannot be set through Form/save")


def _scalar_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):  # as JSON writes it, so a yes/no text item reads the same everywhere
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple | set | bytes):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return str(value)


def _date_text(item: FormItem, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):  # datetime is a date too: its date part is meant
        return value.strftime(_DATE_FORMATS.get(item.sub_type or 0, "%Y-%m-%d"))
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a date or text, got {type(value).__name__}")


def _datetime_text(value: Any, tz: tzinfo | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_minute(value, tz)
    if isinstance(value, str):
        text = normalize_minute_text(value, tz)
        if text is None:
            raise ValueError(f"expected 'YYYY-MM-DD HH:MM' or a datetime, got {value!r}")
        return text
    raise ValueError(f"expected a datetime or 'YYYY-MM-DD HH:MM', got {type(value).__name__}")


def _decimal_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, int | Decimal | float):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if not number.is_finite():
            raise ValueError(f"expected a finite number, got {value!r}")
        return format(number, "f")
    if isinstance(value, str) and _PLAIN_DECIMAL.match(value.strip()):
        # usdecimal: dot as decimal separator, no grouping, no prefix or suffix
        return value.strip()
    raise ValueError(f"expected a number like 1234.56 (no grouping, prefix or suffix), got {value!r}")


def _select_texts(item: FormItem, value: Any) -> list[str]:
    if value is None:
        chosen: list[Any] = []
    elif isinstance(value, str | int):
        chosen = [value]
    elif isinstance(value, Sequence | set | frozenset) and not isinstance(value, bytes):
        chosen = list(value)
    else:
        raise ValueError(f"expected a choice ID or a list of them, got {type(value).__name__}")
    if not chosen:
        # (unverified) an empty parameter clears the selection, as an empty text input does
        return [""]
    if not item.choices:
        return [str(choice) for choice in chosen]  # options come from elsewhere: the server checks
    by_value = {choice.value: choice.value for choice in item.choices}
    by_display = {choice.display: choice.value for choice in item.choices}
    texts, wrong = [], []
    for choice in chosen:
        text = str(choice)
        if text in by_value:
            texts.append(by_value[text])
        elif text in by_display:
            texts.append(by_display[text])
        else:
            wrong.append(text)
    if wrong:
        offered = ", ".join(f"{c.value!r} ({c.display})" for c in item.choices)
        raise ValueError(f"{', '.join(map(repr, wrong))} is not a choice; choices: {offered}")
    return texts


def _table_text(value: Any) -> str:
    """Table items as ``<list><row><col>..</col></row></list>``; rows may be given as lists.

    (unverified) This text format, like the ``input`` kind in PARAM_KINDS, is our assumption.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, Sequence) or isinstance(value, bytes):
        raise ValueError(f"expected rows (a list of lists) or table XML, got {type(value).__name__}")
    from lxml import etree

    table = etree.Element("list")
    for row in value:
        if isinstance(row, str | bytes | Mapping) or not isinstance(row, Sequence):
            raise ValueError(f"each table row must be a list of cells, got {type(row).__name__}")
        row_element = etree.SubElement(table, "row")
        for cell in row:
            etree.SubElement(row_element, "col").text = "" if cell is None else str(cell)
    return etree.tostring(table, encoding="unicode")


def _resolve_flow(form: WorkitemForm, flow: int | str | None, *, save_only: bool) -> str | None:
    offered = ", ".join(f"{s.flow_id} ({s.name!r})" for s in form.user_selects)
    if flow is None:
        if form.user_selects and not save_only:
            raise BpmConfigError(
                f"task '{form.task_name}' ends in a user choice; pass flow= one of: {offered}"
            )
        return None
    if not form.user_selects:
        raise BpmConfigError(
            f"task '{form.task_name}' has no user-select buttons; flow={flow!r} cannot apply"
        )
    text = str(flow).strip()
    for select in form.user_selects:
        if select.flow_id == text:
            return select.flow_id
    for select in form.user_selects:
        if select.name == str(flow):
            return select.flow_id
    raise BpmConfigError(f"flow {flow!r} is not a button of task '{form.task_name}'; buttons: {offered}")


def _resolve_role(form: WorkitemForm, qgroup_id: int | str | None, *, save_only: bool) -> str | None:
    offered = ", ".join(f"{r.qgroup_id} ({r.qgroup_name!r})" for r in form.executing_roles)
    if qgroup_id is None:
        if form.executing_roles and not save_only:
            raise BpmConfigError(
                f"task '{form.task_name}' must be done in the name of an organization; "
                f"pass qgroup_id= one of: {offered}"
            )
        return None
    if not form.executing_roles:
        return str(qgroup_id)  # the form offers no choice: let the server judge
    text = str(qgroup_id).strip()
    for role in form.executing_roles:
        if text in (role.qgroup_id, role.qgroup_name):
            return role.qgroup_id
    raise BpmConfigError(
        f"qgroup_id {qgroup_id!r} is not a role offered by task '{form.task_name}': {offered}"
    )
