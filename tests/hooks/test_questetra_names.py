"""QuestetraHook names what a person would write: an app by its name, a decision by its button.

Pinned against the DataSpider BPM Workflow API document (seed 003), not the emulator:
``/API/PE/ProcessModel/listStartable`` takes ``start``, ``limit`` (default 1) and ``query``, "the app
name: processes whose app name contains the value"; its ActivityEntry carries
``processModelInfoId``, ``processModelInfoName`` and the start event's ``nodeNumber``.
``Form/save`` takes ``flow``, the flow id of a ``user-select`` button of ``Form/viewXml``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.models.connection import Connection
from lxml import etree
from pytest_httpserver import HTTPServer
from werkzeug import Request as WsgiRequest

from airflow_bpm_provider.exceptions import BpmConfigError
from airflow_bpm_provider.hooks.questetra import QuestetraHook
from airflow_bpm_provider.hooks.retry import RetryPolicy

LIST_STARTABLE = "/API/PE/ProcessModel/listStartable"
SAVED = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<result success="true" />'
APPROVE_FORM = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workitem-form xmlns:ns2="process-data-definition-detail">
    <form-data number="2" id="14002">
        <accessibility>3</accessibility><data-type>0</data-type><name>approved</name>
        <data-instance-id>75771</data-instance-id><required>false</required>
    </form-data>
    <node-number>1</node-number>
    <task-name>Approve</task-name>
    <user-selects>
        <user-select><flow-id>31</flow-id><name>Approve</name></user-select>
        <user-select><flow-id>32</flow-id><name>Reject</name></user-select>
    </user-selects>
    <workitem-id>58400</workitem-id>
</workitem-form>
"""


def make_hook(server: HTTPServer) -> QuestetraHook:
    connection = Connection(
        conn_id="q", conn_type="questetra", host=server.url_for("/"), login="a@example.com", password="pw"
    )
    return QuestetraHook(
        "q", connection=connection, retry_policy=RetryPolicy(max_attempts=1), sleep=lambda s: None
    )


def startable(model: int, node: int, name: str) -> dict[str, Any]:
    return {
        "id": 2000 + model,
        "nodeName": "Apply",
        "nodeNumber": node,
        "processModelActivateDatetime": "2010-01-07T18:13:40+0900",
        "processModelId": 2081,
        "processModelInfoCategory": "Finance",
        "processModelInfoId": model,
        "processModelInfoName": name,
        "processModelVersion": 1,
    }


def listing(*activities: dict[str, Any]) -> str:
    return json.dumps({"count": len(activities), "startableActivities": list(activities)})


def requests(server: HTTPServer) -> list[WsgiRequest]:
    server.check_assertions()
    return [request for request, _ in server.log]


def started_process(server: HTTPServer) -> None:
    server.expect_request("/API/PE/ProcessInstance/start", method="POST").respond_with_json(
        {"workitem": {"id": 58399, "processInstanceId": 825, "nodeName": "Apply", "state": "ALLOCATED"}}
    )
    server.expect_request("/API/OR/ProcessInstance/view").respond_with_json(
        {"processInstance": {"processInstanceId": 825, "processInstanceState": "STARTED"}}
    )


def test_an_app_name_is_looked_up_by_query_and_matched_exactly(httpserver: HTTPServer):
    httpserver.expect_request(LIST_STARTABLE, method="GET").respond_with_data(
        listing(startable(15, 0, "expense-approval (old)"), startable(14, 0, "expense-approval")),
        content_type="application/json",
    )
    started_process(httpserver)
    hook = make_hook(httpserver)
    assert hook.start_process("expense-approval").id == "825"
    hook.start_process("expense-approval")  # the name is resolved once per hook
    lookup, start, _, again, _ = requests(httpserver)
    assert lookup.args.to_dict(flat=False) == {
        "start": ["0"],
        "limit": ["1000"],
        "query": ["expense-approval"],
    }
    # the one start event's node came with the lookup: no second listStartable
    assert start.form.to_dict(flat=False) == {"processModelInfoId": ["14"], "nodeNumber": ["0"]}
    assert again.path == "/API/PE/ProcessInstance/start"


