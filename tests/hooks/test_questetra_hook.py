"""QuestetraHook against pytest-httpserver: every request pinned to the Workflow API document.

Expected paths, parameters and answers come from the DataSpider BPM Workflow API document (seed
003) and Questetra's article on downloading process files (seed 000), not from the emulator.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from airflow.models.connection import Connection
from lxml import etree
from pytest_httpserver import HTTPServer
from werkzeug import Request as WsgiRequest
from werkzeug import Response

from airflow_bpm_provider import start_journal
from airflow_bpm_provider.exceptions import (
    BpmAuthError,
    BpmConfigError,
    BpmConflict,
    BpmConnectionError,
    BpmNotFound,
    BpmServerError,
    BpmValidationError,
)
from airflow_bpm_provider.hooks.questetra import QuestetraHook, unclaimed_window_start
from airflow_bpm_provider.hooks.registry import hook_class
from airflow_bpm_provider.hooks.retry import RetryPolicy
from airflow_bpm_provider.models import ProcessFile, ProcessState

EMAIL = "a@example.com"
PASSWORD = "s3cret-pw-Zq81"
TOKEN = "tok-Bearer-9f8e7d"
BASIC = "Basic " + base64.b64encode(f"{EMAIL}:{PASSWORD}".encode()).decode()
JST = timezone(timedelta(hours=9))
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def make_hook(
    server: HTTPServer, *, root: str = "/", extra: dict[str, Any] | None = None, **conn: Any
) -> QuestetraHook:
    fields = {"login": EMAIL, "password": PASSWORD, **conn}
    connection = Connection(
        conn_id="q",
        conn_type="questetra",
        host=server.url_for(root),
        extra=json.dumps(extra) if extra else None,
        **fields,
    )
    return QuestetraHook(
        "q",
        connection=connection,
        retry_policy=RetryPolicy(max_attempts=3, initial_delay=0),
        sleep=lambda seconds: None,
    )


def seen(server: HTTPServer, auth: str = BASIC) -> list[WsgiRequest]:
    """Every request the server got, each checked to carry exactly the connection's credentials."""
    server.check_assertions()  # fails on any request no expectation matched
    server.expected_auth = auth  # type: ignore[attr-defined]
    requests = [request for request, _ in server.log]
    for request in requests:
        assert request.headers.get("Authorization") == auth, f"{request.method} {request.path}"
    return requests


@pytest.fixture(autouse=True)
def every_request_carries_the_credentials(httpserver: HTTPServer) -> Iterator[None]:
    """Also for tests that never call seen(): no request may go out without the exact header."""
    httpserver.expected_auth = BASIC  # type: ignore[attr-defined]
    yield
    for request, _ in httpserver.log:
        assert request.headers.get("Authorization") == httpserver.expected_auth, (  # type: ignore[attr-defined]
            f"{request.method} {request.path}"
        )


def form(request: WsgiRequest) -> dict[str, list[str]]:
    assert request.method == "POST"
    assert request.mimetype == FORM_CONTENT_TYPE
    assert not request.args, "parameters go in the form body"
    return request.form.to_dict(flat=False)


def query(request: WsgiRequest) -> dict[str, list[str]]:
    assert request.method == "GET"
    return request.args.to_dict(flat=False)


def criteria_of(request: WsgiRequest) -> Any:
    return etree.fromstring(request.form["criteria"].encode())


def children(element: Any) -> list[tuple[str, str | None]]:
    return [(child.tag, child.text) for child in element]


# ---- sample answers (field names and shapes from the vendor document) -------------------------


def process_entry(pid: int = 825, state: str = "STARTED", **extra: Any) -> dict[str, Any]:
    entry = {
        "processInstanceId": pid,
        "processInstanceIdForView": f"p{pid}",
        "processInstanceSequenceNumber": 1,
        "processInstanceInitQgroupId": 1,
        "processInstanceInitQgroupName": "全社",
        "processInstanceInitQuserId": 0,
        "processInstanceInitQuserName": "佐藤",
        "processInstanceStartDatetime": "2010-08-18T14:03:16+0900",
        "processInstanceEndDatetime": None if state == "STARTED" else "2010-08-19T09:30:00+0900",
        "processInstanceState": state,
        "processInstanceDebug": False,
        "processInstanceTitle": "Test",
        "processModelInfoId": 9,
        "processModelInfoName": "テストプロセス",
        "processModelInfoCategory": "テストカテゴリ",
        "processModelVersion": 4,
        "activeTokenNodeName": None,
        "data": None,
    }
    entry.update(extra)
    return entry


def workitem(wid: int = 58399, pid: int = 825, **extra: Any) -> dict[str, Any]:
    entry = {
        "allocateDatetime": "2010-08-18T14:03:18+0900",
        "allocatedQgroupId": None,
        "allocatedQgroupName": None,
        "allocatedQuserId": 0,
        "allocatedQuserName": "佐藤",
        "offerDatetime": None,
        "data": None,
        "endDatetime": None,
        "failType": None,
        "id": wid,
        "nodeName": "Activity1",
        "nodeNumber": 0,
        "processInstanceEndDatetime": None,
        "processInstanceId": pid,
        "processInstanceIdForView": f"p{pid}",
        "processInstanceStartDatetime": "2010-08-18T14:03:16+0900",
        "processInstanceState": "STARTED",
        "processInstanceTitle": None,
        "processModelInfoId": 9,
        "processModelInfoName": "テストプロセス",
        "processModelVersion": 4,
        "read": False,
        "starred": True,
        "startDatetime": None,
        "state": "ALLOCATED",
        "swimlaneType": "NORMAL",
        "timeLimitDatetime": None,
    }
    entry.update(extra)
    return entry


def startable(model: int, node: int, name: str = "App", node_name: str = "Start") -> dict[str, Any]:
    return {
        "id": 2000 + model,
        "nodeName": node_name,
        "nodeNumber": node,
        "processModelActivateDatetime": "2010-01-07T18:13:40+0900",
        "processModelId": 2081,
        "processModelInfoCategory": "テストカテゴリ",
        "processModelInfoId": model,
        "processModelInfoName": name,
        "processModelInfoShortExplanation": "",
        "processModelInfoViewPriority": 5,
        "processModelVersion": 1,
    }


FIRST_TASK_FORM = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workitem-form xmlns:ns2="process-data-definition-detail">
    <title-accessibility>3</title-accessibility>
    <form-data number="0" id="1">
        <accessibility>3</accessibility><data-type>0</data-type><name>Customer</name>
        <data-instance-id>75770</data-instance-id><required>true</required>
    </form-data>
    <form-data number="4" id="56213">
        <accessibility>3</accessibility><data-type>12</data-type><name>数値型</name>
        <data-instance-id>75774</data-instance-id><required>false</required>
    </form-data>
    <form-data number="5" id="56214">
        <accessibility>3</accessibility><data-type>11</data-type><form-type>3</form-type><name>Options</name>
        <data-instance-id>75775</data-instance-id><required>false</required>
        <items>
            <ns2:item><ns2:value>ja</ns2:value><ns2:display>Japanese</ns2:display></ns2:item>
            <ns2:item><ns2:value>en</ns2:value><ns2:display>English</ns2:display></ns2:item>
        </items>
    </form-data>
    <form-data number="6" id="56215">
        <accessibility>3</accessibility><data-type>10</data-type><name>Due</name>
        <data-instance-id>75776</data-instance-id><required>false</required>
    </form-data>
    <form-data number="7" id="56216">
        <accessibility>1</accessibility><data-type>0</data-type><name>Reference</name>
        <data-instance-id>75777</data-instance-id><required>false</required>
    </form-data>
    <node-number>0</node-number>
    <task-name>入力</task-name>
    <user-selects>
        <user-select><flow-id>31</flow-id><name>Approve</name></user-select>
        <user-select><flow-id>32</flow-id><name>Reject</name></user-select>
    </user-selects>
    <workitem-id>58399</workitem-id>
