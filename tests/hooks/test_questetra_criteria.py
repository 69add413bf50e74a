"""Criteria XML for the process and task searches: built from mappings, or checked when raw."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from airflow_bpm_provider.exceptions import BpmConfigError
from airflow_bpm_provider.hooks.questetra_criteria import (
    PROCESS_ROOT,
    WORKITEM_ROOT,
    build_criteria,
    check_criteria_xml,
    criteria_text,
)

# The criteria examples of the DataSpider BPM Workflow API document.
VENDOR_PROCESS_EXAMPLE = """
 <process-instance-criteria>
     <process-model-info-id>33</process-model-info-id>
     <start-date-from>2011-01-01</start-date-from>
     <data>
         <string>
             <data-definition-number>0</data-definition-number>
             <not-empty />
         </string>
         <decimal>
             <data-definition-number>1</data-definition-number>
             <greater-equals />
             <value>100</value>
         </decimal>
         <select>
             <data-definition-number>10</data-definition-number>
             <view />
         </select>
     </data>
 </process-instance-criteria>
"""

VENDOR_WORKITEM_EXAMPLE = """
 <workitem-criteria>
     <process-model-info-id>33</process-model-info-id>
     <start-date-from>2013-01-01</start-date-from>
     <node-number>0</node-number>
     <workitem-states><workitem-state>ENDED</workitem-state></workitem-states>
     <workitem-allocated-quser-id>#me</workitem-allocated-quser-id>
     <workitem-end-date-from>2013-01-01 09:00</workitem-end-date-from>
     <workitem-end-date-to>2013-06-30 18:00</workitem-end-date-to>
     <data>
         <string>
             <data-definition-number>0</data-definition-number>
             <not-empty />
         </string>
         <decimal>
             <data-definition-number>1</data-definition-number>
             <greater-equals />
             <value>100</value>
         </decimal>
         <select>
             <data-definition-number>10</data-definition-number>
             <view />
         </select>
     </data>
 </workitem-criteria>
"""

VENDOR_DATA = [
    {"type": "string", "number": 0, "condition": "not-empty"},
    {"type": "decimal", "number": 1, "condition": "greater-equals", "value": 100},
    {"type": "select", "number": 10},
]


def canonical(text: str) -> bytes:
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(text.strip().encode(), parser), method="c14n")


def test_builds_the_vendor_process_example():
    xml = build_criteria(
        {"process_model_info_id": 33, "start_date_from": date(2011, 1, 1), "data": VENDOR_DATA},
        root=PROCESS_ROOT,
    )
    assert canonical(xml) == canonical(VENDOR_PROCESS_EXAMPLE)


def test_builds_the_vendor_workitem_example_in_document_order():
    xml = build_criteria(
        {
            "data": VENDOR_DATA,
            "workitem_end_date_to": datetime(2013, 6, 30, 18, 0),
            "workitem_end_date_from": "2013-01-01 09:00",
            "workitem_allocated_quser_id": "#me",
            "workitem_states": "ended",
            "node_number": 0,
            "start_date_from": "2013-01-01",
            "process_model_info_id": "33",
        },
        root=WORKITEM_ROOT,
    )
    assert canonical(xml) == canonical(VENDOR_WORKITEM_EXAMPLE)


def test_lists_repeat_and_states_are_normalised():
    xml = build_criteria(
        {"title": ["Invoice", "2024"], "states": ["started", "FAILED"], "sort_direction": "asc"},
        root=PROCESS_ROOT,
    )
    assert xml == (
        "<process-instance-criteria><states><state>STARTED</state><state>FAILED</state></states>"
        "<title>Invoice</title><title>2024</title><sort-direction>ASC</sort-direction>"
        "</process-instance-criteria>"
    )


def test_values_are_escaped_by_the_xml_library():
    title = """<&>"' ]]> <title>x</title>"""
    xml = build_criteria({"title": title}, root=PROCESS_ROOT)
    assert "&lt;&amp;&gt;" in xml
    assert "<title>x</title>" not in xml
    parsed = etree.fromstring(xml.encode())
    assert [element.text for element in parsed] == [title]


def test_aware_datetimes_follow_the_connection_time_zone():
    xml = build_criteria(
        {"start_date_from": datetime(2024, 1, 31, 15, 0, tzinfo=UTC)},
        root=PROCESS_ROOT,
        tz=ZoneInfo("Asia/Tokyo"),
    )
    assert "<start-date-from>2024-02-01 00:00</start-date-from>" in xml


def test_workitem_only_keys_are_refused_for_processes():
    with pytest.raises(BpmConfigError, match=r"unknown criteria key.*node_number"):
        build_criteria({"node_number": 1}, root=PROCESS_ROOT)