def test_find_processes_takes_an_app_name_as_definition(httpserver: HTTPServer):
    httpserver.expect_request(LIST_STARTABLE).respond_with_data(
        listing(startable(14, 0, "経費精算")), content_type="application/json"
    )
    httpserver.expect_request("/API/OR/ProcessInstance/list", method="POST").respond_with_json(
        {"count": 0, "processInstances": []}
    )
    assert list(make_hook(httpserver).find_processes(definition="経費精算")) == []
    _, search = requests(httpserver)
    criteria = etree.fromstring(search.form["criteria"].encode())
    assert criteria.findtext("process-model-info-id") == "14"


def test_a_name_of_several_apps_lists_them_and_starts_nothing(httpserver: HTTPServer):
    httpserver.expect_request(LIST_STARTABLE).respond_with_data(
        listing(startable(14, 0, "Expenses"), startable(21, 0, "Expenses")), content_type="application/json"
    )
    with pytest.raises(BpmConfigError) as caught:
        make_hook(httpserver).start_process("Expenses")
    message = str(caught.value)
    assert (
        "2 startable apps are named 'Expenses'; name one by its id: 14 'Expenses', 21 'Expenses'" in message
    )
    assert "[Questetra, GET /API/PE/ProcessModel/listStartable, connection 'q']" in message
    assert [r.path for r in requests(httpserver)] == [LIST_STARTABLE]


def test_an_unknown_name_lists_the_apps_whose_name_contains_it(httpserver: HTTPServer):
    httpserver.expect_request(LIST_STARTABLE).respond_with_data(
        listing(startable(14, 0, "Expense approval")), content_type="application/json"
    )
    with pytest.raises(BpmConfigError) as caught:
        make_hook(httpserver).start_process("Expense")
    message = str(caught.value)
    assert "no app this user can start is named 'Expense'" in message
    assert "apps whose name contains it: 14 'Expense approval'" in message


def test_a_name_nothing_contains_lists_some_startable_apps(httpserver: HTTPServer):
    httpserver.expect_request(
        LIST_STARTABLE, query_string={"start": "0", "limit": "1000", "query": "Nope"}
    ).respond_with_data(listing(), content_type="application/json")
    httpserver.expect_request(LIST_STARTABLE, query_string={"start": "0", "limit": "1000"}).respond_with_data(
        listing(startable(11, 0, "Leave"), startable(11, 3, "Leave"), startable(12, 0, "Orders")),
        content_type="application/json",
    )
    with pytest.raises(
        BpmConfigError, match=r"named 'Nope' \(names .*\); startable apps: 11 'Leave', 12 'Orders'"
    ):
        make_hook(httpserver).start_process("Nope")
    assert len(requests(httpserver)) == 2


def test_a_named_app_with_several_start_events_asks_for_the_node(httpserver: HTTPServer):
    httpserver.expect_request(LIST_STARTABLE).respond_with_data(
        listing(startable(14, 0, "Orders"), startable(14, 5, "Orders")), content_type="application/json"
    )
    with pytest.raises(BpmConfigError, match="app 14 has 2 start events; name one as '14/<node number>'"):
        make_hook(httpserver).start_process("Orders")


@pytest.mark.parametrize("process", [True, "", "  ", 12.5, None])
def test_what_is_neither_an_id_nor_a_name_sends_nothing(httpserver: HTTPServer, process: Any):
    with pytest.raises(BpmConfigError, match=r"its app id .* or the app's name; got"):
        make_hook(httpserver).start_process(process)
    assert requests(httpserver) == []


def test_complete_task_takes_the_button_name_as_flow_and_data_items_by_name(httpserver: HTTPServer):
    httpserver.expect_request("/API/PE/Workitem/Form/viewXml").respond_with_data(APPROVE_FORM)
    httpserver.expect_request("/API/PE/Workitem/Form/save", method="POST").respond_with_data(SAVED)
    make_hook(httpserver).complete_task("58400", {"approved": True}, flow="Reject")
    _, save = requests(httpserver)
    assert save.form.to_dict(flat=False) == {
        "workitemId": ["58400"],
        "data[2].input": ["true"],
        "flow": ["32"],
    }
