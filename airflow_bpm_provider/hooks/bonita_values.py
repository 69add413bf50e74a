"""Bonita's value formats: case states, Java-typed variables, dates, search totals, contract errors.

Pure functions with no I/O, so the hook stays about HTTP and these rules are tested on their own.
Sources: Bonita's OpenAPI spec (``components/schemas/ProcessInstance.yaml`` for the states,
``paths/API@bpm@caseVariable@{id}@{variableName}.yaml`` for the allowed variable types) and the
data-and-documents page of Bonita's documentation (seed 001).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from airflow_bpm_provider.exceptions import BpmConfigError, BpmValidationError
from airflow_bpm_provider.models import ProcessState

# Every state of ProcessInstance.yaml. "initializing" and "completing" are transitions of a case
# that is still live (its end is not yet archived), so they count as RUNNING: a sensor waiting for
# COMPLETED keeps waiting until Bonita really says "completed". "aborting" is on its way to
# "aborted", which is an end by cancellation, so it already counts as CANCELLED.
CASE_STATES: Mapping[str, ProcessState] = {
    "initializing": ProcessState.RUNNING,
    "started": ProcessState.RUNNING,
    "completing": ProcessState.RUNNING,
    "suspended": ProcessState.SUSPENDED,
    "completed": ProcessState.COMPLETED,
    "cancelled": ProcessState.CANCELLED,
    "aborted": ProcessState.CANCELLED,
    "aborting": ProcessState.CANCELLED,
    "error": ProcessState.FAILED,
}

STRING, INTEGER, LONG, DOUBLE, BOOLEAN, DATE = (
    "java.lang.String",
    "java.lang.Integer",
    "java.lang.Long",
    "java.lang.Double",
    "java.lang.Boolean",
    "java.util.Date",
)
# The only types PUT /API/bpm/caseVariable accepts (spec: caseVariable path, "Warning" paragraph).
UPDATABLE_TYPES = (STRING, INTEGER, DOUBLE, LONG, BOOLEAN, DATE)
_SHORT_TYPES = {name.rsplit(".", 1)[1].lower(): name for name in UPDATABLE_TYPES}
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# How Bonita writes java.util.Date values in variables: Java's Date.toString() pattern
# "EEE MMM dd HH:mm:ss z yyyy" with English names (the REST layer parses updates with that
# pattern). Month and day names are spelled out here so the locale of this process cannot change them.
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Bonita's own timestamps ("start", "end_date", "creationDate", ...): 'yyyy-MM-dd HH:mm:ss.SSS'.
_TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")


def process_state(raw: str | None, *, case_id: str) -> ProcessState:
    """The neutral state of a Bonita case state; an unknown state is an error, never a guess."""
    state = CASE_STATES.get(raw.strip().lower()) if isinstance(raw, str) else None
    if state is None:
        from airflow_bpm_provider.exceptions import BpmServerError

        known = ", ".join(CASE_STATES)
        raise BpmServerError(
            f"case {case_id} has the unknown state {raw!r}; known states: {known}", system="Bonita"
        )
    return state


def parse_timestamp(value: Any, zone: tzinfo = UTC) -> datetime | None:
    """A Bonita timestamp (server local time, which ``zone`` names) as an aware datetime."""
    if value in (None, "") or not isinstance(value, str):
        return None
    for fmt in _TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=zone)
        except ValueError:
            continue
    return None


def total_from_content_range(value: str | None) -> int | None:
    """The total of a search from ``Content-Range`` ("0-9/42", or just "42"); None if absent."""
    if not value:
        return None
    text = value.strip().rsplit("/", 1)[-1].strip()
    return int(text) if text.isdigit() else None


def format_java_date(value: date | datetime) -> str:
    """``value`` as Java's Date.toString() in UTC (a naive datetime is UTC, a date is midnight UTC)."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return (
        f"{_DAYS[value.weekday()]} {_MONTHS[value.month - 1]} {value.day:02d} "
        f"{value:%H:%M:%S} UTC {value.year}"
    )


