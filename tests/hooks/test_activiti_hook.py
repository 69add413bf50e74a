"""ActivitiHook against a scripted server: every request pinned to WSO2's / Activiti's / Flowable's docs.

Expected requests come from seed 004 (WSO2 EI BPMN REST API, Activiti 5.21), the Activiti user
guide and Flowable's Swagger spec; every request a test makes is also checked against that spec
(``tests/contracts``). Answers are shaped like the documentation's examples.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from airflow.models.connection import Connection
from contracts.flowable_swagger import check_request
from pytest_httpserver import HTTPServer
from werkzeug import Request as WerkzeugRequest
from werkzeug import Response

from airflow_bpm_provider.exceptions import (
    BpmAuthError,
    BpmConfigError,
    BpmConflict,
    BpmNotFound,
    BpmValidationError,
)
from airflow_bpm_provider.hooks.activiti import ActivitiHook
from airflow_bpm_provider.hooks.activiti_models import definition_id, definition_key, process_from_history
from airflow_bpm_provider.hooks.registry import hook_class
from airflow_bpm_provider.hooks.retry import RetryPolicy
from airflow_bpm_provider.models import ProcessFile, ProcessState

PASSWORD = "Activiti-pw-never-logged-93"
LOGIN = "WSO2.COM/alice"  # a user of a WSO2 secondary user store: DOMAIN/user
BASES = ["/bpmn", "/activiti-rest/service", "/flowable-rest/service"]
JSON_HEADERS = {"Content-Type": "application/json"}


def basic(login: str = LOGIN, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


AUTH = {"Authorization": basic()}


@pytest.fixture(autouse=True)
def contract(httpserver: HTTPServer) -> Iterator[None]:
    """Every request a test sent must exist in Flowable's spec with declared params and fields."""
    yield
    for request, _ in httpserver.log:
        check_request(request)


def make_hook(server: HTTPServer, base: str = "/bpmn", **extra: str) -> ActivitiHook:
    conn = Connection(
        conn_id="activiti_test",
        conn_type="activiti",
        host=server.url_for(base),
        login=LOGIN,
        password=PASSWORD,
        extra=json.dumps(extra) if extra else None,
    )
    return ActivitiHook(
        "activiti_test", connection=conn, retry_policy=RetryPolicy(initial_delay=0.0, max_attempts=2)
    )


def runtime_instance(instance_id: str = "27504", **fields: object) -> dict:
    """The answer of GET runtime/process-instances/{id} in seed 004."""
    body = {
        "id": instance_id,
        "url": f"https://localhost:9445/bpmn/runtime/process-instances/{instance_id}",
        "businessKey": None,
        "suspended": False,
        "ended": False,
        "processDefinitionId": "sampleJavaServiceTask:1:27503",
        "processDefinitionUrl": "https://localhost:9445/bpmn/repository/process-definitions/sampleJavaServiceTask%3A1%3A27503",
        "activityId": "waitState",
        "variables": [],
        "tenantId": "",
        "completed": False,
    }
    body.update(fields)
    return body


def historic_instance(instance_id: str = "27504", **fields: object) -> dict:
    body = {
        "id": instance_id,
        "businessKey": "order-7",
        "processDefinitionId": "order:2:55",
        "startTime": "2015-01-17T10:17:43.902+0000",
        "endTime": "2015-01-17T11:00:00.000+0000",
        "durationInMillis": 2576098,
        "startUserId": "kermit",
        "startActivityId": "start",
        "endActivityId": "end",
        "deleteReason": None,
        "variables": [],
        "tenantId": "",
    }
    body.update(fields)
    return body


def page(rows: list[dict], *, total: int, start: int = 0) -> dict:
    return {"data": rows, "total": total, "start": start, "sort": "id", "order": "asc", "size": len(rows)}


def task(task_id: str, instance_id: str = "5", name: str = "My task", **fields: object) -> dict:
    body = {
        "assignee": None,
        "createTime": "2015-01-17T10:17:43.902+0000",
        "delegationState": None,
        "id": task_id,
        "name": name,
        "priority": 50,
        "processInstanceId": instance_id,
        "processInstanceUrl": f"https://localhost:9445/bpmn/runtime/process-instances/{instance_id}",
        "suspended": False,
        "taskDefinitionKey": "theTask",
    }
    body.update(fields)
    return body


# ---- connection, auth, errors -----------------------------------------------------------------


def test_registry_maps_the_activiti_connection_type_to_this_hook():
    assert hook_class("activiti", conn_id="x") is ActivitiHook


@pytest.mark.parametrize("base", BASES)
def test_probe_sends_domain_user_verbatim_in_basic_auth(httpserver: HTTPServer, base: str):
    httpserver.expect_oneshot_request(
        f"{base}/repository/process-definitions", method="GET", query_string={"size": "1"}, headers=AUTH
    ).respond_with_json(page([], total=3))
    ok, message = make_hook(httpserver, base).test_connection()
    assert ok, message
    assert "3 process definition(s)" in message
    httpserver.check_assertions()


def test_wso2_error_body_becomes_the_message_and_the_password_never_shows(httpserver: HTTPServer):
    httpserver.expect_oneshot_request(
        "/bpmn/repository/process-definitions", method="GET", headers=AUTH, query_string={"size": "1"}
    ).respond_with_json(
        {"statusCode": 401, "errorMessage": f"Bad credentials for {LOGIN} / {PASSWORD}"}, status=401
    )
    ok, message = make_hook(httpserver).test_connection()
    assert not ok
    assert "Bad credentials" in message and "HTTP 401" in message and "activiti_test" in message
    assert PASSWORD not in message


def test_activiti_error_body_joins_message_and_exception(httpserver: HTTPServer):
    httpserver.expect_oneshot_request(
        "/activiti-rest/service/runtime/tasks/9", method="GET", headers=AUTH, query_string=""
    ).respond_with_json(
        {"message": "Not found", "exception": "Could not find a task with id '9'."}, status=404
    )
    with pytest.raises(BpmNotFound, match=r"Not found: Could not find a task with id '9'\."):
        make_hook(httpserver, "/activiti-rest/service").get_task("9")


# ---- starting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("base", BASES)
def test_start_by_key_sends_typed_variables_business_key_and_tenant(httpserver: HTTPServer, base: str):
    expected = {
        "processDefinitionKey": "sampleJavaServiceTask",
        "tenantId": "tenant1",
        "businessKey": "myBusinessKey",
        "variables": [
            {"name": "text", "type": "string", "value": "This is a variable"},
            {"name": "flag", "type": "boolean", "value": True},
            {"name": "count", "type": "integer", "value": 123},
            {"name": "big", "type": "long", "value": 2**40},
            {"name": "ratio", "type": "double", "value": 0.5},
            {"name": "due", "type": "date", "value": "2015-01-17T11:06:02.438Z"},
            {"name": "day", "type": "date", "value": "2015-01-17T00:00:00.000Z"},
            {"name": "order", "type": "json", "value": {"lines": [1, 2]}},
            {"name": "small", "type": "short", "value": 7},
            {"name": "nothing", "value": None},
        ],
    }
    httpserver.expect_oneshot_request(
        f"{base}/runtime/process-instances", method="POST", json=expected, headers=AUTH, query_string=""
    ).respond_with_json(runtime_instance(businessKey="myBusinessKey"), status=201)

    instance = make_hook(httpserver, base, tenant_id="tenant1").start_process(
        "sampleJavaServiceTask",
        business_key="myBusinessKey",
        variables={
            "text": "This is a variable",
            "flag": True,
            "count": 123,
            "big": 2**40,
            "ratio": 0.5,
            "due": datetime(2015, 1, 17, 13, 6, 2, 438000, tzinfo=timezone(timedelta(hours=2))),
            "day": date(2015, 1, 17),
            "order": {"lines": [1, 2]},
            "small": {"type": "short", "value": 7},
            "nothing": None,
        },
    )
    httpserver.check_assertions()
    assert instance.id == "27504"
    assert instance.state is ProcessState.RUNNING
    assert instance.definition == "sampleJavaServiceTask"  # from processDefinitionId key:version:id
    assert instance.business_key == "myBusinessKey"


def test_start_by_id_never_sends_the_tenant(httpserver: HTTPServer):
    httpserver.expect_oneshot_request(
        "/bpmn/runtime/process-instances",
        method="POST",
        json={"processDefinitionId": "sampleJavaServiceTask:1:27503"},
        headers=AUTH,
        query_string="",
    ).respond_with_json(runtime_instance(), status=201)
    hook = make_hook(httpserver, tenant_id="tenant1")
    assert hook.start_process("id:sampleJavaServiceTask:1:27503").id == "27504"
    httpserver.check_assertions()