@pytest.mark.parametrize(
    "criteria, message",
    [
        (
            {"titel": "x"},
            r"unknown criteria key\(s\) for <process-instance-criteria>: titel; valid keys: process_model",
        ),
        ({"states": ["DONE"]}, "'states' must be one of STARTED, ENDED, FAILED, got 'DONE'"),
        ({"process_model_info_id": "12a"}, "'process_model_info_id' must be an integer id"),
        ({"init_quser_id": "me"}, "'init_quser_id' must be an integer id"),
        ({"sort_property": "title"}, "must be one of processInstanceStartDatetime"),
        ({"sort_direction": "UP"}, "ASC, DESC"),
        ({"data": {"type": "string"}}, "must be a list"),
        ({"data": [{"type": "text", "number": 1}]}, r"data\[0\] type must be one of string"),
        ({"data": [{"type": "string"}]}, r"data\[0\] needs 'number'"),
        ({"data": [{"type": "string", "number": "x"}]}, "must be an integer id"),
        ({"data": [{"type": "table", "number": 1, "condition": "equals"}]}, "not valid for table items"),
        ({"data": [{"type": "string", "number": 1, "condition": "contains"}]}, "needs a 'value'"),
        ({"data": [{"type": "string", "number": 1, "value": "x"}]}, "'view' takes no value"),
        ({"data": [{"type": "string", "number": 1, "cond": "view"}]}, "unknown key"),
    ],
)
def test_mistakes_are_named(criteria, message):
    with pytest.raises(BpmConfigError, match=message):
        build_criteria(criteria, root=PROCESS_ROOT)


def test_workitem_states_and_starred_are_checked():
    xml = build_criteria(
        {"workitem_states": ["offered", "ALLOCATED"], "workitem_starred": True}, root=WORKITEM_ROOT
    )
    assert xml == (
        "<workitem-criteria><workitem-states><workitem-state>OFFERED</workitem-state>"
        "<workitem-state>ALLOCATED</workitem-state></workitem-states>"
        "<workitem-starred>true</workitem-starred></workitem-criteria>"
    )
    with pytest.raises(BpmConfigError, match="True or False"):
        build_criteria({"workitem_starred": "yes"}, root=WORKITEM_ROOT)


def test_date_conditions_format_date_values():
    xml = build_criteria(
        {
            "data": [
                {
                    "type": "datetime",
                    "number": 3,
                    "condition": "after-equals",
                    "value": datetime(2024, 1, 2, 3, 4),
                }
            ]
        },
        root=PROCESS_ROOT,
    )
    assert "<datetime><data-definition-number>3</data-definition-number><after-equals/>" in xml
    assert "<value>2024-01-02 03:04</value>" in xml


# ---- raw XML ------------------------------------------------------------------------------------


def test_raw_xml_is_passed_through_unchanged():
    assert criteria_text(VENDOR_PROCESS_EXAMPLE, root=PROCESS_ROOT) == VENDOR_PROCESS_EXAMPLE
    assert criteria_text(VENDOR_WORKITEM_EXAMPLE.encode(), root=WORKITEM_ROOT) == VENDOR_WORKITEM_EXAMPLE
    assert criteria_text(None, root=PROCESS_ROOT) is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("<process-instance-criteria><title>x</process-instance-criteria>", "not well-formed: .*mismatch"),
        ("<process-instance-criteria><title>a & b</title></process-instance-criteria>", "not well-formed"),
        ("   ", "criteria XML is empty"),
        (VENDOR_WORKITEM_EXAMPLE, "root element <workitem-criteria>; expected <process-instance-criteria>"),
    ],
)
def test_bad_raw_xml_is_refused_with_the_reason(text, message):
    with pytest.raises(BpmConfigError, match=message):
        check_criteria_xml(text, root=PROCESS_ROOT)


def test_a_doctype_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    text = (
        f'<!DOCTYPE process-instance-criteria [<!ENTITY x SYSTEM "file://{secret}">]>'
        "<process-instance-criteria><title>&x;</title></process-instance-criteria>"
    )
    with pytest.raises(BpmConfigError, match="must not contain a DOCTYPE") as caught:
        check_criteria_xml(text, root=PROCESS_ROOT)
    assert "TOP-SECRET" not in str(caught.value)


def test_other_types_are_refused():
    with pytest.raises(BpmConfigError, match="mapping or an XML string, got int"):
        criteria_text(5, root=PROCESS_ROOT)  # type: ignore[arg-type]
    with pytest.raises(BpmConfigError, match="criteria root must be one of"):
        build_criteria({}, root="criteria")


@pytest.mark.parametrize("data", [1, 1.5, True, date(2024, 1, 1)])
def test_data_that_is_no_list_of_conditions_is_refused(data):
    with pytest.raises(BpmConfigError, match="criteria key 'data' must be a list"):
        build_criteria({"data": data}, root=PROCESS_ROOT)


def test_criteria_bytes_that_are_not_utf8_are_refused():
    with pytest.raises(BpmConfigError, match="not UTF-8"):
        criteria_text(b"\xff<process-instance-criteria/>", root=PROCESS_ROOT)
