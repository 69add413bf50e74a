"""QuestetraHook: every answer of the wrong shape is a BpmServerError that says what was wrong.

The shapes are those of the Workflow API document (seed 003): ``{count, processInstances: [...]}``
for searches, ``{processInstance: {...}}`` for a view, ``<workitem-form>`` XML for a form.
"""

from __future__ import annotations

import json

import pytest
from airflow.models.connection import Connection
from malformed import GENERIC, assert_unexpected, serve
from pytest_httpserver import HTTPServer

from airflow_bpm_provider.hooks.questetra import QuestetraHook
from airflow_bpm_provider.hooks.retry import RetryPolicy

START = "/API/PE/ProcessModel/listStartable"
PROCESS_LIST = "/API/OR/ProcessInstance/list"
WORKITEM_LIST = "/API/OR/Workitem/list"
VIEW = "/API/OR/ProcessInstance/view"
FORM = "/API/PE/Workitem/Form/viewXml"


def make_hook(server: HTTPServer, **extra: str) -> QuestetraHook:
    connection = Connection(
        conn_id="q",
        conn_type="questetra",
        host=server.url_for("/"),
        login="a@example.com",
        password="pw-Zq81",
        extra=json.dumps(extra) if extra else None,
    )
    return QuestetraHook("q", connection=connection, retry_policy=RetryPolicy(max_attempts=1))


# (public method, the request it spoils: method and path)
METHODS = {
    "list_startable": (lambda h: h.list_startable(), "GET", START),
    "start": (lambda h: h.start(1, 2), "POST", "/API/PE/ProcessInstance/start"),
    "list_allocated": (lambda h: h.list_allocated(), "GET", "/API/PE/Workitem/listAllocated"),
    "list_offered": (lambda h: h.list_offered(), "GET", "/API/PE/Workitem/listOffered"),
    "batch_accept": (lambda h: h.batch_accept([1]), "POST", "/API/PE/Workitem/batchAccept"),
    "search_processes": (lambda h: h.search_processes(), "POST", PROCESS_LIST),
    "find_processes": (lambda h: h.find_processes(), "POST", PROCESS_LIST),
    "find_process_by_business_key": (
        lambda h: h.find_process_by_business_key("1", "k"),
        "POST",
        PROCESS_LIST,
    ),
    "search_tasks": (lambda h: h.search_tasks(), "POST", WORKITEM_LIST),
    "list_tasks": (lambda h: h.list_tasks(), "POST", WORKITEM_LIST),
    "alist_tasks": (lambda h: h.alist_tasks(), "POST", WORKITEM_LIST),
    "view_process": (lambda h: h.view_process(1), "GET", VIEW),
    "get_process": (lambda h: h.get_process("1"), "GET", VIEW),
    "aget_process": (lambda h: h.aget_process("1"), "GET", VIEW),
    "list_files": (lambda h: h.list_files("1"), "GET", VIEW),
}

ENTRY = {"processInstanceId": 1, "processInstanceState": "STARTED"}
FILES = {"processInstanceId": 1, "processInstanceState": "STARTED"}