def test_start_by_message_with_tenant(httpserver: HTTPServer):
    httpserver.expect_oneshot_request(
        "/bpmn/runtime/process-instances",
        method="POST",
        json={"message": "newOrderMessage", "tenantId": "tenant1", "businessKey": "myBusinessKey"},
        headers=AUTH,
        query_string="",
    ).respond_with_json(runtime_instance(), status=201)
    hook = make_hook(httpserver)
    hook.start_process("newOrderMessage", by="message", tenant_id="tenant1", business_key="myBusinessKey")
    httpserver.check_assertions()


def test_start_is_not_retried_after_a_gateway_error(httpserver: HTTPServer):
    httpserver.expect_request(
        "/bpmn/runtime/process-instances", method="POST", headers=AUTH, query_string=""
    ).respond_with_data("bad gateway", status=502)
    with pytest.raises(Exception, match="HTTP 502"):
        make_hook(httpserver).start_process("order")
    assert len(httpserver.log) == 1  # a second POST could start a second instance


@pytest.mark.parametrize(
    ("status", "body"),
    [
        # What Activiti 5.21 / Flowable answer: the not-found is wrapped as an illegal argument.
        (400, {"message": "Bad request", "exception": "no processes deployed with key 'nope'"}),
        (404, {"statusCode": 404, "errorMessage": "no processes deployed with key 'nope'"}),
    ],
)
def test_start_of_an_unknown_key_is_not_found(httpserver: HTTPServer, status: int, body: dict):
    httpserver.expect_oneshot_request(
        "/bpmn/runtime/process-instances", method="POST", headers=AUTH, query_string=""
    ).respond_with_json(body, status=status)
    with pytest.raises(BpmNotFound, match="no processes deployed with key 'nope'") as caught:
        make_hook(httpserver).start_process("nope")
    assert "key 'nope'" in str(caught.value)


def test_wso2s_missing_tenant_refusal_gets_a_hint(httpserver: HTTPServer):
    # WSO2 EI's REST layer refuses a start by key or message without tenantId (seed 004: "providing
    # the tenantId is mandatory"); its error body is {"statusCode", "errorMessage"}.
    httpserver.expect_oneshot_request(
        "/bpmn/runtime/process-instances",
        method="POST",
        json={"processDefinitionKey": "order"},
        headers=AUTH,
        query_string="",
    ).respond_with_json(
        {
            "statusCode": 400,
            "errorMessage": "TenantId should be specified to be used with either "
            "processDefinitionKey or message.",
        },
        status=400,
    )
    with pytest.raises(BpmValidationError) as caught:
        make_hook(httpserver).start_process("order")
    message = str(caught.value)
    assert "set the connection extra tenant_id, e.g. -1234 on WSO2 EI" in message
    assert "TenantId should be specified" in message and "HTTP 400" in message
    assert "activiti_test" in message
    assert len(httpserver.log) == 1  # a refused start is not re-sent


@pytest.mark.parametrize(("extra", "hinted"), [({}, True), ({"tenant_id": "-1234"}, False)])
def test_an_unknown_key_without_a_tenant_hints_at_the_tenant(httpserver: HTTPServer, extra, hinted):
    body = {"processDefinitionKey": "order", **({"tenantId": "-1234"} if extra else {})}
    httpserver.expect_oneshot_request(
        "/activiti-rest/service/runtime/process-instances",
        method="POST",
        json=body,
        headers=AUTH,
        query_string="",
    ).respond_with_json(
        {"message": "Bad request", "exception": "no processes deployed with key 'order'"}, status=400
    )
    with pytest.raises(BpmNotFound, match="nothing to start for key 'order'") as caught:
        make_hook(httpserver, "/activiti-rest/service", **extra).start_process("order")
    assert ("tenant_id, e.g. -1234" in str(caught.value)) is hinted


def test_a_wrong_variable_type_reported_by_the_server_is_a_validation_error(httpserver: HTTPServer):
    httpserver.expect_oneshot_request(
        "/bpmn/runtime/process-instances", method="POST", headers=AUTH, query_string=""
    ).respond_with_json(
        {"statusCode": 400, "errorMessage": "Converter can only convert integers"}, status=400
    )
    with pytest.raises(BpmValidationError, match="Converter can only convert integers"):
        make_hook(httpserver).start_process("order", variables={"amount": {"type": "integer", "value": "x"}})


@pytest.mark.parametrize(
    ("variables", "fragment"),
    [
        ({"when": object()}, "variable 'when': a value of type object"),
        ({"price": __import__("decimal").Decimal("1.5")}, "variable 'price': a value of type Decimal"),
        ({"huge": 2**70}, "variable 'huge'"),
        ({"nan": float("nan")}, "variable 'nan'"),
        ({"scan": b"%PDF"}, "binary variable(s) scan"),
        ({"bad": {"type": "", "value": 1}}, "variable 'bad': 'type'"),
    ],
)
def test_unsupported_values_fail_before_any_request(httpserver: HTTPServer, variables, fragment):
    with pytest.raises(BpmValidationError) as caught:
        make_hook(httpserver).start_process("order", variables=variables)
    assert fragment in str(caught.value)
    assert httpserver.log == []


def test_unknown_start_options_are_named(httpserver: HTTPServer):
    with pytest.raises(BpmConfigError, match=r"unknown start option.*flow"):
        make_hook(httpserver).start_process("order", flow=3)
    with pytest.raises(BpmConfigError, match="by must be one of"):
        make_hook(httpserver).start_process("order", by="name")
    assert httpserver.log == []


# ---- reading instances -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "state"),
    [({}, ProcessState.RUNNING), ({"suspended": True}, ProcessState.SUSPENDED)],
)
def test_get_process_reads_the_runtime(httpserver: HTTPServer, fields: dict, state: ProcessState):
    httpserver.expect_oneshot_request(
        "/bpmn/runtime/process-instances/27504", method="GET", headers=AUTH, query_string=""
    ).respond_with_json(runtime_instance(**fields))
    instance = make_hook(httpserver).get_process("27504")
    assert instance.state is state
    assert instance.raw["activityId"] == "waitState"


@pytest.mark.parametrize(
    ("delete_reason", "state", "raw_state"),
    [
        (None, ProcessState.COMPLETED, "ended"),
        ("cancelled by Airflow", ProcessState.CANCELLED, "deleted: cancelled by Airflow"),
        # A reason that sounds like a failure is still a deletion: CANCELLED.
        ("boundary error: payment failed", ProcessState.CANCELLED, "deleted: boundary error: payment failed"),
        # WSO2 EI stores "" when a client deletes without a reason: still a deletion.
        ("", ProcessState.CANCELLED, "deleted"),
        # Activiti 5.21 without a reason stores its default.
        ("ACTIVITI_DELETED", ProcessState.CANCELLED, "deleted: ACTIVITI_DELETED"),
        # A terminate end event ends normally; Activiti 5.21 and Flowable record
        # "terminate end event (<activity id>)" as the reason.
        ("terminate end event (theEnd)", ProcessState.COMPLETED, "ended: terminate end event (theEnd)"),
    ],
)
def test_get_process_falls_back_to_the_history_once_the_runtime_404s(
    httpserver: HTTPServer, delete_reason, state, raw_state
):
    httpserver.expect_ordered_request(
        "/flowable-rest/service/runtime/process-instances/27504", method="GET", headers=AUTH, query_string=""
    ).respond_with_json(
        {"message": "Not found", "exception": "Could not find a process instance"}, status=404
    )
    httpserver.expect_ordered_request(
        "/flowable-rest/service/history/historic-process-instances/27504",
        method="GET",
        headers=AUTH,
        query_string="",
    ).respond_with_json(historic_instance(deleteReason=delete_reason))
    instance = make_hook(httpserver, "/flowable-rest/service").get_process("27504")
    httpserver.check_assertions()
    assert instance.state is state
    assert instance.raw_state == raw_state
    assert instance.definition == "order"
    assert instance.started_at == datetime(2015, 1, 17, 10, 17, 43, 902000, tzinfo=UTC)
    assert instance.ended_at == datetime(2015, 1, 17, 11, 0, tzinfo=UTC)