</workitem-form>
"""
SAVED = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<result success="true" />'


# ---- connection, auth, errors, retries ----------------------------------------------------------


@pytest.mark.parametrize("root, prefix", [("/", ""), ("/userweb", "/userweb")])
def test_probe_sends_basic_credentials_under_the_context_root(httpserver: HTTPServer, root, prefix):
    httpserver.expect_request(f"{prefix}/API/PE/ProcessModel/listStartable", method="GET").respond_with_json(
        {"count": 7, "startableActivities": [startable(11, 3)]}
    )
    hook = make_hook(httpserver, root=root)
    ok, message = hook.test_connection()
    assert ok, message
    assert message == f"Connected to {hook.base_url}; 7 startable process(es)"
    assert hook.base_url.endswith(prefix or str(httpserver.port))
    [request] = seen(httpserver)
    assert request.path == f"{prefix}/API/PE/ProcessModel/listStartable"
    assert query(request) == {"start": ["0"], "limit": ["1"]}
    assert request.headers["Authorization"] == BASIC


def test_bearer_token_from_the_password_field(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/ProcessModel/listStartable").respond_with_json(
        {"count": 0, "startableActivities": []}
    )
    hook = make_hook(httpserver, extra={"auth_type": "bearer"}, login=None, password=TOKEN)
    assert hook.test_connection() == (True, f"Connected to {hook.base_url}; 0 startable process(es)")
    [request] = seen(httpserver, auth=f"Bearer {TOKEN}")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_every_request_of_a_bearer_connection_carries_the_token(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/ProcessInstance/start", method="POST").respond_with_json(
        {"workitem": workitem()}
    )
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml").respond_with_data(FIRST_TASK_FORM)
    httpserver.expect_request("/API/PE/Workitem/Form/save", method="POST").respond_with_data(SAVED)
    httpserver.expect_request("/API/OR/ProcessInstance/view").respond_with_json(
        {"processInstance": process_entry()}
    )
    httpserver.expect_request("/API/OR/Workitem/Star/add", method="POST").respond_with_data("")
    hook = make_hook(httpserver, extra={"auth_type": "bearer"}, login=None, password=TOKEN)
    hook.start_process("12/3", business_key="K")
    hook.add_star(58399)
    assert len(seen(httpserver, auth=f"Bearer {TOKEN}")) == 5


def test_registry_serves_questetra_connections():
    assert hook_class("questetra", conn_id="q") is QuestetraHook
    assert (QuestetraHook.conn_type, QuestetraHook.hook_name, QuestetraHook.system) == (
        "questetra",
        "Questetra BPM Suite / DataSpider BPM",
        "Questetra",
    )


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_401_is_an_auth_error_sent_once_and_never_shows_the_secret(httpserver: HTTPServer, caplog, auth):
    caplog.set_level(logging.DEBUG)
    secret = PASSWORD if auth == "basic" else TOKEN
    header = BASIC if auth == "basic" else f"Bearer {TOKEN}"
    # a server that echoes the Authorization header must not get it into the error either
    httpserver.expect_request("/API/OR/ProcessInstance/view").respond_with_data(
        f"Unauthorized: {secret} / {header}", status=401, content_type="text/plain"
    )
    extra = {"auth_type": "bearer"} if auth == "bearer" else None
    hook = make_hook(httpserver, extra=extra, password=secret)
    with pytest.raises(BpmAuthError) as caught:
        hook.get_process("825")
    assert len(seen(httpserver, auth=header)) == 1
    text = str(caught.value)
    assert "HTTP 401" in text and "connection 'q'" in text and "/API/OR/ProcessInstance/view" in text
    for leak in (secret, header.split()[1]):
        assert leak not in text
        assert leak not in caplog.text


def test_400_error_list_becomes_message_and_details(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/view").respond_with_json(
        {
            "errors": [
                {"errorCode": "40003", "input": "999", "type": "ProcessInstanceDoesNotExist"},
                {"errorCode": "40001", "input": None, "type": "InvalidParameter"},
            ]
        },
        status=400,
    )
    with pytest.raises(BpmValidationError) as caught:
        make_hook(httpserver).get_process("999")
    error = caught.value
    assert error.server_message == "ProcessInstanceDoesNotExist, InvalidParameter"
    assert error.details == [
        "ProcessInstanceDoesNotExist (errorCode 40003, input '999')",
        "InvalidParameter (errorCode 40001)",
    ]
    assert "errorCode 40003" in str(error)


def test_reads_are_retried_after_503(httpserver: HTTPServer):
    httpserver.expect_ordered_request("/API/OR/ProcessInstance/view").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/API/OR/ProcessInstance/view").respond_with_json(
        {"processInstance": process_entry()}
    )
    assert make_hook(httpserver).get_process("825").id == "825"
    assert [r.path for r in seen(httpserver)] == ["/API/OR/ProcessInstance/view"] * 2


def test_post_searches_are_reads_and_retried_after_503(httpserver: HTTPServer):
    httpserver.expect_ordered_request("/API/OR/ProcessInstance/list", method="POST").respond_with_data(
        "busy", status=503
    )
    httpserver.expect_ordered_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {"count": 1, "processInstances": [process_entry()]}
    )
    assert [p.id for p in make_hook(httpserver).find_processes()] == ["825"]
    assert len(seen(httpserver)) == 2


def test_a_start_is_not_resent_after_503(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/ProcessInstance/start", method="POST").respond_with_data(
        "busy", status=503
    )
    with pytest.raises(BpmServerError, match="HTTP 503"):
        make_hook(httpserver).start("12", "3")
    assert len(seen(httpserver)) == 1


def test_a_start_is_not_resent_after_a_read_timeout(httpserver: HTTPServer):
    calls: list[float] = []
    done = threading.Event()

    def slow(request: WsgiRequest) -> Response:
        calls.append(time.monotonic())
        time.sleep(1.0)
        done.set()
        return Response(json.dumps({"workitem": workitem()}), content_type="application/json")

    httpserver.expect_request("/API/PE/ProcessInstance/start", method="POST").respond_with_handler(slow)
    hook = make_hook(httpserver, extra={"timeout": 0.3})
    with pytest.raises(BpmConnectionError) as caught:
        hook.start_process("12/3")
    assert "not re-sent" in str(caught.value)
    assert done.wait(5)
    time.sleep(0.2)  # a (wrong) second attempt would have arrived by now
    assert len(calls) == 1


# ---- process start --------------------------------------------------------------------------------


def expect_view(server: HTTPServer, pid: int = 825, **extra: Any) -> None:
    server.expect_request("/API/OR/ProcessInstance/view", method="GET").respond_with_json(
        {"processInstance": process_entry(pid, **extra)}
    )


def test_start_process_looks_up_the_start_node_page_by_page(httpserver: HTTPServer):
    pages = [
        [startable(11, 0, "Other"), startable(13, 1, "Third")],
        [startable(12, 3, "Invoice")],
    ]

    def listing(request: WsgiRequest) -> Response:
        page = int(request.args["start"]) // 2
        body = {"count": 3, "startableActivities": pages[page]}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/API/PE/ProcessModel/listStartable", method="GET").respond_with_handler(
        listing
    )
    httpserver.expect_request("/API/PE/ProcessInstance/start", method="POST").respond_with_json(
        {"workitem": workitem()}
    )
    expect_view(httpserver)
    instance = make_hook(httpserver, extra={"page_size": 2}).start_process("12")
    assert instance.id == "825" and instance.state is ProcessState.RUNNING
    listing1, listing2, start, view = seen(httpserver)
    assert query(listing1) == {"start": ["0"], "limit": ["2"]}
    assert query(listing2) == {"start": ["2"], "limit": ["2"]}
    assert start.path == "/API/PE/ProcessInstance/start"
    assert form(start) == {"processModelInfoId": ["12"], "nodeNumber": ["3"]}
    assert query(view) == {"processInstanceId": ["825"]}
    assert all(r.headers["Authorization"] == BASIC for r in (listing1, listing2, start, view))


def test_list_startable_sends_category_and_query(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/ProcessModel/listStartable", method="GET").respond_with_json(
        {"count": 1, "startableActivities": [startable(11, 0, "経費精算")]}
    )
    found = list(make_hook(httpserver).list_startable(category="テストカテゴリ", query="経費 & 旅費"))
    assert [(a["processModelInfoId"], a["nodeNumber"]) for a in found] == [(11, 0)]
    [request] = seen(httpserver)
    assert query(request) == {
        "start": ["0"],
        "limit": ["1000"],
        "category": ["テストカテゴリ"],
        "query": ["経費 & 旅費"],
    }


def test_start_process_with_a_node_number_skips_the_lookup(httpserver: HTTPServer):
    httpserver.expect_request("/userweb/API/PE/ProcessInstance/start", method="POST").respond_with_json(
        {"workitem": workitem()}
    )
    httpserver.expect_request("/userweb/API/OR/ProcessInstance/view").respond_with_json(
        {"processInstance": process_entry()}
    )
    make_hook(httpserver, root="/userweb").start_process("12/3")
    start, view = seen(httpserver)
    assert form(start) == {"processModelInfoId": ["12"], "nodeNumber": ["3"]}
    assert view.path == "/userweb/API/OR/ProcessInstance/view"


def test_start_process_saves_the_business_key_title_first_then_submits_the_variables(
    httpserver: HTTPServer,
):
    httpserver.expect_request("/API/PE/ProcessInstance/start", method="POST").respond_with_json(
        {"workitem": workitem()}
    )
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml", method="GET").respond_with_data(
        FIRST_TASK_FORM, content_type="text/xml"
    )
    httpserver.expect_request("/API/PE/Workitem/Form/save", method="POST").respond_with_data(
        SAVED, content_type="text/xml"
    )
    expect_view(httpserver, processInstanceTitle="INV-<1>")
    instance = make_hook(httpserver).start_process(
        "12/3",
        variables={
            "Customer": "ACME & Co",
            4: 150.5,
            "Options": ["ja", "English"],
            "Due": datetime(2024, 5, 1, 9, 30),
        },
        business_key="INV-<1>",
        flow="Approve",
    )
    assert instance.title == "INV-<1>"
    start, view_form, save_title, submit, view = seen(httpserver)
    assert form(start) == {"processModelInfoId": ["12"], "nodeNumber": ["3"]}
    assert query(view_form) == {"workitemId": ["58399"]}
    assert query(view) == {"processInstanceId": ["825"]}
    # the title alone first, without finishing the task (saveOnly, seed 003), so it survives
    # a refused submit
    assert form(save_title) == {"workitemId": ["58399"], "title": ["INV-<1>"], "saveOnly": ["true"]}
    assert form(submit) == {
        "workitemId": ["58399"],
        "title": ["INV-<1>"],
        "data[0].input": ["ACME & Co"],
        "data[4].usdecimal": ["150.5"],
        "data[5].selects": ["ja", "en"],
        "data[6].datetime": ["2024-05-01 09:30"],
        "flow": ["31"],
    }


def test_start_process_title_option_wins_over_business_key(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/ProcessInstance/start", method="POST").respond_with_json(
        {"workitem": workitem()}
    )
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml").respond_with_data(FIRST_TASK_FORM)
    httpserver.expect_request("/API/PE/Workitem/Form/save", method="POST").respond_with_data(SAVED)
    expect_view(httpserver)
    make_hook(httpserver).start_process("12/3", business_key="KEY-1", title="Shown title", save_only=True)
    paths = [r.path for r in seen(httpserver)]
    assert paths.count("/API/PE/Workitem/Form/save") == 1  # nothing to submit: the title only
    save = seen(httpserver)[2]
    assert form(save) == {"workitemId": ["58399"], "title": ["Shown title"], "saveOnly": ["true"]}


def test_a_business_key_alone_titles_the_process_and_leaves_the_first_task_open(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/ProcessInstance/start", method="POST").respond_with_json(
        {"workitem": workitem()}
    )
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml", method="GET").respond_with_data(
        FIRST_TASK_FORM, content_type="text/xml"
    )
    httpserver.expect_request("/API/PE/Workitem/Form/save", method="POST").respond_with_data(SAVED)
    expect_view(httpserver, processInstanceTitle="KEY-1")
    assert make_hook(httpserver).start_process("12/3", business_key="KEY-1").title == "KEY-1"
    start, view_form, save, view = seen(httpserver)
    assert [start.path, view_form.path, view.path] == [
        "/API/PE/ProcessInstance/start",
        "/API/PE/Workitem/Form/viewXml",
        "/API/OR/ProcessInstance/view",
    ]
    # saved, not submitted: the first task stays open in "My Tasks"
    assert form(save) == {"workitemId": ["58399"], "title": ["KEY-1"], "saveOnly": ["true"]}


def test_save_only_variables_are_saved_after_the_title_without_finishing(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/ProcessInstance/start", method="POST").respond_with_json(
        {"workitem": workitem()}
    )
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml").respond_with_data(FIRST_TASK_FORM)
    httpserver.expect_request("/API/PE/Workitem/Form/save", method="POST").respond_with_data(SAVED)
    expect_view(httpserver)
    make_hook(httpserver).start_process("12/3", variables={4: 7}, business_key="K", save_only=True)
    _, _, save_title, save_values, _ = seen(httpserver)
    assert form(save_title) == {"workitemId": ["58399"], "title": ["K"], "saveOnly": ["true"]}
    assert form(save_values) == {
        "workitemId": ["58399"],
        "title": ["K"],
        "data[4].usdecimal": ["7"],
        "saveOnly": ["true"],
    }


def test_a_refused_submit_leaves_the_title_saved_and_names_the_process(httpserver: HTTPServer):
    refused = (
        '<result success="false"><errors><error><key>flow</key><detail>no</detail></error></errors></result>'
    )
    httpserver.expect_request("/API/PE/ProcessInstance/start", method="POST").respond_with_json(
        {"workitem": workitem()}
    )
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml").respond_with_data(FIRST_TASK_FORM)
    answers = iter([SAVED, refused])
    httpserver.expect_request("/API/PE/Workitem/Form/save", method="POST").respond_with_handler(
        lambda request: Response(next(answers), content_type="text/xml")
    )
    with pytest.raises(BpmValidationError) as caught:
        make_hook(httpserver).start_process("12/3", variables={4: 7}, business_key="K", flow="Approve")
    text = str(caught.value)
    assert "process 825 was started, but its first task could not be submitted" in text
    assert "POST /API/PE/Workitem/Form/save" in text and "connection 'q'" in text
    assert caught.value.details == ["flow: no"]
    _, _, save_title, submit = seen(httpserver)
    assert form(save_title)["saveOnly"] == ["true"] and "saveOnly" not in form(submit)


def test_an_unreadable_first_form_without_a_title_names_the_submit(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/ProcessInstance/start", method="POST").respond_with_json(
        {"workitem": workitem()}
    )
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml").respond_with_json(
        {"errors": [{"errorCode": "40003", "input": "58399", "type": "WorkitemDoesNotExist"}]}, status=400
    )
    with pytest.raises(BpmValidationError) as caught:
        make_hook(httpserver).start_process("12/3", variables={4: 7}, flow="Approve")
    text = str(caught.value)
    assert "process 825 was started, but its first task could not be submitted" in text
    assert "GET /API/PE/Workitem/Form/viewXml" in text and "WorkitemDoesNotExist" in text
    assert len(seen(httpserver)) == 2


def test_a_refused_title_names_the_started_process(httpserver: HTTPServer):
    refused = (
        '<result success="false"><errors><error><key>title</key><detail>too long</detail></error>'
        "</errors></result>"
    )
    httpserver.expect_request("/API/PE/ProcessInstance/start", method="POST").respond_with_json(
        {"workitem": workitem()}
    )
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml").respond_with_data(FIRST_TASK_FORM)
    httpserver.expect_request("/API/PE/Workitem/Form/save", method="POST").respond_with_data(refused)
    with pytest.raises(BpmValidationError, match="process 825 was started, but its title could not be saved"):
        make_hook(httpserver).start_process("12/3", variables={4: 7}, business_key="K", flow="Approve")
    assert [r.path for r in seen(httpserver)][-1] == "/API/PE/Workitem/Form/save"
    assert len(seen(httpserver)) == 3  # nothing submitted after the refused title


def test_start_process_names_startable_apps_when_the_app_is_unknown(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/ProcessModel/listStartable").respond_with_json(
        {"count": 2, "startableActivities": [startable(11, 0, "テストアプリ"), startable(13, 1, "Expenses")]}
    )
    with pytest.raises(BpmNotFound) as caught:
        make_hook(httpserver).start_process("12")
    assert "app 12 cannot be started" in str(caught.value)
    assert "[Questetra, GET /API/PE/ProcessModel/listStartable, connection 'q']" in str(caught.value)
    assert "startable apps: 11 'テストアプリ', 13 'Expenses'" in str(caught.value)
    assert [r.path for r in seen(httpserver)] == ["/API/PE/ProcessModel/listStartable"]


def test_start_process_with_several_start_events_asks_for_one(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/ProcessModel/listStartable").respond_with_json(
        {
            "count": 2,
            "startableActivities": [startable(12, 0, node_name="Web"), startable(12, 5, node_name="Mail")],
        }
    )
    with pytest.raises(
        BpmConfigError, match=r"2 start events; name one as '12/<node number>': 0 'Web', 5 'Mail'"
    ) as caught:
        make_hook(httpserver).start_process("12")
    assert "[Questetra, GET /API/PE/ProcessModel/listStartable, connection 'q']" in str(caught.value)
    assert seen(httpserver)[0].path == "/API/PE/ProcessModel/listStartable"


@pytest.mark.parametrize(
    "process, options, message",
    [
        ("12", {"priority": 1}, "unknown Questetra option.*priority"),
        (True, {}, "'12' or '12/3'\\), or the app's name; got True"),
    ],
)
def test_start_process_argument_errors_send_nothing(httpserver: HTTPServer, process, options, message):
    with pytest.raises(BpmConfigError, match=message):
        make_hook(httpserver).start_process(process, **options)
    assert seen(httpserver) == []


def test_a_refused_first_form_names_the_started_process(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/ProcessInstance/start", method="POST").respond_with_json(
        {"workitem": workitem()}
    )
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml").respond_with_data(FIRST_TASK_FORM)
    with pytest.raises(BpmValidationError) as caught:
        make_hook(httpserver).start_process("12/3", variables={"Reference": "x"}, flow=31)
    text = str(caught.value)
    assert "process 825 was started, but its first task could not be submitted" in text
    assert "data item 7 'Reference' is display only" in text
    assert "connection 'q'" in text and caught.value.conn_id == "q"
    assert [r.path for r in seen(httpserver)] == [
        "/API/PE/ProcessInstance/start",
        "/API/PE/Workitem/Form/viewXml",
    ]


def test_find_process_by_business_key_keeps_exact_titles_newest_first(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {
            "count": 3,
            "processInstances": [
                process_entry(
                    5,
                    processInstanceTitle="INV-1 copy",
                    processInstanceStartDatetime="2024-03-01T00:00:00+0900",
                ),
                process_entry(
                    3, processInstanceTitle="INV-1", processInstanceStartDatetime="2024-01-01T00:00:00+0900"
                ),
                process_entry(
                    4, processInstanceTitle="INV-1", processInstanceStartDatetime="2024-02-01T00:00:00+0900"
                ),
            ],
        }
    )
    found = make_hook(httpserver).find_process_by_business_key("12/3", "INV-1")
    assert found is not None and found.id == "4"
    [request] = seen(httpserver)
    assert form(request)["limit"] == ["1000"] and form(request)["start"] == ["0"]
    assert children(criteria_of(request)) == [
        ("process-model-info-id", "12"),
        ("title", "INV-1"),
        ("sort-property", "processInstanceStartDatetime"),
        ("sort-direction", "DESC"),
    ]


def test_find_process_by_business_key_returns_none_without_exact_match(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {"count": 1, "processInstances": [process_entry(5, processInstanceTitle="INV-10")]}
    )
    assert make_hook(httpserver).find_process_by_business_key("12", "INV-1") is None


# ---- reading processes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vendor, state",
    [("STARTED", ProcessState.RUNNING), ("ENDED", ProcessState.COMPLETED), ("FAILED", ProcessState.FAILED)],
)
def test_get_process_maps_every_state(httpserver: HTTPServer, vendor, state):
    raw = process_entry(825, vendor)
    httpserver.expect_request("/API/OR/ProcessInstance/view", method="GET").respond_with_json(
        {"processInstance": raw}
    )
    hook = make_hook(httpserver)
    instance = hook.get_process("825")
    assert instance.id == "825"
    assert instance.state is state and instance.raw_state == vendor
    assert instance.ended is (vendor != "STARTED")
    assert instance.definition == "9" and instance.definition_name == "テストプロセス"
    assert instance.title == "Test"
    assert instance.started_at == datetime(2010, 8, 18, 14, 3, 16, tzinfo=JST)
    assert instance.ended_at == (None if vendor == "STARTED" else datetime(2010, 8, 19, 9, 30, tzinfo=JST))
    assert instance.url == f"{hook.base_url}/OR/ProcessInstance/view?processInstanceId=825"
    assert instance.raw == raw
    assert instance.business_key is None
    [request] = seen(httpserver)
    assert query(request) == {"processInstanceId": ["825"]}


def test_aget_process_uses_the_async_transport(httpserver: HTTPServer):
    hook = make_hook(httpserver, root="/userweb")
    httpserver.expect_request("/userweb/API/OR/ProcessInstance/view").respond_with_json(
        {"processInstance": process_entry(826, "ENDED")}
    )

    async def run():
        try:
            return await hook.aget_process("826")
        finally:
            await hook.aclose()

    instance = asyncio.run(run())
    assert instance.state is ProcessState.COMPLETED
    [request] = seen(httpserver)
    assert query(request) == {"processInstanceId": ["826"]}
    assert request.headers["Authorization"] == BASIC


def test_an_unknown_vendor_state_is_not_guessed(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/view").respond_with_json(
        {"processInstance": process_entry(state="PAUSED")}
    )
    with pytest.raises(BpmServerError, match="processInstanceState='PAUSED'") as caught:
        make_hook(httpserver).get_process("825")
    assert "[Questetra, GET /API/OR/ProcessInstance/view, connection 'q']" in str(caught.value)


def test_an_unknown_state_in_a_search_names_the_search(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {"count": 1, "processInstances": [process_entry(state="PAUSED")]}
    )
    with pytest.raises(BpmServerError) as caught:
        list(make_hook(httpserver).find_processes())
    assert (caught.value.method, caught.value.path, caught.value.conn_id) == (
        "POST",
        "/API/OR/ProcessInstance/list",
        "q",
    )


def test_find_processes_pages_with_limit_and_translates_filters(httpserver: HTTPServer):
    entries = [process_entry(pid, "ENDED") for pid in (1, 2, 3)]

    def search(request: WsgiRequest) -> Response:
        start, limit = int(request.form["start"]), int(request.form["limit"])
        body = {"count": 3, "processInstances": entries[start : start + limit]}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/API/OR/ProcessInstance/list", method="POST").respond_with_handler(search)
    found = make_hook(httpserver, extra={"page_size": 2}).find_processes(
        definition="12/3",
        states=["COMPLETED", "cancelled", ProcessState.FAILED],
        title="Invoice & <Co>",
        started_after=datetime(2024, 1, 1, 9, 0),
        started_before="2024-02-01",
    )
    assert [p.id for p in found] == ["1", "2", "3"]
    first, second = seen(httpserver)
    assert (form(first)["start"], form(first)["limit"]) == (["0"], ["2"])
    assert (form(second)["start"], form(second)["limit"]) == (["2"], ["2"])
    assert form(first)["criteria"] == form(second)["criteria"]
    criteria = criteria_of(first)
    assert criteria.tag == "process-instance-criteria"
    assert children(criteria) == [
        ("process-model-info-id", "12"),
        ("states", None),
        ("title", "Invoice & <Co>"),
        ("start-date-from", "2024-01-01 09:00"),
        ("start-date-to", "2024-02-01"),
    ]
    assert children(criteria.find("states")) == [("state", "ENDED"), ("state", "FAILED")]


def test_find_processes_stops_when_count_is_reached(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {"count": 2, "processInstances": [process_entry(1), process_entry(2)]}
    )
    assert len(list(make_hook(httpserver, extra={"page_size": 2}).find_processes(states="RUNNING"))) == 2
    [request] = seen(httpserver)
    assert children(criteria_of(request).find("states")) == [("state", "STARTED")]


def test_find_processes_passes_an_xml_query_through(httpserver: HTTPServer):
    xml = "<process-instance-criteria><init-quser-id>#me</init-quser-id></process-instance-criteria>"
    httpserver.expect_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {"count": 0, "processInstances": []}
    )
    assert list(make_hook(httpserver).find_processes(query=xml)) == []
    [request] = seen(httpserver)
    assert form(request) == {"criteria": [xml], "start": ["0"], "limit": ["1000"]}


def test_find_processes_merges_a_mapping_query(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {"count": 0, "processInstances": []}
    )
    list(make_hook(httpserver).find_processes(query={"init_quser_id": "#me"}, definition="7"))
    [request] = seen(httpserver)
    assert children(criteria_of(request)) == [("process-model-info-id", "7"), ("init-quser-id", "#me")]


@pytest.mark.parametrize(
    "filters, message",
    [
        ({"business_key": "x"}, "unknown Questetra filter.*business_key"),
        ({"states": ["DONE"]}, "unknown process state 'DONE'"),
        ({"query": "<process-instance-criteria>", "title": "x"}, "cannot be combined"),
        ({"query": {"title": "a"}, "title": "b"}, "title given both"),
        ({"query": "<process-instance-criteria><title>x</process-instance-criteria>"}, "not well-formed"),
        ({"query": "<workitem-criteria/>"}, "expected <process-instance-criteria>"),
        ({"query": {"node_number": 1}}, "unknown criteria key"),
    ],
)
def test_find_processes_refuses_bad_filters_before_any_request(httpserver: HTTPServer, filters, message):
    with pytest.raises(BpmConfigError, match=message) as caught:
        make_hook(httpserver).find_processes(**filters)
    assert caught.value.conn_id == "q" and "connection 'q'" in str(caught.value)
    assert seen(httpserver) == []


def test_find_processes_searches_cancelled_as_failed(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {"count": 0, "processInstances": []}
    )
    assert list(make_hook(httpserver).find_processes(states="CANCELLED")) == []
    [request] = seen(httpserver)
    assert children(criteria_of(request).find("states")) == [("state", "FAILED")]


def test_suspended_only_is_refused_since_questetra_cannot_suspend(httpserver: HTTPServer):
    for states in ("SUSPENDED", [ProcessState.SUSPENDED], ["suspended", "SUSPENDED"]):
        with pytest.raises(BpmConfigError, match="Questetra cannot suspend processes") as caught:
            make_hook(httpserver).find_processes(states=states)
        assert "connection 'q'" in str(caught.value)
    assert seen(httpserver) == []


def test_suspended_beside_other_states_adds_nothing(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {"count": 1, "processInstances": [process_entry()]}
    )
    assert len(list(make_hook(httpserver).find_processes(states=["SUSPENDED", "RUNNING"]))) == 1
    [request] = seen(httpserver)
    assert children(criteria_of(request).find("states")) == [("state", "STARTED")]


def test_search_processes_sends_built_criteria_with_escaped_values(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {"count": 1, "processInstances": [process_entry()]}
    )
    title = """<&>"'"""
    results = make_hook(httpserver).search_processes(
        {"title": title, "data": [{"type": "file", "number": 2}]}, max_results=1
    )
    assert [r["processInstanceId"] for r in results] == [825]
    [request] = seen(httpserver)
    assert "&lt;&amp;&gt;" in request.form["criteria"]
    criteria = criteria_of(request)
    assert criteria.findtext("title") == title
    assert etree.tostring(criteria.find("data")) == (
        b"<data><file><data-definition-number>2</data-definition-number><view/></file></data>"
    )
    assert form(request)["limit"] == ["1"]


