"""ActivitiHook: every answer of the wrong shape is a BpmServerError that says what was wrong.

Shapes from Flowable's Swagger (specs/flowable-swagger-process.yaml) and the Activiti 5 user
guide: lists are ``{data: [...], total, start, size}``, a process instance / task is an object with
an ``id``, a variable ``{name, type, value}``.
"""

from __future__ import annotations

import pytest
from airflow.models.connection import Connection
from malformed import GENERIC, assert_unexpected, serve
from pytest_httpserver import HTTPServer

from airflow_bpm_provider.hooks.activiti import ActivitiHook
from airflow_bpm_provider.hooks.retry import RetryPolicy

B = "/bpmn"


def make_hook(server: HTTPServer, **extra: str) -> ActivitiHook:
    conn = Connection(
        conn_id="a", conn_type="activiti", host=server.url_for(B), login="kermit", password="kermit-pw",
        extra=extra or None,
    )  # fmt: skip
    return ActivitiHook("a", connection=conn, retry_policy=RetryPolicy(max_attempts=1))


def page(rows: list, total: int | None = None) -> dict:
    return {"data": rows, "total": len(rows) if total is None else total, "start": 0, "size": len(rows)}


RUNTIME = f"{B}/runtime/process-instances"
HISTORY = f"{B}/history/historic-process-instances"
METHODS = {
    "start_process": (lambda h: h.start_process("order"), "POST", RUNTIME),
    "get_process": (lambda h: h.get_process("7"), "GET", f"{RUNTIME}/7"),
    "aget_process": (lambda h: h.aget_process("7"), "GET", f"{RUNTIME}/7"),
    "find_processes": (lambda h: h.find_processes(states=["COMPLETED"]), "GET", HISTORY),
    "query_process_instances": (
        lambda h: h.query_process_instances({"a": 1}),
        "POST",
        f"{B}/query/process-instances",
    ),
    "list_tasks": (lambda h: h.list_tasks(), "GET", f"{B}/runtime/tasks"),
    "alist_tasks": (lambda h: h.alist_tasks(), "GET", f"{B}/runtime/tasks"),
    "get_task": (lambda h: h.get_task("3"), "GET", f"{B}/runtime/tasks/3"),
    "list_variables": (lambda h: h.list_variables("7"), "GET", f"{RUNTIME}/7/variables"),
    "get_variables": (lambda h: h.get_variables("7"), "GET", f"{RUNTIME}/7/variables"),
    "get_variable": (lambda h: h.get_variable("7", "x"), "GET", f"{RUNTIME}/7/variables/x"),
    "list_files": (lambda h: h.list_files("7"), "GET", f"{RUNTIME}/7/variables"),
    "list_deployments": (lambda h: h.list_deployments(), "GET", f"{B}/repository/deployments"),
    "get_process_definition": (
        lambda h: h.get_process_definition("d"),
        "GET",
        f"{B}/repository/process-definitions/d",
    ),
    "list_attachments": (lambda h: h.list_attachments("3"), "GET", f"{B}/runtime/tasks/3/attachments"),
    "list_comments": (lambda h: h.list_comments("3"), "GET", f"{B}/runtime/tasks/3/comments"),
}
LISTS = {"list_variables", "get_variables", "list_files", "list_attachments", "list_comments"}

SPECIFIC = [
    ("find_processes", page(["7"]), "'data'[0] must be an object, got a string"),
    ("find_processes", {"data": None, "total": 0}, "no 'data' list in the page"),
    ("find_processes", {"data": [], "total": "0"}, "no 'total' count in the page (got a string)"),
    ("find_processes", page([{"name": "x"}]), "'data'[0] has no usable 'id'"),
    (
        "find_processes",
        page([{"id": "7", "endTime": 1700000000}]),
        "'endTime' of process instance 7 must be a string",
    ),
    (
        "find_processes",
        page([{"id": "7", "businessKey": {"k": 1}}]),
        "'businessKey' of process instance 7 must be a string",
    ),
    ("get_process", {"id": "7", "suspended": "yes"}, "'suspended' of process instance 7 must be a boolean"),
    ("get_process", ["7"], "the process instance must be an object, got a list"),
    ("start_process", {"id": None}, "the process instance's 'id' must be an id"),
    ("list_tasks", page([{"id": "3", "assignee": ["kermit"]}]), "'assignee' of task 3 must be a string"),
    ("get_task", {"name": "Review"}, "the task's 'id' must be an id"),
    ("list_variables", {"name": "x"}, "the variables must be a list, got an object"),
    ("list_variables", ["x"], "the variables[0] must be an object, got a string"),
    (
        "get_variables",
        [{"name": "n", "type": "integer", "value": "many"}],
        "the value of variable 'n' cannot be read",
    ),
    (
        "get_variable",
        {"name": "n", "type": "double", "value": [1]},
        "the value of variable 'n' cannot be read",
    ),
    ("get_variable", {"type": "string", "value": "v"}, "a variable has no text 'name'"),
    ("list_files", [{"type": "binary"}], "a variable has no text 'name'"),
]


# An unpaged list answered with null is read as empty (no spoiled answer for those calls).
CASES = [(n, *g) for n in METHODS for g in GENERIC if not (n in LISTS and g[0] == "null")]


@pytest.mark.parametrize(("name", "label", "body", "says"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_every_reading_method_refuses_a_malformed_answer(httpserver: HTTPServer, name, label, body, says):
    action, method, path = METHODS[name]
    serve(httpserver, path, body, method)
    hook = make_hook(httpserver)
    assert_unexpected(
        lambda: action(hook),
        system="Activiti",
        conn_id="a",
        method=method,
        path=path.removeprefix(B),
        says=says,
    )


@pytest.mark.parametrize(("name", "body", "says"), SPECIFIC, ids=[f"{s[0]}:{s[2][:40]}" for s in SPECIFIC])
def test_a_documented_field_of_the_wrong_shape_is_named(httpserver: HTTPServer, name, body, says):
    action, method, path = METHODS[name]
    serve(httpserver, path, body, method)
    hook = make_hook(httpserver)
    assert_unexpected(
        lambda: action(hook),
        system="Activiti",
        conn_id="a",
        method=method,
        path=path.removeprefix(B),
        says=says,
    )


@pytest.mark.parametrize("name", ["find_processes", "alist_tasks"])
def test_a_server_that_repeats_its_full_page_is_stopped(httpserver: HTTPServer, name):
    """Activiti pages with start/size until total; a server that ignores start repeats page 1."""
    action, method, path = METHODS[name]
    serve(httpserver, path, page([{"id": "1"}, {"id": "2"}], total=999_999), method)
    hook = make_hook(httpserver, page_size="2")
    assert_unexpected(
        lambda: action(hook), system="Activiti", conn_id="a", method=method, path=path.removeprefix(B),
        says="page 2 repeats the items of page 1: the server ignores paging",
    )  # fmt: skip
    assert len([r for r, _ in httpserver.log if r.path == path]) == 2
