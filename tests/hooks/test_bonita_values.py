"""Bonita's value formats, without HTTP: states, Java-typed values, dates, totals, error bodies."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from airflow_bpm_provider.exceptions import BpmConfigError, BpmServerError, BpmValidationError
from airflow_bpm_provider.hooks import bonita_values as bv
from airflow_bpm_provider.models import ProcessState

# components/schemas/ProcessInstance.yaml, property "state".
SPEC_CASE_STATES = [
    "initializing",
    "started",
    "suspended",
    "cancelled",
    "aborted",
    "completing",
    "completed",
    "error",
    "aborting",
]


def test_every_documented_case_state_is_mapped_and_ends_are_right():
    assert sorted(bv.CASE_STATES) == sorted(SPEC_CASE_STATES)
    ended = {raw for raw, state in bv.CASE_STATES.items() if state.ended}
    assert ended == {"completed", "cancelled", "aborted", "aborting", "error"}
    assert bv.process_state("STARTED", case_id="1") is ProcessState.RUNNING
    with pytest.raises(BpmServerError, match="case 7 has the unknown state 'paused'"):
        bv.process_state("paused", case_id="7")


@pytest.mark.parametrize(
    ("header", "total"),
    [("0-9/42", 42), ("42", 42), (" 2-3 / 5 ", 5), ("0-9/*", None), (None, None), ("", None)],
)
def test_total_from_content_range(header, total):
    assert bv.total_from_content_range(header) == total


def test_java_dates_round_trip_in_utc():
    moment = datetime(2024, 2, 29, 23, 30, 5, tzinfo=timezone(timedelta(hours=-2)))
    text = bv.format_java_date(moment)
    assert text == "Fri Mar 01 01:30:05 UTC 2024"
    assert bv.parse_java_date(text) == moment.astimezone(UTC)
    assert bv.format_java_date(date(2024, 1, 1)) == "Mon Jan 01 00:00:00 UTC 2024"
    assert bv.format_java_date(datetime(2024, 1, 1, 8)) == "Mon Jan 01 08:00:00 UTC 2024"  # naive = UTC
    assert bv.parse_java_date("Mon Jan 01 08:00:00 CET 2024") is None  # zones other than UTC/GMT unknown


def test_python_values_from_java():
    assert bv.from_java("java.lang.Long", "12") == 12
    assert bv.from_java("java.lang.Float", "14.2") == 14.2
    assert bv.from_java("java.lang.Boolean", "TRUE") is True
    assert bv.from_java("java.util.Date", "1704067200000") == datetime(2024, 1, 1, tzinfo=UTC)
    assert bv.from_java("java.util.Date", "Mon Jan 01 00:00:00 UTC 2024") == datetime(2024, 1, 1, tzinfo=UTC)
    assert bv.from_java("java.lang.Integer", "n/a") == "n/a"  # undecodable stays as sent
    assert bv.from_java("com.company.model.Invoice", {"id": 1}) == {"id": 1}


def test_to_java_bounds_and_names():
    assert bv.to_java(2**31 - 1) == ("java.lang.Integer", "2147483647")
    assert bv.to_java(2**31) == ("java.lang.Long", "2147483648")
    assert bv.to_java(-(2**31)) == ("java.lang.Integer", "-2147483648")
    assert bv.to_java(True, java_type="boolean") == ("java.lang.Boolean", "true")
    assert bv.to_java("false", java_type="Boolean") == ("java.lang.Boolean", "false")
    assert bv.to_java(3, java_type="Double") == ("java.lang.Double", "3.0")
    with pytest.raises(BpmConfigError, match="not a type Bonita can update"):
        bv.to_java(1, java_type="java.math.BigDecimal")
    with pytest.raises(BpmConfigError, match=r"cannot be sent as java\.lang\.Double"):
        bv.to_java(float("nan"), java_type="Double")


@pytest.mark.parametrize(
    ("value", "java_type"), [(None, None), (None, "String"), (("java.lang.Long", None), None)]
)
def test_to_java_refuses_none(value, java_type):
    # ProcessInstanceVariableUpdateRequest.yaml: "value" is a string; the spec has no null to clear with.
    with pytest.raises(BpmValidationError, match="'amount': Bonita cannot set a case variable to None"):
        bv.to_java(value, java_type=java_type, variable="amount")


def test_error_bodies():
    assert bv.error_message({"message": "m", "exception": "e"}) == "m"
    assert bv.error_message({"code": 429, "description": "Unable to start", "reasonPhrase": "limit"}) == (
        "Unable to start: limit"
    )
    assert bv.error_message({"exception": "org.X"}) == "org.X"
    assert bv.error_message(["not", "a", "dict"]) is None
    assert bv.contract_explanations({"explanations": ["a", "", None, "b"]}) == ["a", "b"]
    assert bv.contract_explanations({"explanations": "text"}) == []


def test_timestamps_take_the_server_zone():
    paris = __import__("zoneinfo").ZoneInfo("Europe/Paris")
    parsed = bv.parse_timestamp("2024-07-01 12:00:00.250", paris)
    assert parsed is not None and parsed.utcoffset() == timedelta(hours=2) and parsed.microsecond == 250000
    assert bv.parse_timestamp("2024-07-01 12:00:00", UTC) == datetime(2024, 7, 1, 12, tzinfo=UTC)
    assert bv.parse_timestamp("", UTC) is None and bv.parse_timestamp("yesterday", UTC) is None