def test_search_tasks_uses_workitem_criteria(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/Workitem/list", method="POST").respond_with_json(
        {"count": 1, "workitems": [workitem()]}
    )
    found = list(make_hook(httpserver).search_tasks({"workitem_starred": True, "node_number": 0}))
    assert [w["id"] for w in found] == [58399]
    [request] = seen(httpserver)
    assert children(criteria_of(request)) == [("node-number", "0"), ("workitem-starred", "true")]
    assert criteria_of(request).tag == "workitem-criteria"


def test_search_tasks_refuses_process_criteria_xml(httpserver: HTTPServer):
    with pytest.raises(BpmConfigError, match="expected <workitem-criteria>") as caught:
        make_hook(httpserver).search_tasks("<process-instance-criteria/>")
    assert str(caught.value) == (
        "criteria XML has the root element <process-instance-criteria>; expected <workitem-criteria> "
        "[Questetra, connection 'q']"
    )
    with pytest.raises(BpmConfigError, match="unknown criteria key") as caught:
        make_hook(httpserver).search_processes_csv({"nope": 1})
    assert (caught.value.system, caught.value.conn_id) == ("Questetra", "q")
    assert seen(httpserver) == []


@pytest.mark.parametrize(
    "utf16, path",
    [(False, "/API/OR/ProcessInstance/listCsv"), (True, "/API/OR/ProcessInstance/listCsvUtf16")],
)
def test_process_csv_is_streamed_into_a_file(httpserver: HTTPServer, utf16, path):
    body = ("id,title\n" + "".join(f"{i},タイトル{i}\n" for i in range(5000))).encode(
        "utf-16" if utf16 else "utf-8"
    )
    httpserver.expect_request(path, method="POST").respond_with_data(body, content_type="text/csv")
    out = io.BytesIO()
    written = make_hook(httpserver).search_processes_csv({"states": "ENDED"}, utf16=utf16, out=out, limit=500)
    assert written == len(body) and out.getvalue() == body
    [request] = seen(httpserver)
    assert form(request)["start"] == ["0"] and form(request)["limit"] == ["500"]
    assert children(criteria_of(request).find("states")) == [("state", "ENDED")]


