"""Activiti / Flowable REST variables: Python values to typed ``{name, type, value}`` and back.

The REST API takes variables as a list of ``{"name", "type", "value"}``. Sending the type explicitly
matters: without it the engine guesses from the JSON value and a Python ``int`` above 2**31 or a
date string would land as the wrong Java type. Binary values cannot travel in that JSON list; they
are uploaded one by one as multipart to the instance's variables endpoint.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from airflow_bpm_provider.exceptions import BpmValidationError

SYSTEM = "Activiti"
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
# An explicit variable is a mapping with exactly these keys (name optional): it is sent as given.
EXPLICIT_KEYS = frozenset({"type", "value"})
EXPLICIT_OPTIONAL_KEYS = frozenset({"name", "scope"})
NUMBER_TYPES = ("short", "integer", "long")
BINARY_TYPES = ("binary", "serializable")


@dataclass
class ConvertedVariables:
    """Variables split by how they travel: in the JSON list, or as one multipart upload each."""

    plain: list[dict[str, Any]] = field(default_factory=list)
    binary: dict[str, bytes] = field(default_factory=dict)


def convert_variables(
    variables: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None, *, conn_id: str | None = None
) -> ConvertedVariables:
    """Typed REST variables from ``{name: value}`` or from a list of ``{"name", "value", "type"?}``.

    Raises :class:`BpmValidationError` naming the variable and its Python type for a value the
    REST API cannot carry, before anything is sent.
    """
    out = ConvertedVariables()
    if variables is None:
        return out
    if isinstance(variables, Mapping):
        items = [(str(name), value) for name, value in variables.items()]
    elif isinstance(variables, Sequence) and not isinstance(variables, str | bytes):
        items = [_list_item(item, conn_id) for item in variables]
    else:
        raise BpmValidationError(
            f"variables must be a mapping of name to value or a list of {{name, value, type}}, "
            f"got {type(variables).__name__}",
            system=SYSTEM,
            conn_id=conn_id,
        )
    for name, value in items:
        if not name:
            raise BpmValidationError("a variable needs a non-empty name", system=SYSTEM, conn_id=conn_id)
        if name in out.binary or any(v["name"] == name for v in out.plain):
            raise BpmValidationError(f"variable {name!r} is given twice", system=SYSTEM, conn_id=conn_id)
        explicit = _explicit(name, value, conn_id)
        if explicit is not None:
            if explicit.get("type") in BINARY_TYPES and isinstance(explicit.get("value"), bytes | bytearray):
                out.binary[name] = bytes(explicit["value"])
            else:
                out.plain.append(explicit)
            continue
        if isinstance(value, bytes | bytearray | memoryview):
            out.binary[name] = bytes(value)
            continue
        out.plain.append(typed_variable(name, value, conn_id=conn_id))
    return out


def _list_item(item: Any, conn_id: str | None) -> tuple[str, Any]:
    if not isinstance(item, Mapping) or "name" not in item or "value" not in item:
        raise BpmValidationError(
            f"a variable in a list must be a mapping with 'name' and 'value' (and optionally 'type'), "
            f"got {item!r}",
            system=SYSTEM,
            conn_id=conn_id,
        )
    name = str(item["name"])
    if "type" in item:
        return name, {key: value for key, value in item.items() if key != "name"}
    return name, item["value"]


def _explicit(name: str, value: Any, conn_id: str | None) -> dict[str, Any] | None:
    """``{"type": ..., "value": ...}`` (optionally with name/scope) passes through untouched."""
    if not isinstance(value, Mapping):
        return None
    keys = set(value)
    if not keys >= EXPLICIT_KEYS or not keys <= EXPLICIT_KEYS | EXPLICIT_OPTIONAL_KEYS:
        return None
    if "name" in value and str(value["name"]) != name:
        raise BpmValidationError(
            f"variable {name!r} carries a different name {value['name']!r}", system=SYSTEM, conn_id=conn_id
        )
    if not isinstance(value["type"], str) or not value["type"]:
        raise BpmValidationError(
            f"variable {name!r}: 'type' must be a type name such as 'string' or 'long', "
            f"got {value['type']!r}",
            system=SYSTEM,
            conn_id=conn_id,
        )
    explicit = {"name": name, "type": value["type"], "value": value["value"]}
    if isinstance(explicit["value"], datetime | date):
        explicit["value"] = format_date(explicit["value"])
    if "scope" in value:
        explicit["scope"] = value["scope"]
    return explicit


def typed_variable(name: str, value: Any, *, conn_id: str | None = None) -> dict[str, Any]:
    """One ``{name, type, value}`` for a Python value (bytes excluded: they go as multipart)."""
    if value is None:
        # No type: the engine stores a null variable.
        return {"name": name, "value": None}
    if isinstance(value, bool):
        return {"name": name, "type": "boolean", "value": value}
    if isinstance(value, int):
        if INT32[0] <= value <= INT32[1]:
            return {"name": name, "type": "integer", "value": value}
        if INT64[0] <= value <= INT64[1]:
            return {"name": name, "type": "long", "value": value}
        raise _unsupported(name, value, conn_id, "the integer does not fit a Java long (64 bits)")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _unsupported(name, value, conn_id, "NaN and infinity cannot be sent as JSON")
        return {"name": name, "type": "double", "value": value}
    if isinstance(value, str):
        return {"name": name, "type": "string", "value": value}
    if isinstance(value, datetime | date):
        return {"name": name, "type": "date", "value": format_date(value)}
    if isinstance(value, Mapping | list | tuple):
        # Flowable stores these as its "json" type; Activiti 5 (WSO2 EI) has no json type and
        # answers 400, which surfaces as a BpmValidationError with the server's message.
        try:
            json.dumps(value)
        except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise _unsupported(name, value, conn_id, f"not JSON-serialisable ({exc})") from None
        return {"name": name, "type": "json", "value": list(value) if isinstance(value, tuple) else value}
    raise _unsupported(name, value, conn_id)


def _unsupported(name: str, value: Any, conn_id: str | None, why: str = "") -> BpmValidationError:
    hint = why or (
        "use str, bool, int, float, date/datetime, bytes, dict/list, "
        "or an explicit {'type': ..., 'value': ...}"
    )
    return BpmValidationError(
        f"variable {name!r}: a value of type {type(value).__name__} cannot be sent: {hint}",
        system=SYSTEM,
        conn_id=conn_id,
    )


def _utc(value: date | datetime) -> datetime:
    """A date is its midnight in UTC; a naive datetime is taken as UTC."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time(0, 0), tzinfo=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_date(value: date | datetime) -> str:
    """A date inside a JSON body (variables, ``dueDate``): ISO 8601 in UTC with milliseconds.

    JSON bodies go through Jackson's ISO 8601 parser, which takes optional fractions (WSO2's own
    documentation sends ``"dueDate": "2015-01-17T13:06:02.438+02:00"``). Query strings do not:
    use :func:`format_query_date` there.
    """
    moment = _utc(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def format_query_date(value: date | datetime) -> str:
    """A date in a URL query (``startedAfter=...``): ``2015-01-17T11:06:02Z``, whole seconds, UTC.

    Activiti 5.21 and WSO2 EI parse query dates with the pattern ``yyyy-MM-dd'T'HH:mm:ssz``
    (RequestUtil.getDate): a fraction of a second is a 400. Flowable reads this form too.
    """
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_date(value: Any) -> datetime | None:
    """A date as the engines print it (``...+0000``, ``...+05:30``, ``...Z``); None if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def python_value(variable: Mapping[str, Any]) -> Any:
    """The Python value of one REST variable; binary ones are None (their data is at ``valueUrl``)."""
    kind = variable.get("type")
    value = variable.get("value")
    if value is None or kind in BINARY_TYPES:
        return None
    if kind in NUMBER_TYPES:
        return int(value)
    if kind == "double":
        return float(value)
    if kind == "date":
        return parse_date(value) or value
    return value