def test_the_definition_is_read_from_process_definition_url_without_id_or_key(httpserver: HTTPServer):
    # Seed 004 (WSO2 EI BPMN REST API, "Get a Process Instance"), with processDefinitionId left
    # out, as answers of Activiti 5.21 may: the definition is only in processDefinitionUrl.
    documented = runtime_instance()
    del documented["processDefinitionId"]
    httpserver.expect_oneshot_request(
        "/bpmn/runtime/process-instances/27504", method="GET", headers=AUTH, query_string=""
    ).respond_with_json(documented)
    instance = make_hook(httpserver).get_process("27504")
    assert instance.definition == "sampleJavaServiceTask"  # from ...sampleJavaServiceTask%3A1%3A27503
    assert instance.state is ProcessState.RUNNING


def test_a_historic_answer_in_activitis_documented_shape_names_its_definition(httpserver: HTTPServer):
    # Activiti 5.21 user guide, "Get a historic process instance": the id printed percent-encoded,
    # the definition's URL ending in oneTaskProcess%3A1%3A4.
    documented = {
        "id": "5",
        "businessKey": "myKey",
        "processDefinitionId": "oneTaskProcess%3A1%3A4",
        "processDefinitionUrl": "http://localhost:8182/repository/process-definitions/oneTaskProcess%3A1%3A4",
        "startTime": "2013-04-17T10:17:43.902+0000",
        "endTime": "2013-04-18T14:06:32.715+0000",
        "durationInMillis": 86400056,
        "startUserId": "kermit",
        "startActivityId": "startEvent",
        "endActivityId": "endEvent",
        "deleteReason": None,
        "superProcessInstanceId": "3",
        "url": "http://localhost:8182/history/historic-process-instances/5",
        "variables": None,
        "tenantId": None,
    }
    httpserver.expect_ordered_request(
        "/activiti-rest/service/runtime/process-instances/5", method="GET", headers=AUTH, query_string=""
    ).respond_with_json({"errorMessage": "Could not find a process instance", "statusCode": 404}, status=404)
    httpserver.expect_ordered_request(
        "/activiti-rest/service/history/historic-process-instances/5",
        method="GET",
        headers=AUTH,
        query_string="",
    ).respond_with_json(documented)
    instance = make_hook(httpserver, "/activiti-rest/service").get_process("5")
    assert (instance.definition, instance.state) == ("oneTaskProcess", ProcessState.COMPLETED)
    without_id = {key: value for key, value in documented.items() if key != "processDefinitionId"}
    assert process_from_history(without_id).definition == "oneTaskProcess"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Seed 004, "List all Tasks": a task names its definition only by URL.
        (
            {
                "processDefinition": "https://localhost:9445/bpmn/repository/process-definitions/bpmnTaskProcess%3A1%3A4"
            },
            ("bpmnTaskProcess:1:4", "bpmnTaskProcess"),
        ),
        (
            {"processDefinitionUrl": "http://h/repository/process-definitions/a%2Fb%3A2%3A9/"},
            ("a/b:2:9", "a/b"),
        ),
        (
            {"processDefinitionKey": "k", "processDefinitionUrl": "http://h/x/other%3A1%3A1"},
            ("other:1:1", "k"),
        ),
        ({}, (None, None)),
    ],
)
def test_definition_id_and_key_from_the_url(raw: dict, expected: tuple):
    assert (definition_id(raw), definition_key(raw)) == expected


def test_history_without_end_time_is_still_running(httpserver: HTTPServer):
    httpserver.expect_ordered_request(
        "/bpmn/runtime/process-instances/1", method="GET", headers=AUTH, query_string=""
    ).respond_with_json({}, status=404)
    httpserver.expect_ordered_request(
        "/bpmn/history/historic-process-instances/1", method="GET", headers=AUTH, query_string=""
    ).respond_with_json(historic_instance("1", endTime=None))
    assert make_hook(httpserver).get_process("1").state is ProcessState.RUNNING


def test_get_process_of_an_unknown_instance_names_both_places(httpserver: HTTPServer):
    httpserver.expect_ordered_request(
        "/bpmn/runtime/process-instances/404", method="GET", headers=AUTH, query_string=""
    ).respond_with_json({}, status=404)
    httpserver.expect_ordered_request(
        "/bpmn/history/historic-process-instances/404", method="GET", headers=AUTH, query_string=""
    ).respond_with_json(
        {"statusCode": 404, "errorMessage": "Could not find a process instance with id '404'."}, status=404
    )
    with pytest.raises(BpmNotFound, match="neither running nor in the history"):
        make_hook(httpserver).get_process("404")


def test_async_get_process_uses_the_same_fallback(httpserver: HTTPServer):
    httpserver.expect_ordered_request(
        "/bpmn/runtime/process-instances/7", method="GET", headers=AUTH, query_string=""
    ).respond_with_json({}, status=404)
    httpserver.expect_ordered_request(
        "/bpmn/history/historic-process-instances/7", headers=AUTH, method="GET", query_string=""
    ).respond_with_json(historic_instance("7"))
    hook = make_hook(httpserver)

    async def run():
        try:
            return await hook.aget_process("7")
        finally:
            await hook.aclose()

    assert asyncio.run(run()).state is ProcessState.COMPLETED


def test_suspend_and_activate(httpserver: HTTPServer):
    httpserver.expect_ordered_request(
        "/bpmn/runtime/process-instances/27504",
        method="PUT",
        json={"action": "suspend"},
        headers=AUTH,
        query_string="",
    ).respond_with_json(runtime_instance(suspended=True))
    httpserver.expect_ordered_request(
        "/bpmn/runtime/process-instances/27504",
        method="PUT",
        json={"action": "activate"},
        headers=AUTH,
        query_string="",
    ).respond_with_json(runtime_instance())
    hook = make_hook(httpserver)
    assert hook.suspend_process("27504").state is ProcessState.SUSPENDED
    assert hook.activate_process("27504").state is ProcessState.RUNNING
    httpserver.check_assertions()


# ---- paging and searching ----------------------------------------------------------------------


def test_list_tasks_pages_until_total_and_never_asks_for_process_variables(httpserver: HTTPServer):
    rows = [task(str(i), name="Review") for i in range(230)]
    for start in (0, 100, 200):
        httpserver.expect_ordered_request(
            "/bpmn/runtime/tasks",
            method="GET",
            # Exact match: an extra includeProcessVariables would not match.
            query_string={"processInstanceId": "5", "name": "Review", "start": str(start), "size": "1000"},
            headers=AUTH,
        ).respond_with_json(page(rows[start : start + 100], total=230, start=start))
    tasks = list(make_hook(httpserver).list_tasks(process_instance_id="5", name="Review"))
    httpserver.check_assertions()
    assert [t.id for t in tasks] == [str(i) for i in range(230)]
    assert tasks[0].process_instance_id == "5" and tasks[0].state == "OPEN"


def test_a_task_in_wso2s_documented_shape_gets_its_instance_from_the_url(httpserver: HTTPServer):
    documented = {
        "assignee": "kermit",
        "id": "8",
        "name": "My task",
        "execution": "https://localhost:9445/bpmn/runtime/executions/5",
        "processInstance": "https://localhost:9445/bpmn/runtime/process-instances/5",
        "suspended": False,
    }
    httpserver.expect_oneshot_request(
        "/bpmn/runtime/tasks", method="GET", headers=AUTH, query_string={"start": "0", "size": "1000"}
    ).respond_with_json(page([documented], total=1))
    (found,) = make_hook(httpserver).list_tasks()
    assert (found.id, found.process_instance_id, found.assignee, found.state) == (
        "8",
        "5",
        "kermit",
        "CLAIMED",
    )


def test_a_short_page_does_not_end_or_skip_the_listing(httpserver: HTTPServer):
    httpserver.expect_ordered_request(
        "/bpmn/runtime/tasks", query_string={"start": "0", "size": "1000"}, method="GET", headers=AUTH
    ).respond_with_json(page([task("1"), task("2")], total=3))
    httpserver.expect_ordered_request(
        "/bpmn/runtime/tasks", query_string={"start": "2", "size": "1000"}, method="GET", headers=AUTH
    ).respond_with_json(page([task("3")], total=3, start=2))
    assert [t.id for t in make_hook(httpserver).list_tasks()] == ["1", "2", "3"]


