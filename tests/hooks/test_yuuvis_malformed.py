"""YuuvisBpmHook: every answer of the wrong shape is a BpmServerError that says what was wrong.

Shapes from the yuuvis Momentum BPM engine documentation (seed 002): lists are the envelope
``{objects: [...], numItems, totalNumItems?, hasMoreItems}``, a process or task an object with an
``id``; DMS metadata ``{properties, contentStreams: [{fileName, length, mimeType}]}``.
"""

from __future__ import annotations

import pytest
from airflow.models.connection import Connection
from malformed import GENERIC, assert_unexpected, serve
from pytest_httpserver import HTTPServer

from airflow_bpm_provider.hooks.retry import RetryPolicy
from airflow_bpm_provider.hooks.yuuvis import YuuvisBpmHook

API = "/bpm-engine/api"


def make_hook(server: HTTPServer, **extra: str) -> YuuvisBpmHook:
    conn = Connection(
        conn_id="y", conn_type="yuuvis_bpm", host=server.url_for("/").rstrip("/"), login="clerk",
        password="clerk-pw-31", extra={"tenant": "acme", **extra},
    )  # fmt: skip
    return YuuvisBpmHook("y", connection=conn, retry_policy=RetryPolicy(max_attempts=1))


def envelope(objects: list, more: object = False) -> dict:
    return {"objects": objects, "numItems": len(objects), "hasMoreItems": more}


METHODS = {
    "start_process": (lambda h: h.start_process("order"), "POST", f"{API}/processes"),
    "get_process": (lambda h: h.get_process("p-1"), "GET", f"{API}/processes/p-1"),
    "aget_process": (lambda h: h.aget_process("p-1"), "GET", f"{API}/processes/p-1"),
    "get_process_raw": (lambda h: h.get_process_raw("p-1"), "GET", f"{API}/processes/p-1"),
    "list_files": (lambda h: h.list_files("p-1"), "GET", f"{API}/processes/p-1"),
    "find_processes": (lambda h: h.find_processes(), "GET", f"{API}/processes"),
    "find_process_by_business_key": (
        lambda h: h.find_process_by_business_key("order", "k"),
        "GET",
        f"{API}/processes",
    ),
    "list_process_definitions": (lambda h: h.list_process_definitions(), "GET", f"{API}/process-definitions"),
    "latest_process_definition": (
        lambda h: h.latest_process_definition("order"),
        "GET",
        f"{API}/process-definitions",
    ),
    "list_tasks": (lambda h: h.list_tasks(), "GET", f"{API}/tasks"),
    "alist_tasks": (lambda h: h.alist_tasks(), "GET", f"{API}/tasks"),
    "find_tasks": (lambda h: h.find_tasks(), "GET", f"{API}/tasks"),
    "get_task": (lambda h: h.get_task("t-1"), "GET", f"{API}/tasks/t-1"),
    "get_object_metadata": (lambda h: h.get_object_metadata("o-1"), "GET", "/api/dms/objects/o-1"),
}

SPECIFIC = [
    ("find_processes", envelope(["p-1"]), "'objects'[0] must be an object, got a string"),
    ("find_processes", {"objects": None, "hasMoreItems": False}, "'objects' must be a list, got null"),
    (
        "find_processes",
        {"objects": {"id": "p-1"}, "hasMoreItems": False},
        "'objects' must be a list, got an object",
    ),
    ("find_processes", envelope([{"name": "x"}]), "'objects'[0] has no usable 'id'"),
    (
        "find_processes",
        envelope([{"id": "p-1"}], more=1),
        "'hasMoreItems' must be true or false, got a number",
    ),
    (
        "find_processes",
        envelope([{"id": "p-1", "startTime": 17}]),
        "'startTime' of process instance p-1 must be a string",
    ),
    (
        "find_processes",
        envelope([{"id": "p-1", "businessKey": ["k"]}]),
        "'businessKey' of process instance p-1",
    ),
    ("get_process", {"id": ["p-1"]}, "a process instance without an id"),
    ("get_process_raw", ["p-1"], "the process instance must be an object, got a list"),
    ("list_files", "p-1", "the process instance must be an object, got a string"),
    ("start_process", {"objects": [], "hasMoreItems": False}, "a process instance without an id"),
    (
        "latest_process_definition",
        envelope([{"id": "d-1", "version": "two"}]),
        "'version' of definition 'order' must be a number",
    ),
    (
        "list_tasks",
        envelope([{"id": "t-1", "assignee": {"id": 1}}]),
        "'assignee' of task t-1 must be a string",
    ),
    ("get_task", {"id": "t-1", "processInstanceId": ["p"]}, "'processInstanceId' of task t-1 must be an id"),
    ("get_object_metadata", [], "the DMS object must be an object, got a list"),
]


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize(("label", "body", "says"), GENERIC, ids=[g[0] for g in GENERIC])
def test_every_reading_method_refuses_a_malformed_answer(httpserver: HTTPServer, name, label, body, says):
    action, method, path = METHODS[name]
    serve(httpserver, path, body, method)
    hook = make_hook(httpserver)
    assert_unexpected(
        lambda: action(hook), system=hook.system, conn_id="y", method=method, path=path, says=says
    )


@pytest.mark.parametrize(("name", "body", "says"), SPECIFIC, ids=[f"{s[0]}:{s[2][:40]}" for s in SPECIFIC])
def test_a_documented_field_of_the_wrong_shape_is_named(httpserver: HTTPServer, name, body, says):
    action, method, path = METHODS[name]
    serve(httpserver, path, body, method)
    hook = make_hook(httpserver)
    assert_unexpected(
        lambda: action(hook), system=hook.system, conn_id="y", method=method, path=path, says=says
    )


def test_a_file_with_metadata_of_the_wrong_shape_is_named(httpserver: HTTPServer):
    serve(
        httpserver,
        f"{API}/processes/p-1",
        {"id": "p-1", "variables": [{"name": "documentId", "value": "o-1"}]},
    )
    serve(httpserver, "/api/dms/objects/o-1", {"contentStreams": [{"fileName": ["a.pdf"], "length": 3}]})
    hook = make_hook(httpserver)
    assert_unexpected(
        lambda: hook.list_files("p-1"), system=hook.system, conn_id="y", method="GET",
        path="/api/dms/objects/o-1",
        says="'fileName' of the content of DMS object o-1 must be a string",
    )  # fmt: skip


@pytest.mark.parametrize("name", ["find_processes", "alist_tasks"])
def test_a_server_that_repeats_its_full_page_is_stopped(httpserver: HTTPServer, name):
    """yuuvis pages with page/size until hasMoreItems is false; a server that ignores page repeats page 0."""
    action, method, path = METHODS[name]
    serve(httpserver, path, envelope([{"id": "a"}, {"id": "b"}], more=True), method)
    hook = make_hook(httpserver, page_size="2")
    assert_unexpected(
        lambda: action(hook), system=hook.system, conn_id="y", method=method, path=path,
        says="page 2 repeats the items of page 1: the server ignores paging",
    )  # fmt: skip
    assert len(httpserver.log) == 2