def test_task_csv_yields_chunks(httpserver: HTTPServer):
    body = b"x" * 200_000
    httpserver.expect_request("/API/OR/Workitem/listCsvUtf16", method="POST").respond_with_data(body)
    chunks = list(make_hook(httpserver).search_tasks_csv(utf16=True, chunk_size=65536))
    assert b"".join(chunks) == body and len(chunks) > 1
    [request] = seen(httpserver)
    assert form(request) == {"start": ["0"], "limit": ["1000"]}


def test_csv_limit_is_checked(httpserver: HTTPServer):
    with pytest.raises(BpmConfigError, match="limit must be from 1 to 1000"):
        make_hook(httpserver).search_processes_csv(limit=5000)
    assert seen(httpserver) == []


# ---- tasks ------------------------------------------------------------------------------------------


def test_list_tasks_searches_open_workitems_of_one_process(httpserver: HTTPServer):
    items = [workitem(1, nodeName="Review"), workitem(2, nodeName="Approve"), workitem(3, nodeName="Review")]

    def search(request: WsgiRequest) -> Response:
        start, limit = int(request.form["start"]), int(request.form["limit"])
        body = {"count": 3, "workitems": items[start : start + limit]}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/API/OR/Workitem/list", method="POST").respond_with_handler(search)
    tasks = list(
        make_hook(httpserver, extra={"page_size": 2}).list_tasks(process_instance_id=825, name="Review")
    )
    assert [(t.id, t.name, t.process_instance_id, t.assignee, t.state) for t in tasks] == [
        ("1", "Review", "825", "佐藤", "ALLOCATED"),
        ("3", "Review", "825", "佐藤", "ALLOCATED"),
    ]
    assert tasks[0].raw["id"] == 1
    first, second = seen(httpserver)
    assert (form(first)["start"], form(first)["limit"], form(second)["start"]) == (["0"], ["2"], ["2"])
    criteria = criteria_of(first)
    assert criteria.tag == "workitem-criteria"
    assert children(criteria) == [("process-instance-id", "825"), ("workitem-states", None)]
    assert children(criteria.find("workitem-states")) == [
        ("workitem-state", "OFFERED"),
        ("workitem-state", "ALLOCATED"),
        ("workitem-state", "STARTED"),
    ]