def test_find_processes_pages_the_history_and_marks_suspended_ones(httpserver: HTTPServer):
    first = [historic_instance(str(i), endTime=None, deleteReason=None) for i in range(100)]
    second = [
        historic_instance("100", endTime=None),
        historic_instance("101"),
        historic_instance("102", deleteReason="cancelled by Airflow"),
    ]
    criteria = {
        "processDefinitionKey": "order",
        "tenantId": "acme",
        "businessKey": "order-7",
        # RequestUtil.getDate (Activiti 5.21, WSO2): yyyy-MM-dd'T'HH:mm:ssz, no fraction of a second
        "startedAfter": "2015-01-01T00:00:00Z",
    }
    # History does not know suspension: the runtime names the suspended candidates first.
    httpserver.expect_ordered_request(
        "/bpmn/runtime/process-instances",
        method="GET",
        query_string={
            "suspended": "true",
            "processDefinitionKey": "order",
            "tenantId": "acme",
            "businessKey": "order-7",
            "start": "0",
            "size": "1000",
        },
        headers=AUTH,
    ).respond_with_json(page([runtime_instance("100", suspended=True)], total=1))
    for start, rows in ((0, first), (100, second)):
        httpserver.expect_ordered_request(
            "/bpmn/history/historic-process-instances",
            method="GET",
            query_string={**criteria, "start": str(start), "size": "1000"},
            headers=AUTH,
        ).respond_with_json(page(rows, total=103, start=start))

    found = list(
        make_hook(httpserver, tenant_id="acme").find_processes(
            definition="order", business_key="order-7", started_after=datetime(2015, 1, 1, tzinfo=UTC)
        )
    )
    httpserver.check_assertions()
    assert len(found) == 103
    states = {p.id: p.state for p in found}
    assert states["0"] is ProcessState.RUNNING
    assert states["100"] is ProcessState.SUSPENDED
    assert states["101"] is ProcessState.COMPLETED
    assert states["102"] is ProcessState.CANCELLED


def test_find_ended_processes_asks_for_finished_ones_only(httpserver: HTTPServer):
    httpserver.expect_oneshot_request(
        "/bpmn/history/historic-process-instances",
        query_string={
            "finished": "true",
            "startedBefore": "2016-01-01T00:00:00Z",
            "start": "0",
            "size": "1000",
        },
        method="GET",
        headers=AUTH,
    ).respond_with_json(page([historic_instance("1"), historic_instance("2", deleteReason="x")], total=2))
    found = list(
        make_hook(httpserver).find_processes(states=["cancelled"], started_before="2016-01-01T00:00:00Z")
    )
    httpserver.check_assertions()
    assert [p.id for p in found] == ["2"]  # no runtime query: nothing ended can be suspended


def test_find_processes_posts_a_raw_history_query_with_paging_in_the_body(httpserver: HTTPServer):
    user_query = {"variables": [{"name": "region", "value": "EU", "operation": "equals", "type": "string"}]}
    httpserver.expect_oneshot_request(
        "/flowable-rest/service/query/historic-process-instances",
        method="POST",
        json={**user_query, "processDefinitionKey": "order", "finished": False, "start": 0, "size": 1000},
        headers=AUTH,
        query_string="",
    ).respond_with_json(page([historic_instance("3", endTime=None)], total=1))
    httpserver.expect_oneshot_request(
        "/flowable-rest/service/runtime/process-instances",
        query_string={"suspended": "true", "processDefinitionKey": "order", "start": "0", "size": "1000"},
        method="GET",
        headers=AUTH,
    ).respond_with_json(page([], total=0))
    found = list(
        make_hook(httpserver, "/flowable-rest/service").find_processes(
            definition="order", states=["RUNNING", "SUSPENDED"], query=user_query
        )
    )
    httpserver.check_assertions()
    assert [(p.id, p.state) for p in found] == [("3", ProcessState.RUNNING)]


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ({"title": "x"}, "unknown filter(s): title"),
        ({"states": ["DONE"]}, "unknown process state 'DONE'"),
        ({"query": {"includeProcessVariables": True}}, "flowable-engine #1348"),
        ({"query": {"size": 5}}, "query sets size"),
        ({"definition": "order", "query": {"processDefinitionKey": "x"}}, "query sets processDefinitionKey"),
        ({"started_after": "yesterday"}, "started_after must be a datetime"),
    ],
)
def test_find_processes_rejects_bad_filters_before_any_request(httpserver: HTTPServer, filters, fragment):
    with pytest.raises(BpmConfigError) as caught:
        list(make_hook(httpserver).find_processes(**filters))
    assert fragment in str(caught.value)
    assert (caught.value.system, caught.value.conn_id) == ("Activiti", "activiti_test")
    assert "[Activiti, connection 'activiti_test']" in str(caught.value)
    assert httpserver.log == []


def test_query_dates_are_sent_in_whole_seconds_utc(httpserver: HTTPServer):
    # Activiti 5.21 / WSO2 RequestUtil.getDate parses "yyyy-MM-dd'T'HH:mm:ssz" (after turning a
    # trailing Z into a GMT zone): a fraction of a second answers 400.
    httpserver.expect_oneshot_request(
        "/activiti-rest/service/history/historic-process-instances",
        method="GET",
        headers=AUTH,
        query_string={
            "startedAfter": "2015-01-17T11:06:02Z",
            "startedBefore": "2016-01-01T00:00:00Z",
            "finished": "true",
            "start": "0",
            "size": "1000",
        },
    ).respond_with_json(page([], total=0))
    found = make_hook(httpserver, "/activiti-rest/service").find_processes(
        states=["COMPLETED"],
        started_after=datetime(2015, 1, 17, 13, 6, 2, 438000, tzinfo=timezone(timedelta(hours=2))),
        started_before="2016-01-01T02:00:00.250+02:00",
    )
    assert list(found) == []
    httpserver.check_assertions()


def test_find_by_business_key_prefers_the_newest_running_instance(httpserver: HTTPServer):
    httpserver.expect_oneshot_request(
        "/bpmn/runtime/process-instances",
        method="GET",
        query_string={
            "processDefinitionKey": "order",
            "tenantId": "-1234",
            "businessKey": "bk-1",
            "start": "0",
            "size": "1000",
        },
        headers=AUTH,
    ).respond_with_json(page([runtime_instance("9", businessKey="bk-1"), runtime_instance("10")], total=2))
    found = make_hook(httpserver, tenant_id="-1234").find_process_by_business_key("order", "bk-1")
    httpserver.check_assertions()
    assert found is not None and found.id == "10"  # numeric ids: 10 is newer than 9


def test_find_by_business_key_falls_back_to_the_newest_finished_one(httpserver: HTTPServer):
    httpserver.expect_ordered_request(
        "/bpmn/runtime/process-instances",
        method="GET",
        query_string={
            "processDefinitionId": "order:2:55",
            "businessKey": "bk-1",
            "start": "0",
            "size": "1000",
        },
        headers=AUTH,
    ).respond_with_json(page([], total=0))
    httpserver.expect_ordered_request(
        "/bpmn/history/historic-process-instances",
        method="GET",
        headers=AUTH,
        query_string={
            "processDefinitionId": "order:2:55",
            "businessKey": "bk-1",
            "finished": "true",
            "sort": "startTime",
            "order": "desc",
            "start": "0",
            "size": "1",
        },
    ).respond_with_json(page([historic_instance("8")], total=4))
    found = make_hook(httpserver).find_process_by_business_key("id:order:2:55", "bk-1")
    httpserver.check_assertions()
    assert found is not None and (found.id, found.state) == ("8", ProcessState.COMPLETED)


def test_query_process_instances_posts_the_body_with_paging(httpserver: HTTPServer):
    httpserver.expect_oneshot_request(
        "/bpmn/query/process-instances",
        method="POST",
        query_string="",
        json={"processDefinitionKey": "sampleJavaServiceTask", "tenantId": "t", "start": 0, "size": 1000},
        headers=AUTH,
    ).respond_with_json(page([runtime_instance()], total=1))
    found = list(
        make_hook(httpserver).query_process_instances(
            {"processDefinitionKey": "sampleJavaServiceTask", "tenantId": "t"}
        )
    )
    httpserver.check_assertions()
    assert [p.id for p in found] == ["27504"]
    with pytest.raises(BpmConfigError, match="#1348"):
        list(make_hook(httpserver).query_process_instances({"includeProcessVariables": True}))