def parse_java_date(value: str) -> datetime | None:
    """Inverse of :func:`format_java_date` for the zones Bonita servers usually print (UTC/GMT)."""
    parts = value.split()
    if len(parts) != 6 or parts[1] not in _MONTHS or parts[4] not in ("UTC", "GMT"):
        return None
    try:
        clock = datetime.strptime(parts[3], "%H:%M:%S")
        return datetime(
            int(parts[5]), _MONTHS.index(parts[1]) + 1, int(parts[2]),
            clock.hour, clock.minute, clock.second, tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        return None


def java_type_name(name: str) -> str:
    """A full Java class name from ``"java.lang.Long"`` or a short ``"Long"``; only updatable types."""
    text = str(name).strip()
    if text in UPDATABLE_TYPES:
        return text
    full = _SHORT_TYPES.get(text.lower())
    if full is None:
        raise BpmConfigError(
            f"{name!r} is not a type Bonita can update a case variable with; use one of: "
            + ", ".join(UPDATABLE_TYPES)
        )
    return full


def to_java(value: Any, *, java_type: str | None = None, variable: str = "value") -> tuple[str, str]:
    """``(type, text)`` for PUT caseVariable: Bonita converts the text with the named Java type.

    Without ``java_type`` the type follows the Python value: str → String, bool → Boolean,
    int → Integer when it fits in 32 bits, else Long (a variable declared Long therefore needs an
    explicit type for small numbers), float/Decimal → Double, date/datetime → Date. A
    ``(type, value)`` tuple names the type explicitly. None is refused with BpmValidationError:
    ProcessInstanceVariableUpdateRequest.yaml's ``value`` is a string, not nullable.
    """
    if isinstance(value, tuple) and len(value) == 2 and java_type is None:
        java_type, value = value
    if value is None:
        raise BpmValidationError(
            f"variable {variable!r}: Bonita cannot set a case variable to None (the update's value "
            "is a string that may not be null); send a value",
            system="Bonita",
        )
    if java_type is not None:
        java_type = java_type_name(java_type)
        return java_type, _text_for(java_type, value, variable)
    if isinstance(value, bool):
        return BOOLEAN, _text_for(BOOLEAN, value, variable)
    if isinstance(value, int):
        return (INTEGER if INT32_MIN <= value <= INT32_MAX else LONG), str(value)
    if isinstance(value, float | Decimal):
        return DOUBLE, _text_for(DOUBLE, value, variable)
    if isinstance(value, date):
        return DATE, format_java_date(value)
    if isinstance(value, str):
        return STRING, value
    raise BpmConfigError(
        f"variable {variable!r}: cannot send a {type(value).__name__} to Bonita; use str, bool, int, "
        "float, date/datetime or a (java type, value) tuple"
    )


def _text_for(java_type: str, value: Any, variable: str) -> str:
    def wrong() -> BpmConfigError:
        return BpmConfigError(f"variable {variable!r}: {value!r} cannot be sent as {java_type}")

    if java_type == STRING:
        return str(value)
    if java_type == BOOLEAN:
        if isinstance(value, bool):
            return "true" if value else "false"
        if str(value).strip().lower() in ("true", "false"):
            return str(value).strip().lower()
        raise wrong()
    if java_type in (INTEGER, LONG):
        if isinstance(value, bool):
            raise wrong()
        try:
            number = int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            raise wrong() from None
        if java_type == INTEGER and not INT32_MIN <= number <= INT32_MAX:
            raise BpmConfigError(
                f"variable {variable!r}: {number} does not fit in java.lang.Integer; use Long"
            )
        return str(number)
    if java_type == DOUBLE:
        if isinstance(value, bool):
            raise wrong()
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise wrong() from None
        if math.isnan(number) or math.isinf(number):
            raise wrong()
        return repr(number)
    # java.util.Date
    if isinstance(value, date):
        return format_java_date(value)
    if isinstance(value, str) and parse_java_date(value) is not None:
        return value
    raise wrong()


def from_java(java_type: str | None, value: Any) -> Any:
    """A variable's value as Python: numbers, booleans and dates decoded, anything else as sent."""
    if value is None or not isinstance(value, str):
        return value
    kind = java_type.strip() if isinstance(java_type, str) else ""
    try:
        if kind in (INTEGER, LONG, "java.lang.Short", "java.lang.Byte"):
            return int(value)
        if kind in (DOUBLE, "java.lang.Float"):
            return float(value)
    except ValueError:
        return value
    if kind == BOOLEAN and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if kind == DATE:
        if value.strip().lstrip("-").isdigit():
            try:
                return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
            except (ValueError, OverflowError, OSError):  # beyond the years a datetime can hold
                return value
        return parse_java_date(value) or value
    return value


def contract_explanations(body: Any) -> list[str]:
    """The ``explanations`` of a Bonita error body (Error.yaml), one per violated contract rule."""
    if not isinstance(body, Mapping):
        return []
    explanations = body.get("explanations")
    if isinstance(explanations, list):
        return [str(item) for item in explanations if item not in (None, "")]
    return []


def error_message(body: Any) -> str | None:
    """The message of a Bonita error body: Error.yaml's ``message``, or the 429 body's reason."""
    if not isinstance(body, Mapping):
        return None
    for key in ("message", "reasonPhrase", "description"):
        if body.get(key):
            text = str(body[key])
            if key == "reasonPhrase" and body.get("description"):
                text = f"{body['description']}: {text}"
            return text
    return str(body["exception"]) if body.get("exception") else None


def is_true(value: Any) -> bool:
    """Bonita sends booleans as JSON booleans or as the strings "true"/"false"."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"