def test_alist_tasks_runs_on_the_async_transport(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/Workitem/list", method="POST").respond_with_json(
        {"count": 1, "workitems": [workitem(7)]}
    )
    hook = make_hook(httpserver)

    async def run():
        try:
            return await hook.alist_tasks()
        finally:
            await hook.aclose()

    assert [t.id for t in asyncio.run(run())] == ["7"]
    [request] = seen(httpserver)
    assert form(request)["limit"] == ["1000"]
    assert children(criteria_of(request)) == [("workitem-states", None)]


def test_list_allocated_and_offered_page_with_limit(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/Workitem/listAllocated", method="GET").respond_with_json(
        {"count": 1, "workitems": [workitem(1)]}
    )
    httpserver.expect_request("/API/PE/Workitem/listOffered", method="GET").respond_with_json(
        {"count": 0, "workitems": []}
    )
    hook = make_hook(httpserver)
    assert [w["id"] for w in hook.list_allocated()] == [1]
    assert list(hook.list_offered()) == []
    allocated, offered = seen(httpserver)
    assert query(allocated) == query(offered) == {"start": ["0"], "limit": ["1000"]}


def test_a_server_that_ignores_limit_is_read_once(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/Workitem/listAllocated").respond_with_json(
        {"count": 5, "workitems": [workitem(i) for i in range(5)]}
    )
    assert len(list(make_hook(httpserver, extra={"page_size": 2}).list_allocated())) == 5
    assert len(seen(httpserver)) == 1


def test_claim_task_accepts_the_offered_task(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/Workitem/batchAccept", method="POST").respond_with_json(
        {"results": [{"success": True, "workitemId": 58399, "workitem": workitem()}]}
    )
    make_hook(httpserver).claim_task("58399")
    [request] = seen(httpserver)
    assert form(request) == {"workitemIds": ["58399"]}


def test_unassign_is_refused_as_the_workflow_api_has_no_such_call(httpserver: HTTPServer):
    # Seed 003 (DataSpider BPM Workflow API): tasks can be accepted (batchAccept) or
    # force-allocated to a user (PIM/Workitem/reallocate, quserId and qgroupId required); no call
    # gives a task back to those it was offered to.
    with pytest.raises(BpmConfigError, match="not supported by the Questetra API") as info:
        make_hook(httpserver).unassign_task("58399")
    assert info.value.conn_id and seen(httpserver) == []


def not_accepted(wid: int = 58399, **workitem_fields: Any) -> dict[str, Any]:
    # The document's Result shape; it names no error type for a task that is not offered (only
    # 40003 WorkitemDoesNotExist), so the hook must not depend on this one.
    result: dict[str, Any] = {
        "success": False,
        "workitemId": wid,
        "error": {"errorCode": "40007", "type": "WorkitemIsNotOffered"},
    }
    if workitem_fields:
        result["workitem"] = workitem(wid, **workitem_fields)
    return {"results": [result]}