def test_query_by_key_gets_the_connections_tenant(httpserver: HTTPServer):
    # Seed 004, "Query a Process Instance": with the processDefinitionKey, tenantId is mandatory.
    for body in (
        {"processDefinitionKey": "order", "tenantId": "-1234", "start": 0, "size": 1000},
        {"processDefinitionKey": "order", "tenantId": "other", "start": 0, "size": 1000},
        {"processDefinitionId": "order:1:5", "start": 0, "size": 1000},
    ):
        httpserver.expect_ordered_request(
            "/bpmn/query/process-instances", method="POST", query_string="", json=body, headers=AUTH
        ).respond_with_json(page([], total=0))
    hook = make_hook(httpserver, tenant_id="-1234")
    assert list(hook.query_process_instances({"processDefinitionKey": "order"})) == []
    assert list(hook.query_process_instances({"processDefinitionKey": "order", "tenantId": "other"})) == []
    assert list(hook.query_process_instances({"processDefinitionId": "order:1:5"})) == []
    httpserver.check_assertions()


# ---- cancelling --------------------------------------------------------------------------------


def test_cancel_deletes_with_a_reason(httpserver: HTTPServer):
    httpserver.expect_ordered_request(
        "/bpmn/runtime/process-instances/27504",
        method="DELETE",
        query_string={"deleteReason": "cancelled by Airflow"},
        headers=AUTH,
    ).respond_with_data("", status=204)
    httpserver.expect_ordered_request(
        "/bpmn/runtime/process-instances/27505",
        method="DELETE",
        query_string={"deleteReason": "duplicate order"},
        headers=AUTH,
    ).respond_with_data("", status=204)
    hook = make_hook(httpserver)
    hook.cancel_process("27504")
    hook.cancel_process("27505", reason="duplicate order")
    httpserver.check_assertions()


def test_cancel_of_an_ended_instance(httpserver: HTTPServer):
    for instance_id, reason in (("1", None), ("2", "cancelled by Airflow")):
        httpserver.expect_ordered_request(
            f"/bpmn/runtime/process-instances/{instance_id}",
            method="DELETE",
            query_string={"deleteReason": "cancelled by Airflow"},
            headers=AUTH,
        ).respond_with_json({"statusCode": 404, "errorMessage": "not found"}, status=404)
        httpserver.expect_ordered_request(
            f"/bpmn/history/historic-process-instances/{instance_id}",
            method="GET",
            query_string="",
            headers=AUTH,
        ).respond_with_json(historic_instance(instance_id, deleteReason=reason))
    hook = make_hook(httpserver)
    with pytest.raises(BpmConflict, match="already ended"):
        hook.cancel_process("1")
    hook.cancel_process("2")  # already deleted: nothing left to do
    httpserver.check_assertions()


@pytest.mark.parametrize(("reason", "already_deleted"), [("", True), ("terminate end event (theEnd)", False)])
def test_cancel_after_a_wso2_reasonless_delete_or_a_terminate_end(
    httpserver: HTTPServer, reason, already_deleted
):
    httpserver.expect_ordered_request(
        "/bpmn/runtime/process-instances/3",
        method="DELETE",
        query_string={"deleteReason": "cancelled by Airflow"},
        headers=AUTH,
    ).respond_with_json({"statusCode": 404, "errorMessage": "not found"}, status=404)
    httpserver.expect_ordered_request(
        "/bpmn/history/historic-process-instances/3", method="GET", query_string="", headers=AUTH
    ).respond_with_json(historic_instance("3", deleteReason=reason))
    hook = make_hook(httpserver)
    if already_deleted:
        hook.cancel_process("3")
    else:
        with pytest.raises(BpmConflict, match=r"already ended \(COMPLETED\)"):
            hook.cancel_process("3")
    httpserver.check_assertions()


# ---- tasks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", BASES)
def test_claim_defaults_to_the_connection_login(httpserver: HTTPServer, base: str):
    httpserver.expect_oneshot_request(
        f"{base}/runtime/tasks/8",
        method="POST",
        json={"action": "claim", "assignee": LOGIN},
        headers=AUTH,
        query_string="",
    ).respond_with_data("", status=200)
    make_hook(httpserver, base).claim_task("8")
    httpserver.check_assertions()


@pytest.mark.parametrize("base", BASES)
def test_unassign_updates_the_assignee_to_null(httpserver: HTTPServer, base: str):
    # Seed 004, "Update a task" (PUT runtime/tasks/{taskId}): "When an attribute is explicitly
    # included and is set to null, the task-value will be updated to null"; other fields unaffected.
    httpserver.expect_oneshot_request(
        f"{base}/runtime/tasks/8",
        method="PUT",
        json={"assignee": None},
        headers=AUTH,
        query_string="",
    ).respond_with_data("", status=200)
    make_hook(httpserver, base).unassign_task("8")
    httpserver.check_assertions()


def test_unassign_of_an_ended_task_is_not_found(httpserver: HTTPServer):
    httpserver.expect_oneshot_request("/bpmn/runtime/tasks/8", method="PUT").respond_with_json(
        {"statusCode": 404, "errorMessage": "Could not find a task with id '8'."}, status=404
    )
    with pytest.raises(BpmNotFound, match="Could not find a task with id '8'") as info:
        make_hook(httpserver).unassign_task("8")
    assert (info.value.conn_id, info.value.method, info.value.path) == (
        "activiti_test",
        "PUT",
        "/runtime/tasks/8",  # relative to the connection's base URL
    )


def test_claim_conflict_is_a_bpm_conflict_with_the_servers_message(httpserver: HTTPServer):
    httpserver.expect_oneshot_request(
        "/activiti-rest/service/runtime/tasks/8",
        method="POST",
        json={"action": "claim", "assignee": "gonzo"},
        headers=AUTH,
        query_string="",
    ).respond_with_json(
        {"message": "Task was already claimed", "exception": "Task '8' is already claimed by someone else."},
        status=409,
    )
    with pytest.raises(BpmConflict, match="Task '8' is already claimed by someone else"):
        make_hook(httpserver, "/activiti-rest/service").claim_task("8", "gonzo")


def test_complete_with_variables(httpserver: HTTPServer):
    httpserver.expect_oneshot_request(
        "/bpmn/runtime/tasks/8",
        method="POST",
        json={
            "action": "complete",
            "variables": [
                {"name": "approved", "type": "boolean", "value": True},
                {"name": "amount", "type": "double", "value": 12.5},
            ],
        },
        headers=AUTH,
        query_string="",
    ).respond_with_data("", status=200)
    make_hook(httpserver).complete_task("8", {"approved": True, "amount": 12.5})
    httpserver.check_assertions()


def test_complete_with_a_flowable_outcome_and_option_checks(httpserver: HTTPServer):
    httpserver.expect_oneshot_request(
        "/flowable-rest/service/runtime/tasks/8",
        method="POST",
        json={"action": "complete", "outcome": "reject"},
        headers=AUTH,
        query_string="",
    ).respond_with_data("", status=200)
    hook = make_hook(httpserver, "/flowable-rest/service")
    hook.complete_task("8", outcome="reject")
    with pytest.raises(BpmConfigError, match=r"unknown complete option.*flow"):
        hook.complete_task("8", flow=1)
    with pytest.raises(BpmValidationError, match="binary variable"):
        hook.complete_task("8", {"scan": b"x"})
    httpserver.check_assertions()


