"""The yuuvis dialect's pure mapping functions: variables, dates, states, document references."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pendulum
import pytest

from airflow_bpm_provider.exceptions import BpmConfigError
from airflow_bpm_provider.hooks.yuuvis_mapping import (
    definition_key,
    document_references,
    format_query_date,
    has_more_items,
    process_state,
    typed_variable,
)
from airflow_bpm_provider.models import ProcessState


@pytest.mark.parametrize(
    ("value", "kind", "sent"),
    [
        ("x", "string", "x"),
        ("", "string", ""),
        (True, "boolean", True),
        (0, "integer", 0),
        (2**31 - 1, "integer", 2**31 - 1),
        (2**31, "long", 2**31),
        (-(2**31), "integer", -(2**31)),
        (-(2**31) - 1, "long", -(2**31) - 1),
        (1.5, "double", 1.5),
        (Decimal("2.25"), "double", 2.25),
        (date(2024, 2, 29), "date", "2024-02-29T00:00:00.000Z"),
        (pendulum.datetime(2024, 1, 15, 9, 0, tz="Asia/Tokyo"), "date", "2024-01-15T00:00:00.000Z"),
        ({"a": [1, 2]}, "json", {"a": [1, 2]}),
        (("x", "y"), "json", ["x", "y"]),
    ],
)
def test_typed_variable(value, kind, sent):
    assert typed_variable("v", value) == {"name": "v", "type": kind, "value": sent}


def test_typed_variable_refuses_unknown_types():
    with pytest.raises(BpmConfigError, match="variable 'v' has a type yuuvis cannot take: object"):
        typed_variable("v", object())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 5, 1, 8, 0, 0, 999999, tzinfo=UTC), "2024-05-01T08:00:00.999Z"),
        ("2024-05-01", "2024-05-01T00:00:00.000Z"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00.000Z"),
        ("2024-05-01T10:00:00.5-01:30", "2024-05-01T11:30:00.500Z"),
    ],
)
def test_format_query_date(value, expected):
    assert format_query_date(value, name="started_after") == expected


@pytest.mark.parametrize(
    ("body", "received", "size", "expected"),
    [
        ({"hasMoreItems": True}, 0, 10, True),
        ({"hasMoreItems": False}, 10, 10, False),
        ({"hasMoreItems": "true"}, 3, 10, True),
        ({}, 10, 10, True),  # no flag: a full page means there may be more
        ({}, 9, 10, False),
    ],
)
def test_has_more_items(body, received, size, expected):
    assert has_more_items(body, received, size) is expected


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ({}, ProcessState.RUNNING),
        ({"suspended": True}, ProcessState.SUSPENDED),
        ({"endTime": "2024-01-01T00:00:00Z", "suspended": True}, ProcessState.COMPLETED),
        ({"completed": True}, ProcessState.COMPLETED),
        ({"endTime": "2024-01-01T00:00:00Z", "deleteReason": "ACTIVITY_DELETED"}, ProcessState.CANCELLED),
    ],
)
def test_process_state(raw, state):
    assert process_state(raw)[0] is state


def test_definition_key():
    assert definition_key({"processDefinitionId": "follow-up:3:614232ee"}) == "follow-up"
    assert definition_key({"processDefinitionKey": "k", "processDefinitionId": "x:1:y"}) == "k"
    assert definition_key({}) is None


def test_document_references_order_shapes_and_duplicates():
    process = {
        "variables": [
            {"name": "documentId", "value": "a"},
            {"name": "more", "value": '["b", "a", "c"]'},
            {"name": "objs", "value": [{"objectId": "d"}, {"id": "e"}, {"other": 1}]},
        ],
        "attachments": ["f", "b"],
    }
    refs = document_references(process, ["documentId", "more", "objs", "absent"])
    assert refs == [
        ("a", "documentId"),
        ("b", "more"),
        ("c", "more"),
        ("d", "objs"),
        ("e", "objs"),
        ("f", "attachments"),
    ]


def test_document_references_without_variables():
    assert document_references({"id": "p"}, ["documentId"]) == []