def test_claim_task_already_allocated_to_this_user_succeeds(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/Workitem/batchAccept", method="POST").respond_with_json(not_accepted())
    httpserver.expect_request("/API/PE/Workitem/listAllocated", method="GET").respond_with_json(
        {"count": 2, "workitems": [workitem(11), workitem(58399)]}
    )
    make_hook(httpserver).claim_task("58399")
    accept, allocated = seen(httpserver)
    assert form(accept) == {"workitemIds": ["58399"]}
    assert query(allocated) == {"start": ["0"], "limit": ["1000"]}


def test_claim_task_held_by_someone_else_names_the_holder(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/Workitem/batchAccept", method="POST").respond_with_json(
        not_accepted(allocatedQuserId=7, allocatedQuserName="鈴木")
    )
    httpserver.expect_request("/API/PE/Workitem/listAllocated", method="GET").respond_with_json(
        {"count": 1, "workitems": [workitem(11)]}
    )
    with pytest.raises(BpmConflict) as caught:
        make_hook(httpserver).claim_task("58399")
    error = caught.value
    assert "task 58399 is allocated to '鈴木', not to this connection's user" in str(error)
    assert (error.method, error.path, error.conn_id) == ("POST", "/API/PE/Workitem/batchAccept", "q")
    assert error.details == ["WorkitemIsNotOffered (errorCode 40007)"]
    assert [r.path for r in seen(httpserver)] == [
        "/API/PE/Workitem/batchAccept",
        "/API/PE/Workitem/listAllocated",
    ]


def test_claim_task_without_the_task_in_the_answer_and_not_mine_is_a_conflict(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/Workitem/batchAccept", method="POST").respond_with_json(not_accepted())
    httpserver.expect_request("/API/PE/Workitem/listAllocated", method="GET").respond_with_json(
        {"count": 0, "workitems": []}
    )
    with pytest.raises(BpmConflict, match="neither offered to nor allocated to this user"):
        make_hook(httpserver).claim_task("58399")
    assert len(seen(httpserver)) == 2


def test_claim_task_that_ended_needs_no_lookup(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/Workitem/batchAccept", method="POST").respond_with_json(
        not_accepted(state="ENDED", endDatetime="2010-08-19T09:30:00+0900")
    )
    with pytest.raises(BpmConflict, match=r"task 58399 cannot be claimed: it has ended \(ENDED\)"):
        make_hook(httpserver).claim_task("58399")
    assert [r.path for r in seen(httpserver)] == ["/API/PE/Workitem/batchAccept"]


def test_claim_task_that_does_not_exist_is_not_found(httpserver: HTTPServer):
    # the document's own failure example: errorCode 40003, WorkitemDoesNotExist
    httpserver.expect_request("/API/PE/Workitem/batchAccept", method="POST").respond_with_json(
        {
            "results": [
                {
                    "success": False,
                    "workitemId": 58400,
                    "error": {"errorCode": "40003", "type": "WorkitemDoesNotExist"},
                }
            ]
        }
    )
    with pytest.raises(BpmNotFound, match="task 58400 does not exist") as caught:
        make_hook(httpserver).claim_task("58400")
    assert caught.value.details == ["WorkitemDoesNotExist (errorCode 40003)"]
    assert len(seen(httpserver)) == 1


def test_claim_task_with_an_assignee_reallocates(httpserver: HTTPServer):
    httpserver.expect_request("/API/PIM/Workitem/reallocate", method="POST").respond_with_json(
        {"workitem": workitem(allocatedQuserId=12)}
    )
    make_hook(httpserver).claim_task("58399", "12:3")
    [request] = seen(httpserver)
    assert form(request) == {"workitemId": ["58399"], "quserId": ["12"], "qgroupId": ["3"]}


def test_claim_task_explains_the_assignee_format(httpserver: HTTPServer):
    with pytest.raises(BpmConfigError, match=r"'quserId:qgroupId'.*got 'bob@example.com'"):
        make_hook(httpserver).claim_task("58399", "bob@example.com")
    assert seen(httpserver) == []


def test_batch_accept_reports_every_failure(httpserver: HTTPServer):
    results = [
        {"success": True, "workitemId": 58399, "workitem": workitem()},
        {
            "success": False,
            "workitemId": 58400,
            "error": {"errorCode": "40003", "type": "WorkitemDoesNotExist"},
        },
        {"success": False, "workitemId": 58401, "error": {"errorCode": "40009", "type": "AlreadyAccepted"}},
    ]
    httpserver.expect_request("/API/PE/Workitem/batchAccept", method="POST").respond_with_json(
        {"results": results}
    )
    hook = make_hook(httpserver)
    with pytest.raises(BpmConflict) as caught:
        hook.batch_accept([58399, "58400", 58401, 58402])
    assert caught.value.details == [
        "workitem 58400: WorkitemDoesNotExist (errorCode 40003)",
        "workitem 58401: AlreadyAccepted (errorCode 40009)",
        "workitem 58402: no result in the answer",
    ]
    assert "3 of 4 task(s) could not be accepted" in str(caught.value)
    assert hook.batch_accept([58399, 58400, 58401], raise_on_failure=False) == results
    first, second = seen(httpserver)
    assert form(first) == {"workitemIds": ["58399", "58400", "58401", "58402"]}
    assert form(second) == {"workitemIds": ["58399", "58400", "58401"]}


def test_complete_task_types_values_from_the_form(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml", method="GET").respond_with_data(
        FIRST_TASK_FORM, content_type="text/xml; charset=UTF-8"
    )
    httpserver.expect_request("/API/PE/Workitem/Form/save", method="POST").respond_with_data(
        SAVED, content_type="text/xml"
    )
    make_hook(httpserver).complete_task(
        "58399", {"Options": ["en", "ja"], "Due": "2024-06-30 18:00"}, flow="32", qgroup_id=5
    )
    view, save = seen(httpserver)
    assert query(view) == {"workitemId": ["58399"]}
    assert form(save) == {
        "workitemId": ["58399"],
        "data[5].selects": ["en", "ja"],
        "data[6].datetime": ["2024-06-30 18:00"],
        "qgroupId": ["5"],
        "flow": ["32"],
    }


def test_complete_task_with_success_false_lists_every_key_and_detail(httpserver: HTTPServer):
    refused = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<result success="false">
    <process-data-validation-errors>
        <error><key>data[4].usdecimal</key><detail>値は 100.0000000000 以上にしてください。</detail></error>
        <error><key>data[0].input</key><detail>必須項目です。</detail></error>
    </process-data-validation-errors>
    <errors>
        <error><key>title</key><detail>件名は必須入力です</detail></error>
    </errors>
</result>"""
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml").respond_with_data(FIRST_TASK_FORM)
    httpserver.expect_request("/API/PE/Workitem/Form/save", method="POST").respond_with_data(
        refused, status=200, content_type="text/xml"
    )
    with pytest.raises(BpmValidationError) as caught:
        make_hook(httpserver).complete_task("58399", {4: 50}, flow="Approve")
    assert caught.value.status == 200
    assert caught.value.details == [
        "data[4].usdecimal (data item 4 '数値型'): 値は 100.0000000000 以上にしてください。",
        "data[0].input (data item 0 'Customer'): 必須項目です。",
        "title: 件名は必須入力です",
    ]
    assert "workitem 58399 (task '入力')" in str(caught.value)
    assert len(seen(httpserver)) == 2  # never retried


def test_complete_task_refuses_bad_values_before_saving(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml").respond_with_data(FIRST_TASK_FORM)
    with pytest.raises(BpmValidationError, match="'fr' is not a choice") as caught:
        make_hook(httpserver).complete_task("58399", {"Options": "fr"}, flow="Approve")
    assert str(caught.value).startswith(
        "workitem 58399: values do not fit the task form [Questetra, connection 'q']\n"
        "  - data item 5 'Options': 'fr' is not a choice"
    )
    with pytest.raises(BpmConfigError, match="no data item named 'Nope'"):
        make_hook(httpserver).complete_task("58399", {"Nope": 1}, flow="Approve")
    with pytest.raises(BpmConfigError, match=r"unknown Questetra option.*comment"):
        make_hook(httpserver).complete_task("58399", {}, comment="x")
    assert [r.path for r in seen(httpserver)] == ["/API/PE/Workitem/Form/viewXml"] * 2


def test_view_form_reports_a_non_xml_answer(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml").respond_with_data("<html>login</html>")
    with pytest.raises(BpmServerError, match="unexpected answer: expected <workitem-form>, got <html>"):
        make_hook(httpserver).view_form(1)


def test_stars(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/Workitem/Star/add", method="POST").respond_with_data("")
    httpserver.expect_request("/API/OR/Workitem/Star/remove", method="POST").respond_with_data("")
    hook = make_hook(httpserver)
    hook.add_star(58399)
    hook.remove_star("58399")
    add, remove = seen(httpserver)
    assert form(add) == form(remove) == {"workitemId": ["58399"]}


# ---- ending and deleting processes ------------------------------------------------------------------


def test_cancel_process_stops_it(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/stop", method="POST").respond_with_data("")
    make_hook(httpserver).cancel_process("825")
    [request] = seen(httpserver)
    assert form(request) == {"processInstanceId": ["825"]}


def test_delete_process(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/delete", method="POST").respond_with_data("")
    make_hook(httpserver).delete_process(825)
    [request] = seen(httpserver)
    assert form(request) == {"processInstanceId": ["825"]}


def test_stop_is_not_retried_after_503(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/stop", method="POST").respond_with_data("", status=503)
    with pytest.raises(BpmServerError):
        make_hook(httpserver).stop_process("825")
    assert len(seen(httpserver)) == 1


def test_ids_must_be_numbers(httpserver: HTTPServer):
    hook = make_hook(httpserver)
    with pytest.raises(BpmConfigError, match="process instance id must be a number, got 'p825'"):
        hook.get_process("p825")
    with pytest.raises(BpmConfigError, match="task id must be a number"):
        hook.claim_task("abc")
    assert seen(httpserver) == []


# ---- files ------------------------------------------------------------------------------------------


def process_with_files() -> dict[str, Any]:
    # the data map of seed 000's example, with a second file item and items in no particular order
    return process_entry(
        183,
        "ENDED",
        processInstanceTitle="Test",
        processModelInfoName="For test: file download",
        data={
            "5": {
                "dataType": "FILE2",
                "id": 9200,
                "name": "Receipts",
                "processDataDefinitionNumber": 5,
                "subType": None,
                "value": [
                    {
                        "contentType": "application/pdf",
                        "id": 9301,
                        "image": False,
                        "length": 250_000,
                        "lengthText": "244 KB",
                        "name": "r.pdf",
                        "processDataInstanceId": 9200,
                    }
                ],
                "viewOrder": 5,
            },
            "1": {
                "dataType": "STRING",
                "id": 9142,
                "name": "Memo",
                "processDataDefinitionNumber": 1,
                "value": "x",
            },
            "3": {
                "dataType": "FILE2",
                "id": 9144,
                "name": "Empty",
                "processDataDefinitionNumber": 3,
                "value": None,
            },
            "2": {
                "dataType": "FILE2",
                "id": 9143,
                "name": "Pictures",
                "processDataDefinitionNumber": 2,
                "subType": None,
                "value": [
                    {
                        "contentType": "text/plain",
                        "id": 9150,
                        "image": False,
                        "length": 1056,
                        "lengthText": "1.1 KB",
                        "name": "README.txt",
                        "processDataInstanceId": 9143,
                    },
                    {
                        "contentType": "image/png",
                        "id": 9149,
                        "image": True,
                        "length": 71550,
                        "lengthText": "69.9 KB",
                        "name": "ques-kun-01.png",
                        "processDataInstanceId": 9143,
                    },
                ],
                "viewOrder": 2,
            },
        },
    )


def test_list_files_orders_by_item_number_then_file_id(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/view").respond_with_json(
        {"processInstance": process_with_files()}
    )
    files = list(make_hook(httpserver).list_files("183"))
    assert [(f.group, f.name, f.size, f.content_type, dict(f.ref)) for f in files] == [
        ("Pictures", "ques-kun-01.png", 71550, "image/png", {"id": 9149, "processDataInstanceId": 9143}),
        ("Pictures", "README.txt", 1056, "text/plain", {"id": 9150, "processDataInstanceId": 9143}),
        ("Receipts", "r.pdf", 250_000, "application/pdf", {"id": 9301, "processDataInstanceId": 9200}),
    ]
    assert {f.process_instance_id for f in files} == {"183"}
    assert files[0].raw["lengthText"] == "69.9 KB"
    [request] = seen(httpserver)
    assert query(request) == {"processInstanceId": ["183"]}


def test_open_file_streams_the_download(httpserver: HTTPServer):
    content = bytes(range(256)) * 1000
    httpserver.expect_request(
        "/userweb/API/OR/ProcessInstance/File/download", method="GET"
    ).respond_with_data(content, content_type="application/pdf")
    hook = make_hook(httpserver, root="/userweb")
    file = ProcessFile(
        name="r.pdf",
        size=len(content),
        content_type="application/pdf",
        process_instance_id="183",
        ref={"id": 9301, "processDataInstanceId": 9200},
    )
    with hook.open_file(file) as reply:
        assert reply.stream is not None and reply.body == b""  # not read into memory
        chunks = list(reply.iter_bytes(32 * 1024))
    assert b"".join(chunks) == content and len(chunks) > 1
    assert reply.stream.raw.closed
    [request] = seen(httpserver)
    assert query(request) == {"id": ["9301"], "processDataInstanceId": ["9200"]}
    assert request.headers["Authorization"] == BASIC


def test_open_file_from_an_offset_asks_for_the_rest_with_a_range(httpserver: HTTPServer):
    # RFC 9110 Range on the documented download; a 206 with Content-Range is the server's yes.
    httpserver.expect_request(
        "/API/OR/ProcessInstance/File/download", method="GET", headers={"Range": "bytes=1000-"}
    ).respond_with_data(b"rest", status=206, headers={"Content-Range": "bytes 1000-1003/1004"})
    file = ProcessFile(
        name="r.pdf",
        size=1004,
        content_type=None,
        process_instance_id="183",
        ref={"id": 9301, "processDataInstanceId": 9200},
    )
    with make_hook(httpserver).open_file(file, offset=1000) as reply:
        assert reply.status == 206 and b"".join(reply.iter_bytes(1024)) == b"rest"
    [request] = seen(httpserver)
    assert query(request) == {"id": ["9301"], "processDataInstanceId": ["9200"]}


def test_list_files_takes_the_file_items_a_search_carried_without_a_request(httpserver: HTTPServer):
    entry = process_with_files()
    files = list(make_hook(httpserver).list_files("183", listed=entry))
    assert [f.name for f in files] == ["ques-kun-01.png", "README.txt", "r.pdf"]
    assert seen(httpserver) == []
    # A search entry without File items (the criteria named none) cannot tell: view it.
    httpserver.expect_request("/API/OR/ProcessInstance/view").respond_with_json({"processInstance": entry})
    assert len(list(make_hook(httpserver).list_files("183", listed={**entry, "data": None}))) == 3
    assert len(seen(httpserver)) == 1


def test_open_file_needs_a_questetra_reference(httpserver: HTTPServer):
    file = ProcessFile(name="x", size=None, content_type=None, process_instance_id="1", ref={"url": "/x"})
    with pytest.raises(BpmConfigError, match="no Questetra reference"), make_hook(httpserver).open_file(file):
        pass
    assert seen(httpserver) == []


def test_a_missing_file_is_not_found(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/File/download").respond_with_data("", status=404)
    with pytest.raises(BpmNotFound), make_hook(httpserver).download_file(1, 2):
        pass


def test_view_process_and_reallocate_return_the_vendor_dicts(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/ProcessInstance/view").respond_with_json(
        {"processInstance": process_with_files()}
    )
    httpserver.expect_request("/API/PIM/Workitem/reallocate", method="POST").respond_with_data("")
    hook = make_hook(httpserver)
    assert hook.view_process(183)["data"]["2"]["name"] == "Pictures"
    assert hook.reallocate(58399, 12, 3) is None


# ---- a start whose answer was lost (the start operator's journal) --------------------------------


def test_find_unclaimed_starts_asks_for_my_starts_since_then_and_keeps_the_untitled(httpserver: HTTPServer):
    # Seed 003, process-instance-criteria: init-quser-id "#me", start-date-from (inclusive, to the
    # minute, in the API user's time zone). Titles can be matched only by "contains": checked here.
    httpserver.expect_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {
            "count": 4,
            "processInstances": [
                process_entry(
                    7, processInstanceTitle=None, processInstanceStartDatetime="2024-05-01T09:31:00+0900"
                ),
                process_entry(
                    6, processInstanceTitle="", processInstanceStartDatetime="2024-05-01T09:30:50+0900"
                ),
                process_entry(
                    5, processInstanceTitle="INV-9", processInstanceStartDatetime="2024-05-01T09:30:55+0900"
                ),
                process_entry(
                    4, processInstanceTitle=None, processInstanceStartDatetime="2024-05-01T09:30:10+0900"
                ),
            ],
        }
    )
    since = datetime(2024, 5, 1, 0, 30, 45, tzinfo=UTC)  # 09:30:45 in Tokyo

    found = make_hook(httpserver, extra={"timezone": "Asia/Tokyo"}).find_unclaimed_starts("12/3", since)

    assert [p.id for p in found] == ["7", "6"]
    [request] = seen(httpserver)
    assert children(criteria_of(request)) == [
        ("process-model-info-id", "12"),
        ("start-date-from", "2024-05-01 09:30"),
        ("init-quser-id", "#me"),
        ("sort-property", "processInstanceStartDatetime"),
        ("sort-direction", "DESC"),
    ]


def test_find_unclaimed_starts_without_a_timezone_finds_a_start_of_a_user_west_of_utc(httpserver: HTTPServer):
    # A server in UTC-8 (answers carry -08:00 offsets) and no 'timezone' extra: the server reads
    # start-date-from in the user's zone, so the UTC wall clock (18:30) would start the window
    # 8 hours after the lost start. The bound is the UTC wall clock minus 14 hours, early enough
    # for any zone from UTC-12 to UTC+14; the exact instant is checked by the answers' offsets.
    httpserver.expect_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {
            "count": 3,
            "processInstances": [
                process_entry(  # the lost start: 10:30:50 at -08:00 is 18:30:50Z
                    9, processInstanceTitle=None, processInstanceStartDatetime="2024-05-01T10:30:50-0800"
                ),
                process_entry(  # untitled but started before: 18:30:10Z
                    8, processInstanceTitle=None, processInstanceStartDatetime="2024-05-01T10:30:10-08:00"
                ),
                process_entry(  # started in the window hours earlier, long before the lost start
                    7, processInstanceTitle=None, processInstanceStartDatetime="2024-05-01T05:00:00-0800"
                ),
            ],
        }
    )
    since = datetime(2024, 5, 1, 18, 30, 45, tzinfo=UTC)  # 10:30:45 in UTC-8

    found = make_hook(httpserver).find_unclaimed_starts("12/3", since)

    assert [p.id for p in found] == ["9"]
    assert found[0].started_at == datetime(2024, 5, 1, 18, 30, 50, tzinfo=UTC)
    [request] = seen(httpserver)
    assert children(criteria_of(request)) == [
        ("process-model-info-id", "12"),
        ("start-date-from", "2024-05-01 04:30"),  # 18:30 UTC wall clock minus 14 hours
        ("init-quser-id", "#me"),
        ("sort-property", "processInstanceStartDatetime"),
        ("sort-direction", "DESC"),
    ]


@pytest.mark.parametrize("hours", [-12, -8, 0, 9, 14])
def test_the_unclaimed_window_without_a_timezone_starts_early_enough_in_any_zone(hours: int):
    since = datetime(2024, 5, 1, 18, 30, 45, tzinfo=UTC)
    bound = unclaimed_window_start(since, None)
    assert bound.tzinfo is None
    # The server reads the naive text in the user's zone: that instant must not be after since.
    assert bound.replace(tzinfo=timezone(timedelta(hours=hours))) <= since
    assert unclaimed_window_start(since, ZoneInfo("Asia/Tokyo")) == since  # converted by the writer


class JournalStore:
    """A task state store that notes how many requests the server had seen at each write."""

    def __init__(self, server: HTTPServer) -> None:
        self.server, self.values, self.writes = server, {}, []

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value
        self.writes.append((key, [r.path for r, _ in self.server.log]))

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def test_the_start_reports_its_id_before_the_title_save_which_is_repeated_after_a_503(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/ProcessInstance/start", method="POST").respond_with_json(
        {"workitem": workitem()}
    )
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml", method="GET").respond_with_data(
        FIRST_TASK_FORM, content_type="text/xml"
    )
    answers = iter([Response("busy", status=503), Response(SAVED)])
    httpserver.expect_request("/API/PE/Workitem/Form/save", method="POST").respond_with_handler(
        lambda request: next(answers)
    )
    expect_view(httpserver, processInstanceTitle="KEY-1")
    store = JournalStore(httpserver)

    with start_journal.StartJournal(store).listening():
        make_hook(httpserver).start_process("12/3", business_key="KEY-1")

    assert store.writes == [(start_journal.INSTANCE_ID_KEY, ["/API/PE/ProcessInstance/start"])]
    paths = [r.path for r in seen(httpserver)]
    assert paths.count("/API/PE/ProcessInstance/start") == 1  # the start itself is never repeated
    saves = [r for r in seen(httpserver) if r.path == "/API/PE/Workitem/Form/save"]
    assert [form(r) for r in saves] == [
        {"workitemId": ["58399"], "title": ["KEY-1"], "saveOnly": ["true"]}
    ] * 2


def test_resume_start_saves_the_title_an_earlier_try_never_saved(httpserver: HTTPServer):
    httpserver.expect_request("/API/OR/Workitem/list", method="POST").respond_with_json(
        {"count": 1, "workitems": [workitem(state="ALLOCATED")]}
    )
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml", method="GET").respond_with_data(
        FIRST_TASK_FORM, content_type="text/xml"
    )
    httpserver.expect_request("/API/PE/Workitem/Form/save", method="POST").respond_with_data(SAVED)
    expect_view(httpserver, processInstanceTitle="KEY-1")
    hook = make_hook(httpserver)
    untitled = hook._to_process(process_entry(825, processInstanceTitle=None), None)

    assert hook.resume_start(untitled, business_key="KEY-1").title == "KEY-1"

    search, _, save, _ = seen(httpserver)
    assert ("process-instance-id", "825") in children(criteria_of(search))
    assert form(save) == {"workitemId": ["58399"], "title": ["KEY-1"], "saveOnly": ["true"]}


def test_resume_start_leaves_a_titled_process_alone(httpserver: HTTPServer):
    hook = make_hook(httpserver)
    titled = hook._to_process(process_entry(825, processInstanceTitle="KEY-1"), None)
    assert hook.resume_start(titled, business_key="KEY-1") is titled
    assert seen(httpserver) == []


# ---- batched reads for triggers ---------------------------------------------------------------


def test_batched_read_lists_the_running_processes_of_each_app(httpserver: HTTPServer):
    # Seed 003: ProcessInstance/list takes criteria XML (process-model-info-id, states/state,
    # sort-property, sort-direction; no process id), start, and limit up to 1000.
    httpserver.expect_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {"count": 2, "processInstances": [process_entry(825), process_entry(900)]}
    )
    hook = make_hook(httpserver)
    found = hook._run(hook._poll_processes_flow(["825", "826"], ["9"]))
    (request,) = seen(httpserver)
    fields = form(request)
    assert fields["start"] == ["0"] and fields["limit"] == ["1000"]
    root = criteria_of(request)
    assert root.tag == "process-instance-criteria"
    assert root.findtext("process-model-info-id") == "9"
    assert [state.text for state in root.findall("states/state")] == ["STARTED"]
    assert root.findtext("sort-property") == "processInstanceStartDatetime"
    assert root.findtext("sort-direction") == "ASC"
    # 825 is running; 826 is not listed (ended, or on another app): for a single read
    assert list(found) == ["825"] and found["825"].state is ProcessState.RUNNING


def test_batched_read_finds_the_processes_that_ended_among_the_latest_ended(httpserver: HTTPServer):
    # Seed 003: states/state ENDED (ended normally) and FAILED (ended abnormally or stopped);
    # sort-property processInstanceEndDatetime, sort-direction DESC: the latest ended first.
    httpserver.expect_ordered_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {"count": 1, "processInstances": [process_entry(825)]}
    )
    httpserver.expect_ordered_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {"count": 3, "processInstances": [process_entry(827, "FAILED"), process_entry(826, "ENDED")]}
    )
    hook = make_hook(httpserver)
    found = hook._run(hook._poll_processes_flow(["825", "826", "827"], ["9"]))
    httpserver.check_assertions()
    running, ended = seen(httpserver)
    assert [state.text for state in criteria_of(running).findall("states/state")] == ["STARTED"]
    root = criteria_of(ended)
    assert root.findtext("process-model-info-id") == "9"
    assert [state.text for state in root.findall("states/state")] == ["ENDED", "FAILED"]
    assert root.findtext("sort-property") == "processInstanceEndDatetime"
    assert root.findtext("sort-direction") == "DESC"
    assert form(ended)["start"] == ["0"] and form(ended)["limit"] == ["1000"]
    assert {pid: i.state for pid, i in found.items()} == {
        "825": ProcessState.RUNNING,
        "826": ProcessState.COMPLETED,
        "827": ProcessState.FAILED,
    }
    assert found["826"].ended_at is not None


def test_batched_read_stops_listing_when_single_reads_would_be_cheaper(httpserver: HTTPServer):
    for first in (1, 1001):  # two different full pages of 5,000 (a repeated page is refused)
        full = {"count": 5000, "processInstances": [process_entry(i) for i in range(first, first + 1000)]}
        httpserver.expect_ordered_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
            full
        )
    hook = make_hook(httpserver)
    assert hook._run(hook._poll_processes_flow(["4001", "4002"], ["9", "10"])) == {}
    assert len(seen(httpserver)) == 2  # two waits: at most two pages in all, never the whole 5,000


def test_batched_task_read_lists_each_apps_open_tasks(httpserver: HTTPServer):
    # Seed 003: Workitem/list criteria take process-model-info-id and workitem-states (and one
    # process-instance-id at most); no task name: matched here by nodeName.
    httpserver.expect_request("/API/OR/Workitem/list", method="POST").respond_with_json(
        {"count": 2, "workitems": [workitem(1, 825, nodeName="Approve"), workitem(2, 825, nodeName="Review")]}
    )
    hook = make_hook(httpserver)
    found = hook._run(hook._poll_tasks_flow({"825": "9", "826": "9"}, "Approve"))
    (request,) = seen(httpserver)
    assert form(request)["limit"] == ["1000"]
    root = criteria_of(request)
    assert root.tag == "workitem-criteria"
    assert root.findtext("process-model-info-id") == "9"
    assert [s.text for s in root.findall("workitem-states/workitem-state")] == [
        "OFFERED",
        "ALLOCATED",
        "STARTED",
    ]
    assert [t.id for t in found["825"]] == ["1"] and found["826"] == []