def test_task_get_query_update_delegate_resolve_delete(httpserver: HTTPServer):
    base = "/bpmn/runtime/tasks/8"
    httpserver.expect_ordered_request(base, method="GET", headers=AUTH, query_string="").respond_with_json(
        task("8")
    )
    httpserver.expect_ordered_request(
        "/bpmn/query/tasks",
        method="POST",
        json={"name": "My task", "assignee": "kermit", "priority": 50, "start": 0, "size": 1000},
        headers=AUTH,
        query_string="",
    ).respond_with_json(page([task("8", assignee="kermit")], total=1))
    httpserver.expect_ordered_request(
        base,
        method="PUT",
        json={"assignee": "assignee", "dueDate": "2015-01-17T11:06:02.438Z", "priority": 20, "owner": None},
        headers=AUTH,
        query_string="",
    ).respond_with_json(task("8", assignee="assignee", priority=20))
    httpserver.expect_ordered_request(
        base,
        method="POST",
        json={"action": "delegate", "assignee": "userToDelegateTo"},
        headers=AUTH,
        query_string="",
    ).respond_with_data("")
    httpserver.expect_ordered_request(
        base, method="POST", json={"action": "resolve"}, headers=AUTH, query_string=""
    ).respond_with_data("")
    # Seed 004: DELETE runtime/tasks/{id}?cascadeHistory=..&deleteReason=..; the server keeps the
    # reason only when cascadeHistory is absent, so a reason travels alone.
    httpserver.expect_ordered_request(
        base, method="DELETE", query_string={"deleteReason": "obsolete"}, headers=AUTH
    ).respond_with_data("", status=204)
    httpserver.expect_ordered_request(
        base, method="DELETE", query_string={"cascadeHistory": "true"}, headers=AUTH
    ).respond_with_data("", status=204)
    httpserver.expect_ordered_request(base, method="DELETE", query_string="", headers=AUTH).respond_with_data(
        "", status=204
    )

    hook = make_hook(httpserver)
    assert hook.get_task("8").name == "My task"
    assert [
        t.assignee for t in hook.query_tasks({"name": "My task", "assignee": "kermit", "priority": 50})
    ] == ["kermit"]
    updated = hook.update_task(
        "8",
        assignee="assignee",
        dueDate=datetime(2015, 1, 17, 13, 6, 2, 438000, tzinfo=timezone(timedelta(hours=2))),
        priority=20,
        owner=None,
    )
    assert updated.assignee == "assignee"
    hook.delegate_task("8", "userToDelegateTo")
    hook.resolve_task("8")
    hook.delete_task("8", delete_reason="obsolete")
    hook.delete_task("8", cascade_history=True)
    hook.delete_task("8")
    httpserver.check_assertions()
    sent = len(httpserver.log)
    with pytest.raises(BpmConfigError, match="delete_reason is lost with cascade_history=True") as caught:
        hook.delete_task("8", cascade_history=True, delete_reason="obsolete")
    assert caught.value.conn_id == "activiti_test" and caught.value.system == "Activiti"
    with pytest.raises(BpmConfigError, match="unknown task field"):
        hook.update_task("8", colour="red")
    assert len(httpserver.log) == sent


def test_comments_add_list_get_delete(httpserver: HTTPServer):
    comment = {
        "id": "123",
        "message": "This is a comment on the task.",
        "author": "kermit",
        "time": "2015-01-13T13:13:52.232+08:00",
        "taskId": "101",
        "processInstanceId": "100",
    }
    root = "/bpmn/runtime/tasks/101/comments"
    httpserver.expect_ordered_request(
        root,
        method="POST",
        json={"message": "This is a comment on the task.", "saveProcessInstanceId": True},
        headers=AUTH,
        query_string="",
    ).respond_with_json(comment, status=201)
    httpserver.expect_ordered_request(root, method="GET", headers=AUTH, query_string="").respond_with_json(
        [comment]
    )
    httpserver.expect_ordered_request(
        f"{root}/123", method="GET", headers=AUTH, query_string=""
    ).respond_with_json(comment)
    httpserver.expect_ordered_request(
        f"{root}/123", method="DELETE", headers=AUTH, query_string=""
    ).respond_with_data("", status=204)
    hook = make_hook(httpserver)
    assert (
        hook.add_comment("101", "This is a comment on the task.", save_process_instance_id=True)["id"]
        == "123"
    )
    assert [c["id"] for c in hook.list_comments("101")] == ["123"]
    assert hook.get_comment("101", "123")["author"] == "kermit"
    hook.delete_comment("101", "123")
    httpserver.check_assertions()


def test_attachments_upload_as_multipart_or_link_as_json(httpserver: HTTPServer):
    root = "/flowable-rest/service/runtime/tasks/8/attachments"

    def upload(request: WerkzeugRequest) -> Response:
        assert request.form.to_dict() == {"name": "note.txt", "type": "text/plain"}
        assert request.files["file"].read() == b"3 pallets"
        assert request.headers["Authorization"] == basic()
        return Response(json.dumps({"id": "21", "name": "note.txt"}), status=201, headers=JSON_HEADERS)

    httpserver.expect_ordered_request(
        root, method="POST", headers=AUTH, query_string=""
    ).respond_with_handler(upload)
    httpserver.expect_ordered_request(
        root,
        method="POST",
        json={"name": "Wiki", "description": "order page", "externalUrl": "https://wiki.example/o"},
        headers=AUTH,
        query_string="",
    ).respond_with_json({"id": "22", "name": "Wiki"}, status=201)
    httpserver.expect_ordered_request(root, method="GET", headers=AUTH, query_string="").respond_with_json(
        [{"id": "21"}, {"id": "22"}]
    )
    hook = make_hook(httpserver, "/flowable-rest/service")
    assert hook.add_attachment("8", "note.txt", b"3 pallets", content_type="text/plain")["id"] == "21"
    link = hook.add_attachment("8", "Wiki", external_url="https://wiki.example/o", description="order page")
    assert link["id"] == "22"
    assert [a["id"] for a in hook.list_attachments("8")] == ["21", "22"]
    with pytest.raises(BpmConfigError, match="either content or external_url"):
        hook.add_attachment("8", "both", b"x", external_url="https://x")
    httpserver.check_assertions()


# ---- variables ---------------------------------------------------------------------------------


def test_variables_list_get_and_set(httpserver: HTTPServer):
    documented = [
        {"name": "intProcVar", "type": "integer", "value": 123, "scope": "local"},
        {"name": "when", "type": "date", "value": "2015-01-17T10:17:43.902+0000", "scope": "local"},
        {
            "name": "byteArrayProcVar",
            "type": "binary",
            "value": None,
            "valueUrl": "https://localhost:9445/bpmn/runtime/process-instances/5/variables/byteArrayProcVar/data",
            "scope": "local",
        },
    ]
    root = "/bpmn/runtime/process-instances/5/variables"
    httpserver.expect_ordered_request(root, method="GET", headers=AUTH, query_string="").respond_with_json(
        documented
    )
    httpserver.expect_ordered_request(
        f"{root}/intProcVar", method="GET", headers=AUTH, query_string=""
    ).respond_with_json(documented[0])
    httpserver.expect_ordered_request(
        root,
        method="PUT",
        json=[
            {"name": "note", "type": "string", "value": "hi"},
            {"name": "n", "type": "long", "value": 2**33},
        ],
        headers=AUTH,
        query_string="",
    ).respond_with_json([], status=201)

    def binary_upload(request: WerkzeugRequest) -> Response:
        assert request.form.to_dict() == {"name": "scan", "type": "binary"}
        upload = request.files["file"]
        assert upload.read() == b"%PDF-1.4 bytes"
        assert request.headers["Authorization"] == basic()
        return Response(json.dumps({"name": "scan", "type": "binary"}), status=201, headers=JSON_HEADERS)

    httpserver.expect_ordered_request(root, method="PUT", headers=AUTH, query_string="").respond_with_handler(
        binary_upload
    )

    hook = make_hook(httpserver)
    assert hook.get_variables("5") == {
        "intProcVar": 123,
        "when": datetime(2015, 1, 17, 10, 17, 43, 902000, tzinfo=UTC),
        "byteArrayProcVar": None,
    }
    assert hook.get_variable("5", "intProcVar") == 123
    hook.set_variables("5", {"note": "hi", "n": 2**33, "scan": b"%PDF-1.4 bytes"})
    httpserver.check_assertions()


def test_binary_variable_data_is_streamed(httpserver: HTTPServer):
    content = bytes(range(256)) * 1024
    httpserver.expect_oneshot_request(
        "/bpmn/runtime/process-instances/5/variables/byteArrayProcVar/data",
        headers=AUTH,
        method="GET",
        query_string="",
    ).respond_with_data(content, content_type="application/octet-stream")
    with make_hook(httpserver).open_variable_data("5", "byteArrayProcVar") as reply:
        assert reply.stream is not None  # streamed, not read into the reply body
        assert reply.body == b""
        chunks = list(reply.iter_bytes(10_000))
    assert len(chunks) > 1
    assert b"".join(chunks) == content


# ---- files -------------------------------------------------------------------------------------


