"""BonitaHook: every answer of the wrong shape is a BpmServerError that says what was wrong.

Shapes from Bonita's OpenAPI (specs/bonita-openapi): a search answers a JSON array of objects
(ProcessInstance.yaml, HumanTask.yaml, ...), ids are strings, a case's ``state`` one of the
documented states; a single resource is an object.
"""

from __future__ import annotations

import json

import pytest
from airflow.models.connection import Connection
from malformed import GENERIC, assert_unexpected, serve
from pytest_httpserver import HTTPServer
from werkzeug import Response

from airflow_bpm_provider.hooks.bonita import BonitaHook
from airflow_bpm_provider.hooks.retry import RetryPolicy

B = "/bonita"


def make_hook(server: HTTPServer, **extra: str) -> BonitaHook:
    def login(_request):
        response = Response("", status=204)
        response.headers.add("Set-Cookie", "JSESSIONID=S1; Path=/bonita")
        response.headers.add("Set-Cookie", "X-Bonita-API-Token=tok-1; Path=/bonita")
        return response

    server.expect_request(f"{B}/loginservice", method="POST").respond_with_handler(login)
    conn = Connection(
        conn_id="b",
        conn_type="bonita",
        host=server.url_for(B),
        login="walter.bates",
        password="bpm-pw-77",
        extra=json.dumps({"business_key_variable": "key", **extra}),
    )
    return BonitaHook("b", connection=conn, retry_policy=RetryPolicy(max_attempts=1))


DEFINITION = {"id": "5", "name": "Pool", "version": "1.0", "activationState": "ENABLED"}
CASE = {"id": "11", "state": "started", "processDefinitionId": "5"}

METHODS = {
    "get_process_definition by id": (
        lambda h: h.get_process_definition("5"),
        "GET",
        f"{B}/API/bpm/process/5",
        None,
    ),
    "get_process_definition by name": (
        lambda h: h.get_process_definition("Pool"),
        "GET",
        f"{B}/API/bpm/process",
        None,
    ),
    "start_process": (
        lambda h: h.start_process("5"),
        "POST",
        f"{B}/API/bpm/process/5/instantiation",
        "definition",
    ),
    "start_process via case": (
        lambda h: h.start_process("5", via="case"),
        "POST",
        f"{B}/API/bpm/case",
        "definition",
    ),
    "get_process": (lambda h: h.get_process("11"), "GET", f"{B}/API/bpm/case/11", None),
    "aget_process": (lambda h: h.aget_process("11"), "GET", f"{B}/API/bpm/case/11", None),
    "find_processes": (lambda h: h.find_processes(states=["RUNNING"]), "GET", f"{B}/API/bpm/case", None),
    "list_tasks": (lambda h: h.list_tasks(), "GET", f"{B}/API/bpm/humanTask", None),
    "alist_tasks": (lambda h: h.alist_tasks(), "GET", f"{B}/API/bpm/humanTask", None),
    "get_task": (lambda h: h.get_task("3"), "GET", f"{B}/API/bpm/humanTask/3", None),
    "get_task_contract": (
        lambda h: h.get_task_contract("3"),
        "GET",
        f"{B}/API/bpm/userTask/3/contract",
        None,
    ),
    "list_files": (lambda h: h.list_files("11"), "GET", f"{B}/API/bpm/caseDocument", None),
    "get_case_variable": (
        lambda h: h.get_case_variable("11", "key"),
        "GET",
        f"{B}/API/bpm/caseVariable/11/key",
        None,
    ),
    "search_case_variables": (
        lambda h: h.search_case_variables("11"),
        "GET",
        f"{B}/API/bpm/caseVariable",
        None,
    ),
    "get_document": (lambda h: h.get_document("4"), "GET", f"{B}/API/bpm/caseDocument/4", None),
    "session_info": (lambda h: h.session_info(), "GET", f"{B}/API/system/session/unusedId", None),
}