# (method, spoiled answer, what the message says) beyond the generic spoilers
SPECIFIC = [
    (
        "find_processes",
        {"count": 1, "processInstances": ["1"]},
        "'processInstances'[0] must be an object, got a string",
    ),
    ("find_processes", {"count": 1, "processInstances": None}, "'processInstances' must be a list, got null"),
    (
        "find_processes",
        {"count": 1, "processInstances": {"a": 1}},
        "'processInstances' must be a list, got an object",
    ),
    ("find_processes", {"count": "1", "processInstances": []}, "'count' must be a count"),
    (
        "find_processes",
        {"count": 1, "processInstances": [{"processInstanceState": "STARTED"}]},
        "no usable 'processInstanceId'",
    ),
    (
        "find_processes",
        {"count": 1, "processInstances": [{**ENTRY, "processInstanceState": 3}]},
        "processInstanceState=3",
    ),
    (
        "find_processes",
        {"count": 1, "processInstances": [{**ENTRY, "processInstanceTitle": ["k"]}]},
        "'processInstanceTitle' of process 1 must be a string",
    ),
    (
        "find_processes",
        {"count": 1, "processInstances": [{**ENTRY, "processInstanceStartDatetime": "yesterday"}]},
        "not a date and time",
    ),
    (
        "find_processes",
        {"count": 1, "processInstances": [{**ENTRY, "processInstanceStartDatetime": 17}]},
        "not a date and time",
    ),
    (
        "list_startable",
        {"count": 1, "startableActivities": [7]},
        "'startableActivities'[0] must be an object",
    ),
    ("list_tasks", {"count": 1, "workitems": [{"nodeName": "x"}]}, "'workitems'[0] has no usable 'id'"),
    (
        "alist_tasks",
        {"count": 1, "workitems": [{"id": 1, "nodeName": ["x"]}]},
        "'nodeName' of a workitem must be a string",
    ),
    ("batch_accept", {"results": ["ok"]}, "'results'[0] must be an object"),
    ("batch_accept", {"results": None}, "'results' must be a list, got null"),
    ("start", {"workitem": ["1"]}, "no 'workitem' object (got a list)"),
    ("get_process", {"processInstance": "1"}, "no 'processInstance' object (got a string)"),
    ("list_files", {"processInstance": {**FILES, "data": ["a"]}}, "'data' must be an object, got a list"),
    ("list_files", {"processInstance": {**FILES, "data": {"1": "x"}}}, "data item '1' must be an object"),
    (
        "list_files",
        {"processInstance": {**FILES, "data": {"1": {"dataType": "FILE2", "value": "a.pdf"}}}},
        "must be a list, got a string",
    ),
    (
        "list_files",
        {"processInstance": {**FILES, "data": {"1": {"dataType": "FILE2", "value": ["a.pdf"]}}}},
        "[0] must be an object",
    ),
    (
        "list_files",
        {"processInstance": {**FILES, "data": {"1": {"dataType": "FILE2", "value": [{"name": "a"}]}}}},
        "has no usable 'id'",
    ),
    (
        "list_files",
        {
            "processInstance": {
                **FILES,
                "data": {"1": {"id": 5, "dataType": "FILE2", "value": [{"id": 1, "length": "9"}]}},
            }
        },
        "'length' of a file of data item '1' must be a number",
    ),
]


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize(("label", "body", "says"), GENERIC, ids=[g[0] for g in GENERIC])
def test_every_reading_method_refuses_a_malformed_answer(httpserver: HTTPServer, name, label, body, says):
    action, method, path = METHODS[name]
    serve(httpserver, path, body, method)
    hook = make_hook(httpserver)
    assert_unexpected(
        lambda: action(hook), system="Questetra", conn_id="q", method=method, path=path, says=says
    )


@pytest.mark.parametrize(("name", "body", "says"), SPECIFIC, ids=[f"{s[0]}:{s[2][:40]}" for s in SPECIFIC])
def test_a_documented_field_of_the_wrong_shape_is_named(httpserver: HTTPServer, name, body, says):
    action, method, path = METHODS[name]
    serve(httpserver, path, body, method)
    hook = make_hook(httpserver)
    assert_unexpected(
        lambda: action(hook), system="Questetra", conn_id="q", method=method, path=path, says=says
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"<html>login</html>", "expected <workitem-form>, got <html>"),
        (b"{not xml", "the body is not XML"),
        (b"<workitem-form><form-data number='x'/></workitem-form>", "no data item number"),
        (b"<" * 10_000, "the body is not XML"),
        (b"<a>" * 5_000 + b"</a>" * 5_000, "Excessive depth"),
    ],
)
def test_a_task_form_that_is_not_the_documented_xml_is_named(httpserver: HTTPServer, body, says):
    httpserver.expect_request(FORM).respond_with_data(body, content_type="text/xml")
    hook = make_hook(httpserver)
    assert_unexpected(
        lambda: hook.view_form(7), system="Questetra", conn_id="q", method="GET", path=FORM, says=says
    )


def test_a_server_that_repeats_its_full_page_is_stopped(httpserver: HTTPServer):
    """Questetra pages with start/limit; a server that ignores start sends page 1 forever."""
    same = {"count": 9_999_999, "processInstances": [{**ENTRY, "processInstanceId": i} for i in (1, 2)]}
    serve(httpserver, PROCESS_LIST, same, "POST")
    hook = make_hook(httpserver, page_size="2")
    exc = assert_unexpected(
        lambda: hook.find_processes(), system="Questetra", conn_id="q", method="POST", path=PROCESS_LIST,
        says="page 2 repeats the items of page 1: the server ignores paging",
    )  # fmt: skip
    assert exc.status == 200
    assert len(httpserver.log) == 2


def test_the_flow_for_triggers_is_stopped_too(httpserver: HTTPServer):
    same = {"count": 9_999_999, "workitems": [{"id": 1, "state": "OFFERED"}, {"id": 2, "state": "OFFERED"}]}
    serve(httpserver, WORKITEM_LIST, same, "POST")
    hook = make_hook(httpserver, page_size="2")
    assert_unexpected(
        lambda: hook.alist_tasks(), system="Questetra", conn_id="q", method="POST", path=WORKITEM_LIST,
        says="page 2 repeats the items of page 1",
    )  # fmt: skip


def test_the_listing_is_lazy_one_page_at_a_time(httpserver: HTTPServer):
    """find_processes is a generator: taking the first process reads only the first page."""
    page = {"count": 5000, "processInstances": [{**ENTRY, "processInstanceId": i} for i in range(1000)]}
    serve(httpserver, PROCESS_LIST, page, "POST")
    first = next(make_hook(httpserver).find_processes())
    assert first.id == "0"
    assert len(httpserver.log) == 1