def test_files_are_binary_variables_plus_task_attachments_and_stream(httpserver: HTTPServer):
    httpserver.expect_request(
        "/bpmn/runtime/process-instances/5/variables", method="GET", headers=AUTH, query_string=""
    ).respond_with_json(
        [
            {"name": "intProcVar", "type": "integer", "value": 123, "scope": "local"},
            {"name": "contract", "type": "binary", "value": None, "scope": "local"},
            {"name": "legacy", "type": "serializable", "value": None, "scope": "local"},
        ]
    )
    httpserver.expect_request(
        "/bpmn/history/historic-task-instances",
        query_string={"processInstanceId": "5", "start": "0", "size": "1000"},
        method="GET",
        headers=AUTH,
    ).respond_with_json(page([{"id": "8", "name": "Review"}, {"id": "9", "name": "Approve"}], total=2))
    httpserver.expect_request(
        "/bpmn/runtime/tasks/8/attachments", method="GET", headers=AUTH, query_string=""
    ).respond_with_json(
        [
            {"id": "11", "name": "invoice.pdf", "type": "application/pdf", "externalUrl": None},
            {"id": "12", "name": "wiki", "type": "simpleType", "externalUrl": "https://wiki.example/x"},
        ]
    )
    httpserver.expect_request(
        "/bpmn/runtime/tasks/9/attachments", method="GET", headers=AUTH, query_string=""
    ).respond_with_json([])
    httpserver.expect_request(
        "/bpmn/runtime/process-instances/5/variables/contract/data",
        method="GET",
        headers=AUTH,
        query_string="",
    ).respond_with_data(b"contract-bytes")
    httpserver.expect_request(
        "/bpmn/runtime/tasks/8/attachments/11/content", headers=AUTH, method="GET", query_string=""
    ).respond_with_data(b"%PDF invoice", content_type="application/pdf")

    hook = make_hook(httpserver)
    files = list(hook.list_files("5"))
    assert [(f.name, f.group, f.content_type, f.external_url) for f in files] == [
        ("contract", "variables", None, None),
        ("legacy", "variables", None, None),
        ("invoice.pdf", "Review", "application/pdf", None),
        ("wiki", "Review", None, "https://wiki.example/x"),
    ]
    assert all(f.size is None and f.process_instance_id == "5" for f in files)
    with hook.open_file(files[0]) as reply:
        assert b"".join(reply.iter_bytes(4)) == b"contract-bytes"
    with hook.open_file(files[2]) as reply:
        assert b"".join(reply.iter_bytes(4)) == b"%PDF invoice"
    with pytest.raises(BpmValidationError, match=r"is a link to https://wiki\.example/x"):
        hook.open_file(files[3]).__enter__()


def test_open_file_from_an_offset_sends_a_range(httpserver: HTTPServer):
    # RFC 9110 Range on the documented content endpoints, to resume a broken download.
    for path, ref in (
        (
            "/bpmn/runtime/tasks/8/attachments/11/content",
            {"kind": "attachment", "task_id": "8", "attachment_id": "11"},
        ),
        (
            "/bpmn/runtime/process-instances/5/variables/contract/data",
            {"kind": "variable", "instance_id": "5", "name": "contract", "ended": False},
        ),
    ):
        httpserver.expect_request(
            path, method="GET", headers={**AUTH, "Range": "bytes=3-"}, query_string=""
        ).respond_with_data(b"rest", status=206, headers={"Content-Range": "bytes 3-6/7"})
        file = ProcessFile(name="f", size=7, content_type=None, process_instance_id="5", ref=ref)
        with make_hook(httpserver).open_file(file, offset=3) as reply:
            assert reply.status == 206 and b"".join(reply.iter_bytes(64)) == b"rest"
    httpserver.check_assertions()


def test_files_of_an_ended_instance_come_from_the_history(httpserver: HTTPServer):
    httpserver.expect_request(
        "/bpmn/runtime/process-instances/5/variables", method="GET", headers=AUTH, query_string=""
    ).respond_with_json({}, status=404)
    httpserver.expect_request(
        "/bpmn/history/historic-process-instances/5", method="GET", headers=AUTH, query_string=""
    ).respond_with_json(historic_instance("5"))
    httpserver.expect_request(
        "/bpmn/history/historic-variable-instances",
        method="GET",
        headers=AUTH,
        query_string={"processInstanceId": "5", "start": "0", "size": "1000"},
    ).respond_with_json(
        page(
            [
                {"id": "1", "processInstanceId": "5", "taskId": None,
                 "variable": {"name": "contract", "type": "binary", "value": None}},
                {"id": "2", "processInstanceId": "5", "taskId": "8",
                 "variable": {"name": "draft", "type": "binary", "value": None}},
            ],
            total=2,
        )
    )  # fmt: skip
    httpserver.expect_request(
        "/bpmn/history/historic-task-instances",
        method="GET",
        headers=AUTH,
        query_string={"processInstanceId": "5", "start": "0", "size": "1000"},
    ).respond_with_json(page([], total=0))
    httpserver.expect_request(
        "/bpmn/history/historic-process-instances/5/variables/contract/data",
        method="GET",
        headers=AUTH,
        query_string="",
    ).respond_with_data(b"kept in history")

    hook = make_hook(httpserver)
    files = list(hook.list_files("5"))
    assert [(f.name, f.ref["ended"]) for f in files] == [("contract", True)]  # task-local "draft" left out
    with hook.open_file(files[0]) as reply:
        assert b"".join(reply.iter_bytes(1024)) == b"kept in history"


def test_a_file_of_an_instance_that_ended_after_listing_is_read_from_the_history(httpserver: HTTPServer):
    httpserver.expect_ordered_request(
        "/bpmn/runtime/process-instances/5/variables/doc/data", method="GET", headers=AUTH, query_string=""
    ).respond_with_json({}, status=404)
    httpserver.expect_ordered_request(
        "/bpmn/history/historic-process-instances/5/variables/doc/data",
        method="GET",
        headers=AUTH,
        query_string="",
    ).respond_with_data(b"late")
    listed = ProcessFile(
        name="doc",
        size=None,
        content_type=None,
        process_instance_id="5",
        ref={"kind": "variable", "instance_id": "5", "name": "doc", "ended": False},
    )
    with make_hook(httpserver).open_file(listed) as reply:
        assert b"".join(reply.iter_bytes(10)) == b"late"


def test_files_of_an_unknown_instance(httpserver: HTTPServer):
    httpserver.expect_request(
        "/bpmn/runtime/process-instances/404/variables", method="GET", headers=AUTH, query_string=""
    ).respond_with_json({}, status=404)
    httpserver.expect_request(
        "/bpmn/history/historic-process-instances/404", method="GET", headers=AUTH, query_string=""
    ).respond_with_json({}, status=404)
    with pytest.raises(BpmNotFound, match="process instance 404 not found"):
        list(make_hook(httpserver).list_files("404"))


# ---- deployments and definitions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "query"),
    [
        (None, {"tenantId": "acme"}),
        # Flowable spec: POST repository/deployments?deploymentName=..&tenantId=..
        ("Orders", {"tenantId": "acme", "deploymentName": "Orders"}),
    ],
)
def test_deploy_uploads_the_model_as_multipart(httpserver: HTTPServer, tmp_path, name, query):
    model = tmp_path / "order.bpmn20.xml"
    model.write_bytes(b"<definitions/>")

    def handler(request: WerkzeugRequest) -> Response:
        assert request.form.to_dict() == {}
        upload = request.files["file"]
        assert upload.filename == "order.bpmn20.xml"
        assert upload.content_type == "text/xml"
        assert upload.read() == b"<definitions/>"
        body = {"id": "27501", "name": "order.bpmn20.xml", "tenantId": "acme"}
        return Response(json.dumps(body), status=201, headers=JSON_HEADERS)

    httpserver.expect_oneshot_request(
        "/flowable-rest/service/repository/deployments", method="POST", headers=AUTH, query_string=query
    ).respond_with_handler(handler)
    deployment = make_hook(httpserver, "/flowable-rest/service", tenant_id="acme").deploy(model, name=name)
    httpserver.check_assertions()
    assert deployment["id"] == "27501"


def test_deploy_on_wso2_explains_that_its_rest_api_cannot(httpserver: HTTPServer, tmp_path):
    # WSO2's REST layer has GET repository/deployments and GET .../{id} only (seed 004).
    model = tmp_path / "order.bar"
    model.write_bytes(b"PK")
    httpserver.expect_oneshot_request(
        "/bpmn/repository/deployments", method="POST", headers=AUTH, query_string=""
    ).respond_with_data("", status=405, headers={"Allow": "GET"})
    with pytest.raises(BpmConfigError, match="cannot deploy through its REST API") as caught:
        make_hook(httpserver).deploy(model)
    assert "Carbon application" in str(caught.value) and caught.value.status == 405
    assert len(httpserver.log) == 1


def test_deploy_of_a_missing_file_is_a_config_error(httpserver: HTTPServer, tmp_path):
    with pytest.raises(BpmConfigError, match="cannot read the model"):
        make_hook(httpserver).deploy(tmp_path / "missing.bar")
    assert httpserver.log == []