SPECIFIC = [
    ("find_processes", ["11"], "the search result[0] must be an object, got a string"),
    ("find_processes", [{"state": "started"}], "a case's 'id' must be an id"),
    ("find_processes", [{**CASE, "id": ["11"]}], "a case's 'id' must be an id"),
    ("find_processes", [{**CASE, "state": ["started"]}], "'state' of case 11 must be a string, got a list"),
    ("find_processes", [{**CASE, "state": "exploded"}], "case 11 has the unknown state 'exploded'"),
    ("find_processes", [{**CASE, "start": 1700000000}], "'start' of case 11 must be a string, got a number"),
    ("find_processes", [{**CASE, "processDefinitionId": [5]}], "'processDefinitionId' of case 11 is a list"),
    ("get_process", [CASE], "a case must be a JSON object, got a list"),
    ("get_process", {**CASE, "id": None}, "a case's 'id' must be an id"),
    ("get_process_definition by id", {"name": "Pool"}, "the process definition's 'id' must be an id"),
    (
        "get_process_definition by name",
        [{"id": True, "name": "Pool"}],
        "the process definition's 'id' must be an id",
    ),
    ("start_process", {"caseId": {"id": 1}}, "no caseId in the answer (got an object)"),
    ("start_process via case", {"id": ""}, "no case id in the answer"),
    ("list_tasks", [{"name": "Review"}], "a task's 'id' must be an id"),
    ("alist_tasks", [{"id": "3", "assigned_id": ["4"]}], "a task's 'assigned_id' must be an id"),
    ("get_task", ["3"], "a task must be an object, got a list"),
    ("list_files", [{"id": "4", "url": ["x"]}], "'url' of a document must be a string or a number"),
    ("list_files", [{"name": "doc"}], "a document has no usable 'id'"),
    (
        "get_case_variable",
        {"name": "key", "type": 7, "value": "1"},
        "'type' of variable 'key' must be a string",
    ),
    ("search_case_variables", [{"value": "1"}], "a variable has no text 'name'"),
    ("session_info", {"user_name": "walter"}, "no user_id in the session"),
]


def prepare(server: HTTPServer, name: str) -> None:
    """The answers before the spoiled one: the process definition a start reads first."""
    if METHODS[name][3] == "definition":
        serve(server, f"{B}/API/bpm/process/5", DEFINITION)
    if name.startswith("list_files"):
        serve(server, f"{B}/API/bpm/archivedCaseDocument", [])
    if name in ("get_process", "aget_process"):
        serve(server, f"{B}/API/bpm/archivedCase", [])


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize(("label", "body", "says"), GENERIC, ids=[g[0] for g in GENERIC])
def test_every_reading_method_refuses_a_malformed_answer(httpserver: HTTPServer, name, label, body, says):
    action, method, path, _ = METHODS[name]
    hook = make_hook(httpserver)
    serve(httpserver, path, body, method)
    prepare(httpserver, name)
    assert_unexpected(
        lambda: action(hook),
        system="Bonita",
        conn_id="b",
        method=method,
        path=path.removeprefix(B),
        says=says,
    )


@pytest.mark.parametrize(("name", "body", "says"), SPECIFIC, ids=[f"{s[0]}:{s[2][:40]}" for s in SPECIFIC])
def test_a_documented_field_of_the_wrong_shape_is_named(httpserver: HTTPServer, name, body, says):
    action, method, path, _ = METHODS[name]
    hook = make_hook(httpserver)
    serve(httpserver, path, body, method)
    prepare(httpserver, name)
    assert_unexpected(
        lambda: action(hook),
        system="Bonita",
        conn_id="b",
        method=method,
        path=path.removeprefix(B),
        says=says,
    )


@pytest.mark.parametrize("name", ["find_processes", "alist_tasks"])
def test_a_server_that_repeats_its_full_page_is_stopped(httpserver: HTTPServer, name):
    """Bonita pages with p/c; a server that ignores p sends page 0 forever (the total says more)."""
    action, method, path, _ = METHODS[name]
    hook = make_hook(httpserver, page_size="2")
    rows = [{**CASE, "id": "1"}, {**CASE, "id": "2"}]
    httpserver.expect_request(path).respond_with_json(rows, headers={"Content-Range": "0-1/999999"})
    assert_unexpected(
        lambda: action(hook), system="Bonita", conn_id="b", method=method, path=path.removeprefix(B),
        says="page 2 repeats the items of page 1: the server ignores paging",
    )  # fmt: skip
    assert len([r for r, _ in httpserver.log if r.path == path]) == 2