def test_deployments_and_definitions(httpserver: HTTPServer):
    deployment = {"id": "27501", "name": "sampleJavaServiceTask.bpmn20.xml", "tenantId": ""}
    definition = {"id": "sampleJavaServiceTask:1:27503", "key": "sampleJavaServiceTask", "version": 1}
    httpserver.expect_ordered_request(
        "/bpmn/repository/deployments",
        query_string={"name": "sampleJavaServiceTask.bpmn20.xml", "start": "0", "size": "1000"},
        method="GET",
        headers=AUTH,
    ).respond_with_json(page([deployment], total=1))
    httpserver.expect_ordered_request(
        "/bpmn/repository/deployments/27501", method="GET", headers=AUTH, query_string=""
    ).respond_with_json(deployment)
    httpserver.expect_ordered_request(
        "/bpmn/repository/process-definitions",
        query_string={"key": "sampleJavaServiceTask", "latest": "true", "start": "0", "size": "1000"},
        method="GET",
        headers=AUTH,
    ).respond_with_json(page([definition], total=1))
    httpserver.expect_ordered_request(
        "/bpmn/repository/process-definitions/sampleJavaServiceTask:1:27503",
        method="GET",
        headers=AUTH,
        query_string="",
    ).respond_with_json(definition)
    hook = make_hook(httpserver)
    assert [d["id"] for d in hook.list_deployments(name="sampleJavaServiceTask.bpmn20.xml")] == ["27501"]
    assert hook.get_deployment("27501")["name"] == "sampleJavaServiceTask.bpmn20.xml"
    assert [d["id"] for d in hook.list_process_definitions(key="sampleJavaServiceTask", latest=True)] == [
        "sampleJavaServiceTask:1:27503"
    ]
    assert hook.get_process_definition("sampleJavaServiceTask:1:27503")["version"] == 1
    httpserver.check_assertions()
    # The definition id travels percent-encoded, as in the documentation's URLs.
    assert httpserver.log[-1][0].environ["RAW_URI"] == (
        "/bpmn/repository/process-definitions/sampleJavaServiceTask%3A1%3A27503"
    )


# ---- the contract check itself -----------------------------------------------------------------


def test_the_contract_check_rejects_what_the_spec_does_not_declare():
    from werkzeug.test import EnvironBuilder

    def request(method: str, path: str, **kwargs) -> WerkzeugRequest:
        return WerkzeugRequest(EnvironBuilder(method=method, path=path, **kwargs).get_environ())

    check_request(request("POST", "/bpmn/runtime/tasks/8", json={"action": "claim", "assignee": "a"}))
    with pytest.raises(AssertionError, match="body field 'who'"):
        check_request(request("POST", "/bpmn/runtime/tasks/8", json={"action": "claim", "who": "a"}))
    with pytest.raises(AssertionError, match="required body field 'action'"):
        check_request(request("POST", "/bpmn/runtime/tasks/8", json={"assignee": "a"}))
    with pytest.raises(AssertionError, match="query parameter 'colour'"):
        check_request(request("GET", "/bpmn/runtime/tasks", query_string={"colour": "red"}))
    with pytest.raises(AssertionError, match="no PATCH"):
        check_request(request("PATCH", "/bpmn/runtime/tasks/8"))
    with pytest.raises(AssertionError, match=r"variables\[\]\.colour"):
        check_request(
            request(
                "POST", "/bpmn/runtime/process-instances", json={"variables": [{"name": "a", "colour": 1}]}
            )
        )


def test_auth_failure_is_an_auth_error(httpserver: HTTPServer):
    httpserver.expect_oneshot_request(
        "/bpmn/runtime/tasks/1", method="GET", headers=AUTH, query_string=""
    ).respond_with_json({"statusCode": 401, "errorMessage": "Unauthorized"}, status=401)
    with pytest.raises(BpmAuthError, match="authentication failed"):
        make_hook(httpserver).get_task("1")


# ---- a start whose answer was lost (the start operator's journal) --------------------------------


def test_find_unclaimed_starts_asks_for_this_login_s_starts_since_then_and_drops_keyed_ones(
    httpserver: HTTPServer,
):
    # HistoricProcessInstanceQueryRequest (Flowable Swagger): startedBy, startedAfter; the date in
    # the one form every engine parses (yyyy-MM-dd'T'HH:mm:ssz).
    httpserver.expect_oneshot_request(
        "/bpmn/query/historic-process-instances",
        method="POST",
        json={
            "startedBy": LOGIN,
            "processDefinitionKey": "order",
            "startedAfter": "2024-05-01T09:30:00Z",
            "start": 0,
            "size": 1000,
        },
        headers=AUTH,
        query_string="",
    ).respond_with_json(
        page(
            [
                historic_instance("31", businessKey=None, endTime=None, startUserId=LOGIN),
                historic_instance("32", businessKey="order-8", endTime=None, startUserId=LOGIN),
            ],
            total=2,
        )
    )
    httpserver.expect_oneshot_request(
        "/bpmn/runtime/process-instances",
        method="GET",
        query_string={"suspended": "true", "processDefinitionKey": "order", "start": "0", "size": "1000"},
        headers=AUTH,
    ).respond_with_json(page([], total=0))

    found = make_hook(httpserver).find_unclaimed_starts("order", datetime(2024, 5, 1, 9, 30, tzinfo=UTC))

    assert [p.id for p in found] == ["31"]
    httpserver.check_assertions()


def test_page_size_extra_asks_for_smaller_pages(httpserver: HTTPServer):
    httpserver.expect_request(
        "/bpmn/runtime/tasks", method="GET", query_string={"start": "0", "size": "25"}, headers=AUTH
    ).respond_with_json(page([task("1")], total=1))
    assert [t.id for t in make_hook(httpserver, page_size="25").list_tasks()] == ["1"]
    with pytest.raises(BpmConfigError, match="extra field 'page_size' must be a positive integer"):
        _ = make_hook(httpserver, page_size="0").page_size


# ---- batched reads for triggers ---------------------------------------------------------------


def test_batched_read_queries_runtime_then_history_by_ids(httpserver: HTTPServer):
    # Flowable swagger: ProcessInstanceQueryRequest and HistoricProcessInstanceQueryRequest take
    # processInstanceIds (array of strings); both answer the usual {data, total, ...} page.
    base = "/flowable-rest/service"
    httpserver.expect_ordered_request(
        f"{base}/query/process-instances",
        method="POST",
        headers=AUTH,
        json={"processInstanceIds": ["1", "2", "3"], "start": 0, "size": 3},
    ).respond_with_json(page([runtime_instance("1")], total=1))
    httpserver.expect_ordered_request(
        f"{base}/query/historic-process-instances",
        method="POST",
        headers=AUTH,
        json={"processInstanceIds": ["2", "3"], "start": 0, "size": 2},
    ).respond_with_json(page([historic_instance("2")], total=1))
    hook = make_hook(httpserver, base)
    found = hook._run(hook._poll_processes_flow(["1", "2", "3"]))
    httpserver.check_assertions()
    assert found["1"].state is ProcessState.RUNNING
    assert found["2"].state is ProcessState.COMPLETED
    assert "3" not in found  # unknown to both: left for a single read, which reports it


def test_batched_read_refuses_a_server_that_ignores_the_ids(httpserver: HTTPServer):
    httpserver.expect_request("/bpmn/query/process-instances", method="POST").respond_with_json(
        page([runtime_instance("1"), runtime_instance("99")], total=2)
    )
    hook = make_hook(httpserver)
    with pytest.raises(BpmValidationError, match="ignores 'processInstanceIds'"):
        hook._run(hook._poll_processes_flow(["1"]))


def test_batched_task_read_lists_each_definitions_open_tasks(httpserver: HTTPServer):
    # Flowable swagger: GET runtime/tasks takes one processInstanceId, and processDefinitionKey,
    # name, start, size; the answer is the usual page.
    httpserver.expect_request(
        "/bpmn/runtime/tasks",
        method="GET",
        headers=AUTH,
        query_string="processDefinitionKey=order&name=Approve&start=0&size=1000",
    ).respond_with_json(page([task("t1", "5", "Approve"), task("t2", "9", "Approve")], total=2))
    hook = make_hook(httpserver)
    found = hook._run(hook._poll_tasks_flow({"5": "order", "6": "order"}, "Approve"))
    httpserver.check_assertions()
    assert [t.id for t in found["5"]] == ["t1"]
    assert found["6"] == []  # its definition was listed to the end: no open Approve task
