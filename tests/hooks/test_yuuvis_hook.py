"""YuuvisBpmHook against a fake gateway: every request pinned to the vendor's documentation.

Expected values come from the yuuvis Momentum API documentation: GET /bpm-engine/api/processes
and its filters (page 0-based, size, envelope objects/numItems/totalNumItems/hasMoreItems),
POST /bpm-engine/api/processes {processDefinitionKey, businessKey, name, variables:[{name, type,
value}]}, GET/DELETE /bpm-engine/api/processes/{id}, GET /bpm-engine/api/tasks, POST
/bpm-engine/api/tasks/{id} {action, assignee?, variables?}, GET /api/dms/objects/{id} (metadata
with contentStreams) and /api/dms/objects/{id}/contents/file; X-ID-TENANT-NAME on every call.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pendulum
import pytest
from airflow.models.connection import Connection
from pytest_httpserver import HTTPServer
from werkzeug import Request as WRequest
from werkzeug import Response

from airflow_bpm_provider.exceptions import (
    BpmAuthError,
    BpmConfigError,
    BpmNotFound,
    BpmServerError,
    BpmValidationError,
)
from airflow_bpm_provider.hooks.disposition import content_length, file_name_from_reply
from airflow_bpm_provider.hooks.retry import RetryPolicy
from airflow_bpm_provider.hooks.yuuvis import YuuvisBpmHook
from airflow_bpm_provider.models import ProcessFile, ProcessState

PASSWORD = "Yuuvis-pw-never-in-logs-913"
LOGIN = "clerk"
TENANT = "acme"
PROCESSES = "/bpm-engine/api/processes"
TASKS = "/bpm-engine/api/tasks"
# (unverified) The current user's record; the vendor excerpts (reference section 4, seed 002) do
# not document it. Its ``id`` is the userId seed 002 names in startedBy/startUserId.
ME = "/tenant-management/api/idm/me"
USER_ID = "0d7fd0be-6a0b-4f3e-9c1d-2b5a7e4f8c61"


def me_answer() -> dict[str, Any]:
    return {"id": USER_ID, "username": LOGIN, "tenant": TENANT}


BASIC = "Basic " + base64.b64encode(f"{LOGIN}:{PASSWORD}".encode()).decode()


def make_hook(server: HTTPServer, **extra: Any) -> YuuvisBpmHook:
    extra = {"tenant": TENANT, **extra}
    extra = {k: v for k, v in extra.items() if v is not None}
    conn = Connection(
        conn_id="yuuvis_test",
        conn_type="yuuvis_bpm",
        host=server.url_for("/").rstrip("/"),
        login=LOGIN,
        password=PASSWORD,
        extra=extra,
    )
    return YuuvisBpmHook(
        "yuuvis_test", connection=conn, retry_policy=RetryPolicy(initial_delay=0.0, max_attempts=3)
    )


def process(pid: str = "p-1", **fields: Any) -> dict[str, Any]:
    """A process as the documentation's example shows it."""
    body = {
        "id": pid,
        "name": "testProcessInstanceName",
        "businessKey": "testBusinessKey",
        "processDefinitionId": "twosteptest_proc:4:8dc694a2-10b1-11ec-99ef-027ea5eeae02",
        "processDefinitionName": "Two tasks test process",
        "startUserId": "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",
        "startTime": "2021-11-01T12:28:46.363Z",
        "deleteReason": None,
        "endTime": None,
        "suspended": False,
        "variables": [],
    }
    body.update(fields)
    return body


def page(objects: list[dict[str, Any]], more: bool, **extra: Any) -> dict[str, Any]:
    return {"objects": objects, "numItems": len(objects), "hasMoreItems": more, **extra}


def args(request: WRequest) -> dict[str, list[str]]:
    return request.args.to_dict(flat=False)


def assert_gateway_headers(request: WRequest, authorization: str = BASIC) -> None:
    assert request.headers.get("Authorization") == authorization
    assert request.headers.get("X-ID-TENANT-NAME") == TENANT


# ---- connection, auth, tenant, session cookie -------------------------------------------------


def test_every_call_carries_basic_auth_and_the_tenant(httpserver: HTTPServer):
    httpserver.expect_request(f"{PROCESSES}/p-1", method="GET").respond_with_json(process())
    httpserver.expect_request(f"{PROCESSES}/p-1", method="DELETE").respond_with_data("", status=200)
    httpserver.expect_request(PROCESSES, method="POST").respond_with_json(process(), status=201)
    httpserver.expect_request(TASKS, method="GET").respond_with_json(page([], False))
    httpserver.expect_request(f"{TASKS}/t-1", method="POST").respond_with_json({"id": "t-1"})
    httpserver.expect_request("/api/dms/objects/o-1", method="GET").respond_with_json({"objects": [{}]})
    hook = make_hook(httpserver)
    hook.get_process("p-1")
    hook.start_process("twosteptest_proc")
    hook.cancel_process("p-1")
    list(hook.list_tasks())
    hook.complete_task("t-1")
    hook.get_object_metadata("o-1")
    assert len(httpserver.log) == 6
    for request, _ in httpserver.log:
        assert_gateway_headers(request)


def test_bearer_token_with_the_tenant(httpserver: HTTPServer):
    httpserver.expect_request(f"{PROCESSES}/p-1").respond_with_json(process())
    hook = make_hook(httpserver, auth_type="bearer")
    hook.get_process("p-1")
    assert_gateway_headers(httpserver.log[0][0], authorization=f"Bearer {PASSWORD}")


def test_missing_tenant_is_a_config_error_before_any_request(httpserver: HTTPServer):
    hook = make_hook(httpserver, tenant=None)
    with pytest.raises(BpmConfigError, match=r"extra field 'tenant' is required.*yuuvis_test"):
        hook.get_process("p-1")
    assert httpserver.log == []


def test_tenant_from_the_ui_prefixed_extra(httpserver: HTTPServer):
    httpserver.expect_request(f"{PROCESSES}/p-1").respond_with_json(process())
    hook = make_hook(httpserver, tenant=None, extra__yuuvis_bpm__tenant=TENANT)
    hook.get_process("p-1")
    assert_gateway_headers(httpserver.log[0][0])


def test_the_gateway_session_cookie_is_sent_back(httpserver: HTTPServer):
    def first(request: WRequest) -> Response:
        response = Response(json.dumps(process()), content_type="application/json")
        response.set_cookie("GWSESSIONID", "gw-session-42", path="/")
        return response

    httpserver.expect_ordered_request(f"{PROCESSES}/p-1").respond_with_handler(first)
    httpserver.expect_ordered_request(f"{PROCESSES}/p-1").respond_with_json(process())
    httpserver.expect_ordered_request(f"{PROCESSES}/p-1").respond_with_json(process())
    hook = make_hook(httpserver)
    for _ in range(3):
        hook.get_process("p-1")
    cookies = [request.cookies.get("GWSESSIONID") for request, _ in httpserver.log]
    assert cookies == [None, "gw-session-42", "gw-session-42"]


def test_401_is_clear_and_leaks_no_secret(httpserver: HTTPServer, logs):
    def refuse(request: WRequest) -> Response:
        echoed = f"bad credentials {request.headers.get('Authorization')} {PASSWORD} cookie gw-secret-cookie"
        response = Response(json.dumps({"status": 401, "message": echoed}), status=401)
        response.set_cookie("GWSESSIONID", "gw-secret-cookie", path="/")
        return response

    httpserver.expect_request(f"{PROCESSES}/p-1").respond_with_handler(refuse)
    hook = make_hook(httpserver)
    with pytest.raises(BpmAuthError) as info:
        hook.get_process("p-1")
    text = str(info.value)
    assert "authentication failed" in text
    assert "tenant 'acme'" in text
    assert "yuuvis_test" in text
    logged = logs()
    for secret in (PASSWORD, BASIC.split()[1], "gw-secret-cookie"):
        assert secret not in text
        assert secret not in logged
    assert len(httpserver.log) == 1


def refuse_with_two_session_cookies(request: WRequest) -> Response:
    """A gateway that sets GWSESSIONID for two paths and echoes both values in its error."""
    response = Response(
        json.dumps({"status": 404, "message": "no process; sessions gw-root-cookie gw-engine-cookie"}),
        status=404,
        content_type="application/json",
    )
    response.set_cookie("GWSESSIONID", "gw-root-cookie", path="/")
    response.set_cookie("GWSESSIONID", "gw-engine-cookie", path="/bpm-engine")
    return response


def test_a_session_cookie_set_for_two_paths_does_not_replace_the_error(httpserver: HTTPServer, logs):
    httpserver.expect_request(f"{PROCESSES}/p-1").respond_with_handler(refuse_with_two_session_cookies)
    hook = make_hook(httpserver)
    with pytest.raises(BpmNotFound) as info:
        hook.get_process("p-1")
    text = str(info.value)
    assert "process instance 'p-1' does not exist" in text and "no process; sessions" in text
    logged = logs()
    for secret in ("gw-root-cookie", "gw-engine-cookie"):
        assert secret not in text
        assert secret not in logged
    # Both were stored: the jar really holds the name twice.
    jar = hook.get_conn().session.cookies
    assert sorted(c.value for c in jar if c.name == "GWSESSIONID") == ["gw-engine-cookie", "gw-root-cookie"]


def test_a_session_cookie_set_for_two_paths_async(httpserver: HTTPServer):
    httpserver.expect_request(f"{PROCESSES}/p-1").respond_with_handler(refuse_with_two_session_cookies)
    hook = make_hook(httpserver)

    async def read() -> BaseException:
        try:
            await hook.aget_process("p-1")
        except BpmNotFound as exc:
            return exc
        finally:
            await hook.aclose()
        raise AssertionError("no error")

    text = str(asyncio.run(read()))
    assert "no process; sessions" in text
    assert "gw-root-cookie" not in text and "gw-engine-cookie" not in text


def test_an_unexpected_body_echoing_the_session_cookie_is_scrubbed(httpserver: HTTPServer, logs):
    def echo(request: WRequest) -> Response:
        response = Response("<html>session gw-echoed-cookie</html>", status=200, content_type="text/html")
        response.set_cookie("GWSESSIONID", "gw-echoed-cookie", path="/")
        return response

    httpserver.expect_request(f"{PROCESSES}/p-1").respond_with_handler(echo)
    with pytest.raises(BpmServerError, match="the body is not JSON") as info:
        make_hook(httpserver).get_process("p-1")
    assert "<html>session ***</html>" in str(info.value)
    assert "gw-echoed-cookie" not in logs()


def test_test_connection_reads_one_definition(httpserver: HTTPServer):
    httpserver.expect_request("/bpm-engine/api/process-definitions").respond_with_json(
        {"objects": [{"id": "follow-up:1:x", "key": "follow-up"}], "numItems": 1, "totalNumItems": 7}
    )
    ok, message = make_hook(httpserver).test_connection()
    assert ok, message
    assert "tenant 'acme'" in message and "7 process definition(s)" in message
    request = httpserver.log[0][0]
    assert args(request) == {"page": ["0"], "size": ["1"]}
    assert_gateway_headers(request)


def test_test_connection_reports_failure(httpserver: HTTPServer):
    httpserver.expect_request("/bpm-engine/api/process-definitions").respond_with_data("nope", status=403)
    ok, message = make_hook(httpserver).test_connection()
    assert not ok and "HTTP 403" in message and PASSWORD not in message


# ---- process definitions -----------------------------------------------------------------------


def test_latest_process_definition(httpserver: HTTPServer):
    httpserver.expect_request("/bpm-engine/api/process-definitions").respond_with_json(
        page([{"id": "follow-up:5:u", "key": "follow-up", "version": 5}], False)
    )
    definition = make_hook(httpserver).latest_process_definition("follow-up")
    assert definition["id"] == "follow-up:5:u"
    assert args(httpserver.log[0][0]) == {
        "key": ["follow-up"],
        "latest": ["true"],
        "page": ["0"],
        "size": ["10"],
    }


def test_latest_process_definition_missing(httpserver: HTTPServer):
    httpserver.expect_request("/bpm-engine/api/process-definitions").respond_with_json(page([], False))
    with pytest.raises(BpmNotFound, match="no process definition with key 'nope'"):
        make_hook(httpserver).latest_process_definition("nope")


def test_list_process_definitions_filters(httpserver: HTTPServer):
    httpserver.expect_request("/bpm-engine/api/process-definitions").respond_with_json(
        page([{"id": "a"}], False)
    )
    found = list(
        make_hook(httpserver).list_process_definitions(
            key_like="follow%", startable_by_user="u-1", suspended=False
        )
    )
    assert found == [{"id": "a"}]
    assert len(httpserver.log) == 1
    for request, _ in httpserver.log:
        assert request.method == "GET" and request.path == "/bpm-engine/api/process-definitions"
        assert_gateway_headers(request)
    assert args(httpserver.log[0][0]) == {
        "keyLike": ["follow%"],
        "startableByUser": ["u-1"],
        "suspended": ["false"],
        "page": ["0"],
        "size": ["1000"],
    }


# ---- finding processes -------------------------------------------------------------------------


def test_every_seed_filter_has_its_vendor_name_and_format(httpserver: HTTPServer):
    httpserver.expect_request(PROCESSES).respond_with_json(page([], False))
    hook = make_hook(httpserver)
    list(
        hook.find_processes(
            business_key="bk",
            business_key_like="bk%",
            exclude_subprocesses=True,
            include_process_variables=False,
            involved_user="u-2",
            name="n",
            name_like="n%",
            name_like_ignore_case="N%",
            process_definition_category="cat",
            process_definition_id="twosteptest_proc:4:uuid",
            process_definition_key="twosteptest_proc",
            process_definition_version=4,
            started_after=pendulum.datetime(2024, 5, 1, 10, 0, 0, tz="Europe/Berlin"),
            started_before=datetime(2024, 5, 2, 12, 30, 15, 123456),
            started_by="u-1",
            sub_process_instance_id="sub-1",
            super_process_instance_id="super-1",
            suspended=False,
            is_completed=True,
            sort="DESC",
        )
    )
    assert len(httpserver.log) == 1
    for request, _ in httpserver.log:
        assert request.method == "GET" and request.path == PROCESSES
        assert_gateway_headers(request)
    assert args(httpserver.log[0][0]) == {
        "businessKey": ["bk"],
        "businessKeyLike": ["bk%"],
        "excludeSubprocesses": ["true"],
        "includeProcessVariables": ["false"],
        "involvedUser": ["u-2"],
        "name": ["n"],
        "nameLike": ["n%"],
        "nameLikeIgnoreCase": ["N%"],
        "processDefinitionCategory": ["cat"],
        "processDefinitionId": ["twosteptest_proc:4:uuid"],
        "processDefinitionKey": ["twosteptest_proc"],
        "processDefinitionVersion": ["4"],
        "startedAfter": ["2024-05-01T08:00:00.000Z"],  # Berlin summer time is UTC+2
        "startedBefore": ["2024-05-02T12:30:15.123Z"],  # naive: taken as UTC
        "startedBy": ["u-1"],
        "subProcessInstanceId": ["sub-1"],
        "superProcessInstanceId": ["super-1"],
        "suspended": ["false"],
        "isCompleted": ["true"],
        "sort": ["desc"],
        "page": ["0"],
        "size": ["1000"],
    }


def test_vendor_filter_names_and_iso_strings_are_accepted(httpserver: HTTPServer):
    httpserver.expect_request(PROCESSES).respond_with_json(page([], False))
    list(
        make_hook(httpserver).find_processes(
            businessKey="bk", startedAfter="2024-05-01T10:00:00+02:00", isCompleted="FALSE", page_size=5
        )
    )
    assert args(httpserver.log[0][0]) == {
        "businessKey": ["bk"],
        "startedAfter": ["2024-05-01T08:00:00.000Z"],
        "isCompleted": ["false"],
        "page": ["0"],
        "size": ["5"],
    }


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"colour": "red"}, "unknown process filter(s) for yuuvis Momentum: colour; known: business_key,"),
        ({"started_after": "last tuesday"}, "filter 'started_after' must be an ISO 8601 date-time"),
        ({"started_before": 12}, "filter 'started_before' must be a datetime or an ISO 8601 string"),
        ({"suspended": "maybe"}, "filter 'suspended' must be true or false"),
        ({"process_definition_version": "four"}, "filter 'process_definition_version' must be an integer"),
        ({"sort": "sideways"}, "filter 'sort' must be 'asc' or 'desc'"),
        ({"states": ["DONE"]}, "unknown process state 'DONE'"),
        ({"page_size": 0}, "page_size must be a positive integer"),
        ({"query": "isCompleted=true"}, "filter 'query' must be a dict"),
    ],
)
def test_bad_filters_are_named(httpserver: HTTPServer, filters, message):
    with pytest.raises(BpmConfigError, match=re.escape(message)):
        list(make_hook(httpserver).find_processes(**filters))
    assert httpserver.log == []


@pytest.mark.parametrize(("status", "cls"), [(400, BpmValidationError), (403, BpmAuthError)])
@pytest.mark.parametrize(
    "filters", [{"started_by": "u-other"}, {"startedBy": "u-other"}, {"query": {"startedBy": "u-other"}}]
)
def test_started_by_another_user_needs_admin(httpserver: HTTPServer, status, cls, filters):
    httpserver.expect_request(PROCESSES).respond_with_json(
        {"status": status, "message": "startedBy must be the current user"}, status=status
    )
    with pytest.raises(cls) as info:
        list(make_hook(httpserver).find_processes(**filters))
    text = str(info.value)
    assert "processes started by 'u-other'" in text
    assert "only admins may list processes started by other users" in text
    assert "startedBy must be the current user" in text  # the server's own word stays
    assert f"HTTP {status}" in text and "yuuvis_test" in text
    assert args(httpserver.log[0][0]) == {"startedBy": ["u-other"], "page": ["0"], "size": ["1000"]}


def test_a_refused_list_without_started_by_is_not_blamed_on_it(httpserver: HTTPServer):
    httpserver.expect_request(PROCESSES).respond_with_json({"message": "bad sort"}, status=400)
    with pytest.raises(BpmValidationError) as info:
        list(make_hook(httpserver).find_processes(sort="asc"))
    assert "bad sort" in str(info.value) and "admins" not in str(info.value)


def test_pages_until_has_more_items_is_false_without_total(httpserver: HTTPServer):
    pages = {
        "0": page([process("p-1"), process("p-2")], True),
        "1": page([process("p-3"), process("p-4")], True),
        "2": page([process("p-5")], False),
    }
    httpserver.expect_request(PROCESSES).respond_with_handler(
        lambda request: Response(json.dumps(pages[request.args["page"]]), content_type="application/json")
    )
    found = list(make_hook(httpserver).find_processes(definition="twosteptest_proc", page_size=2))
    assert [p.id for p in found] == ["p-1", "p-2", "p-3", "p-4", "p-5"]
    assert [args(request) for request, _ in httpserver.log] == [
        {"processDefinitionKey": ["twosteptest_proc"], "page": [str(n)], "size": ["2"]} for n in range(3)
    ]


def test_paging_is_lazy(httpserver: HTTPServer):
    httpserver.expect_request(PROCESSES).respond_with_json(page([process("p-1")], True))
    found = make_hook(httpserver).find_processes(page_size=1)
    assert httpserver.log == []
    assert next(found).id == "p-1"
    assert len(httpserver.log) == 1


def test_an_empty_page_claiming_more_stops_the_paging(httpserver: HTTPServer):
    httpserver.expect_request(PROCESSES).respond_with_json(page([], True))
    assert list(make_hook(httpserver).find_processes()) == []
    assert len(httpserver.log) == 1


@pytest.mark.parametrize(
    ("states", "params"),
    [
        (["RUNNING"], {"isCompleted": ["false"], "suspended": ["false"]}),
        (["SUSPENDED"], {"suspended": ["true"]}),
        (["RUNNING", "SUSPENDED"], {"isCompleted": ["false"]}),
        (["COMPLETED"], {"isCompleted": ["true"]}),
        (["COMPLETED", "CANCELLED"], {"isCompleted": ["true"]}),
        (["RUNNING", "COMPLETED"], {}),
    ],
)
def test_states_narrow_the_query(httpserver: HTTPServer, states, params):
    httpserver.expect_request(PROCESSES).respond_with_json(page([], False))
    list(make_hook(httpserver).find_processes(states=states))
    assert args(httpserver.log[0][0]) == {**params, "page": ["0"], "size": ["1000"]}


def test_states_are_checked_per_result(httpserver: HTTPServer):
    ended = "2021-11-02T08:00:00.000Z"
    httpserver.expect_request(PROCESSES).respond_with_json(
        page(
            [
                process("done", endTime=ended, completed=True),
                process("deleted", endTime=ended, deleteReason="deleted by user"),
            ],
            False,
        )
    )
    found = list(make_hook(httpserver).find_processes(states="completed"))
    assert [p.id for p in found] == ["done"]


def test_explicit_filter_and_raw_query_win(httpserver: HTTPServer):
    httpserver.expect_request(PROCESSES).respond_with_json(page([], False))
    list(
        make_hook(httpserver).find_processes(
            states=["RUNNING"],
            suspended=True,
            business_key="b",
            query={"nameLike": "x%", "isCompleted": True},
        )
    )
    assert args(httpserver.log[0][0]) == {
        "isCompleted": ["true"],
        "suspended": ["true"],
        "businessKey": ["b"],
        "nameLike": ["x%"],
        "page": ["0"],
        "size": ["1000"],
    }


def test_process_mapping(httpserver: HTTPServer):
    httpserver.expect_request(PROCESSES).respond_with_json(
        page(
            [
                process("run"),
                process("held", suspended=True),
                process("done", endTime="2021-11-02T08:00:00.000Z"),
                process("gone", endTime="2021-11-02T08:00:00.000Z", deleteReason="deleted"),
                process("old", startTime="2018-04-17T10:17:43.902+0000", completed=True),
            ],
            False,
        )
    )
    found = {p.id: p for p in make_hook(httpserver).find_processes()}
    assert {pid: p.state for pid, p in found.items()} == {
        "run": ProcessState.RUNNING,
        "held": ProcessState.SUSPENDED,
        "done": ProcessState.COMPLETED,
        "gone": ProcessState.CANCELLED,
        "old": ProcessState.COMPLETED,
    }
    run = found["run"]
    assert run.definition == "twosteptest_proc"
    assert run.definition_name == "Two tasks test process"
    assert run.title == "testProcessInstanceName"
    assert run.business_key == "testBusinessKey"
    assert run.started_at == datetime(2021, 11, 1, 12, 28, 46, 363000, tzinfo=UTC)
    assert run.ended_at is None
    assert found["done"].ended_at == datetime(2021, 11, 2, 8, 0, tzinfo=UTC)
    assert found["old"].started_at == datetime(2018, 4, 17, 10, 17, 43, 902000, tzinfo=UTC)
    assert found["gone"].raw_state == "deleted: deleted"
    assert run.raw["startUserId"] == "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"


def test_find_by_business_key_takes_the_newest(httpserver: HTTPServer):
    httpserver.expect_request(PROCESSES).respond_with_json(
        page(
            [
                process("older", startTime="2024-01-01T00:00:00.000Z"),
                process("newest", startTime="2024-03-01T00:00:00.000Z"),
                process("middle", startTime="2024-02-01T00:00:00.000Z"),
            ],
            False,
        )
    )
    found = make_hook(httpserver).find_process_by_business_key("invoice", "inv-7")
    assert found is not None and found.id == "newest"
    request = httpserver.log[0][0]
    assert request.method == "GET" and request.path == PROCESSES
    assert args(request) == {
        "businessKey": ["inv-7"],
        "processDefinitionKey": ["invoice"],
        "page": ["0"],
        "size": ["1000"],
    }


def test_find_by_business_key_none(httpserver: HTTPServer):
    httpserver.expect_request(PROCESSES).respond_with_json(page([], False))
    assert make_hook(httpserver).find_process_by_business_key("invoice", "inv-7") is None


# ---- one process ---------------------------------------------------------------------------------


def test_get_process(httpserver: HTTPServer):
    httpserver.expect_request(f"{PROCESSES}/p-9").respond_with_json(process("p-9"))
    instance = make_hook(httpserver).get_process("p-9")
    assert instance.id == "p-9" and instance.state is ProcessState.RUNNING
    request = httpserver.log[0][0]
    assert request.method == "GET" and args(request) == {}


def test_get_process_in_the_old_envelope(httpserver: HTTPServer):
    httpserver.expect_request(f"{PROCESSES}/p-9").respond_with_json(
        {"hasMoreItems": False, "numItems": 1, "objects": [process("p-9", completed=True)]}
    )
    assert make_hook(httpserver).get_process("p-9").state is ProcessState.COMPLETED


@pytest.mark.parametrize(("status", "cls"), [(404, BpmNotFound), (403, BpmAuthError)])
def test_an_invisible_process_says_so(httpserver: HTTPServer, status, cls):
    httpserver.expect_request(f"{PROCESSES}/p-x").respond_with_json(
        {"status": status, "message": "Process instance not found"}, status=status
    )
    with pytest.raises(cls) as info:
        make_hook(httpserver).get_process("p-x")
    text = str(info.value)
    assert "process instance 'p-x' does not exist or user 'clerk' may not see it" in text
    assert "only the processes they started" in text
    assert "Process instance not found" in text


VISIBILITY = "yuuvis shows a user only the processes they started and the tasks they may act on"
READ_PERMISSION = "grants read permission"


def dms_file(oid: str = "obj-1") -> ProcessFile:
    return ProcessFile(
        name=oid, size=None, content_type=None, process_instance_id="p", ref={"object_id": oid}
    )


def read_content(hook: YuuvisBpmHook) -> None:
    with hook.open_file(dms_file()):
        pass


@pytest.mark.parametrize(
    ("method", "path", "call", "hint", "not_hint"),
    [
        ("GET", f"{TASKS}/t-1", lambda h: h.get_task("t-1"), VISIBILITY, READ_PERMISSION),
        ("POST", f"{TASKS}/t-1", lambda h: h.complete_task("t-1"), VISIBILITY, READ_PERMISSION),
        ("GET", TASKS, lambda h: list(h.list_tasks()), VISIBILITY, READ_PERMISSION),
        ("GET", f"{PROCESSES}/p-1", lambda h: h.get_process("p-1"), VISIBILITY, READ_PERMISSION),
        ("POST", PROCESSES, lambda h: h.start_process("k"), "start permission", VISIBILITY),
        (
            "GET",
            "/api/dms/objects/obj-1",
            lambda h: h.get_object_metadata("obj-1"),
            READ_PERMISSION,
            VISIBILITY,
        ),
        ("GET", "/api/dms/objects/obj-1/contents/file", read_content, READ_PERMISSION, VISIBILITY),
    ],
)
def test_each_403_gets_the_hint_of_its_endpoint(httpserver: HTTPServer, method, path, call, hint, not_hint):
    httpserver.expect_request(path, method=method).respond_with_json({"message": "Forbidden"}, status=403)
    with pytest.raises(BpmAuthError) as info:
        call(make_hook(httpserver))
    text = str(info.value)
    assert "HTTP 403" in text and "Forbidden" in text
    assert hint in text
    assert not_hint not in text


def test_ids_stay_one_path_segment(httpserver: HTTPServer):
    httpserver.expect_request(re.compile(r"/bpm-engine/api/processes/.*")).respond_with_json(process("a/b c"))
    make_hook(httpserver).get_process("a/b c")
    assert httpserver.log[0][0].environ["RAW_URI"] == f"{PROCESSES}/a%2Fb%20c"


def test_async_get_process_sends_the_tenant(httpserver: HTTPServer):
    httpserver.expect_request(f"{PROCESSES}/p-9").respond_with_json(process("p-9", suspended=True))
    hook = make_hook(httpserver)

    async def read() -> Any:
        try:
            return await hook.aget_process("p-9")
        finally:
            await hook.aclose()

    assert asyncio.run(read()).state is ProcessState.SUSPENDED
    assert_gateway_headers(httpserver.log[0][0])


def test_cancel_process_deletes_it(httpserver: HTTPServer):
    httpserver.expect_request(f"{PROCESSES}/p-9", method="DELETE").respond_with_data("", status=200)
    make_hook(httpserver).cancel_process("p-9")
    assert httpserver.log[0][0].method == "DELETE"


def test_cancel_an_invisible_process(httpserver: HTTPServer):
    httpserver.expect_request(f"{PROCESSES}/p-9", method="DELETE").respond_with_data("", status=404)
    with pytest.raises(BpmNotFound, match="may not see it"):
        make_hook(httpserver).cancel_process("p-9")


# ---- starting ------------------------------------------------------------------------------------


def test_start_body_with_typed_variables(httpserver: HTTPServer):
    httpserver.expect_request(PROCESSES, method="POST").respond_with_json(
        process("p-new", businessKey="inv-7", name="Invoice 7"), status=201
    )
    instance = make_hook(httpserver).start_process(
        "oneTaskProcess",
        business_key="inv-7",
        name="Invoice 7",
        variables={
            "subject": "Invoice 7",
            "approved": False,
            "count": 3,
            "bytes": 2**40,
            "amount": 12.5,
            "due": datetime(2024, 6, 1, 9, 30, tzinfo=timezone(timedelta(hours=2))),
            "tags": ["a", "b"],
            "nothing": None,
        },
    )
    assert instance.id == "p-new" and instance.business_key == "inv-7"
    request = httpserver.log[0][0]
    assert request.method == "POST" and request.path == PROCESSES
    assert request.headers["Content-Type"] == "application/json"
    assert request.get_json() == {
        "processDefinitionKey": "oneTaskProcess",
        "businessKey": "inv-7",
        "name": "Invoice 7",
        "variables": [
            {"name": "subject", "type": "string", "value": "Invoice 7"},
            {"name": "approved", "type": "boolean", "value": False},
            {"name": "count", "type": "integer", "value": 3},
            {"name": "bytes", "type": "long", "value": 2**40},
            {"name": "amount", "type": "double", "value": 12.5},
            {"name": "due", "type": "date", "value": "2024-06-01T07:30:00.000Z"},
            {"name": "tags", "type": "json", "value": ["a", "b"]},
            {"name": "nothing", "value": None},
        ],
    }


def test_start_minimal_body_and_envelope_answer(httpserver: HTTPServer):
    httpserver.expect_request(PROCESSES, method="POST").respond_with_json(
        {"hasMoreItems": True, "numItems": 50, "objects": [process("187")]}
    )
    instance = make_hook(httpserver).start_process("oneTaskProcess")
    assert instance.id == "187"
    assert httpserver.log[0][0].get_json() == {"processDefinitionKey": "oneTaskProcess"}


def test_start_accepts_ready_vendor_variables(httpserver: HTTPServer):
    httpserver.expect_request(PROCESSES, method="POST").respond_with_json(process())
    vendor = [{"name": "myVariable", "scope": "myScope", "type": "string", "value": "test"}]
    make_hook(httpserver).start_process("oneTaskProcess", variables=vendor)
    assert httpserver.log[0][0].get_json()["variables"] == vendor


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"flow": 3}, "unknown start option\\(s\\) for yuuvis Momentum: flow"),
        ({"variables": {"blob": b"raw"}}, "variable 'blob' has a type yuuvis cannot take: bytes"),
        ({"variables": ["x"]}, "a variable list must hold"),
    ],
)
def test_start_refuses_bad_input_before_sending(httpserver: HTTPServer, kwargs, message):
    with pytest.raises(BpmConfigError, match=message):
        make_hook(httpserver).start_process("oneTaskProcess", **kwargs)
    assert httpserver.log == []


def test_start_400_names_the_definition_and_the_server_message(httpserver: HTTPServer):
    httpserver.expect_request(PROCESSES, method="POST").respond_with_json(
        {"status": 400, "error": "Bad Request", "message": "No process definition found for key 'nope'"},
        status=400,
    )
    with pytest.raises(BpmValidationError) as info:
        make_hook(httpserver).start_process("nope", variables={"a": 1})
    text = str(info.value)
    assert "refused to start process definition 'nope'" in text
    assert "No process definition found for key 'nope'" in text
    assert "HTTP 400" in text and "yuuvis_test" in text
    assert len(httpserver.log) == 1


def test_a_start_is_never_resent(httpserver: HTTPServer):
    httpserver.expect_request(PROCESSES, method="POST").respond_with_data("gateway timeout", status=504)
    with pytest.raises(BpmServerError):
        make_hook(httpserver).start_process("oneTaskProcess")
    assert len(httpserver.log) == 1


def test_start_403_is_an_auth_error_with_a_start_permission_hint(httpserver: HTTPServer):
    httpserver.expect_request(PROCESSES, method="POST").respond_with_json(
        {"message": "forbidden"}, status=403
    )
    with pytest.raises(BpmAuthError) as info:
        make_hook(httpserver).start_process("oneTaskProcess")
    text = str(info.value)
    assert "permission denied: user 'clerk' may not start process definition 'oneTaskProcess'" in text
    assert "forbidden" in text
    assert "start permission on the definition" in text and "startable_by_user" in text
    assert "only the processes they started" not in text


# ---- tasks ---------------------------------------------------------------------------------------


def task(tid: str, name: str = "My task", pid: str = "p-1", assignee: str | None = None) -> dict[str, Any]:
    return {
        "id": tid,
        "name": name,
        "assignee": assignee,
        "processInstanceId": pid,
        "processDefinitionId": "oneTaskProcess:1:u",
        "taskDefinitionKey": "myTask",
    }


def test_list_tasks_query_paging_and_filtering(httpserver: HTTPServer):
    pages = {
        "0": page([task("t-1", assignee="clerk"), task("t-2", pid="other")], True),
        "1": page([task("t-3", name="Else")], False),
    }
    httpserver.expect_request(TASKS).respond_with_handler(
        lambda request: Response(json.dumps(pages[request.args["page"]]), content_type="application/json")
    )
    found = list(make_hook(httpserver).list_tasks(process_instance_id="p-1", name="My task"))
    assert [(t.id, t.assignee, t.state) for t in found] == [("t-1", "clerk", "CLAIMED")]
    assert [args(request) for request, _ in httpserver.log] == [
        {"processInstanceId": ["p-1"], "name": ["My task"], "page": [str(n)], "size": ["1000"]}
        for n in range(2)
    ]


def test_async_list_tasks(httpserver: HTTPServer):
    httpserver.expect_request(TASKS).respond_with_json(page([task("t-1")], False))
    hook = make_hook(httpserver)

    async def read() -> Any:
        try:
            return await hook.alist_tasks(process_instance_id="p-1")
        finally:
            await hook.aclose()

    assert [t.id for t in asyncio.run(read())] == ["t-1"]
    assert_gateway_headers(httpserver.log[0][0])


def test_find_tasks_by_definition(httpserver: HTTPServer):
    httpserver.expect_request(TASKS).respond_with_json(page([task("t-1")], False))
    found = list(make_hook(httpserver).find_tasks(process_definition_key="oneTaskProcess", name_like="My%"))
    assert [t.id for t in found] == ["t-1"]
    assert args(httpserver.log[0][0]) == {
        "processDefinitionKey": ["oneTaskProcess"],
        "nameLike": ["My%"],
        "page": ["0"],
        "size": ["1000"],
    }


def test_find_tasks_refuses_unknown_filters(httpserver: HTTPServer):
    with pytest.raises(BpmConfigError, match="unknown task filter\\(s\\) for yuuvis Momentum: priority"):
        list(make_hook(httpserver).find_tasks(priority=5))


def test_get_task(httpserver: HTTPServer):
    httpserver.expect_request(f"{TASKS}/t-8").respond_with_json(task("t-8", assignee="clerk"))
    found = make_hook(httpserver).get_task("t-8")
    assert (found.id, found.name, found.process_instance_id, found.assignee, found.state) == (
        "t-8",
        "My task",
        "p-1",
        "clerk",
        "CLAIMED",
    )
    [(request, _)] = httpserver.log
    assert request.method == "GET" and request.path == f"{TASKS}/t-8"
    assert args(request) == {} and request.get_data() == b""
    assert_gateway_headers(request)


def test_get_task_in_the_envelope(httpserver: HTTPServer):
    httpserver.expect_request(f"{TASKS}/t-8").respond_with_json(page([task("t-8")], False))
    assert make_hook(httpserver).get_task("t-8").id == "t-8"


@pytest.mark.parametrize("body", [{"name": "My task"}, page([], False), [task("t-8")]])
def test_get_task_without_an_id_is_an_unexpected_answer(httpserver: HTTPServer, body):
    httpserver.expect_request(f"{TASKS}/t-8").respond_with_json(body)
    with pytest.raises(BpmServerError, match="unexpected answer: a task without an id") as info:
        make_hook(httpserver).get_task("t-8")
    assert "GET /bpm-engine/api/tasks/t-8" in str(info.value)


def test_a_task_list_entry_without_an_id_is_an_unexpected_answer(httpserver: HTTPServer):
    httpserver.expect_request(TASKS).respond_with_json(page([{"name": "My task"}], False))
    hook = make_hook(httpserver)
    with pytest.raises(BpmServerError, match="has no usable 'id'"):
        list(hook.list_tasks())
    with pytest.raises(BpmServerError, match="has no usable 'id'"):
        list(hook.find_tasks())


@pytest.mark.parametrize(("status", "cls"), [(404, BpmNotFound), (403, BpmAuthError)])
def test_an_invisible_task_says_so(httpserver: HTTPServer, status, cls):
    httpserver.expect_request(f"{TASKS}/t-x").respond_with_json(
        {"status": status, "message": "Task not found"}, status=status
    )
    with pytest.raises(cls) as info:
        make_hook(httpserver).get_task("t-x")
    text = str(info.value)
    assert "task 't-x' does not exist, has ended, or user 'clerk' may not act on it" in text
    assert "Task not found" in text and f"HTTP {status}" in text


@pytest.mark.parametrize(
    ("call", "body"),
    [
        (lambda h: h.claim_task("t-8", "userWhoClaims"), {"action": "claim", "assignee": "userWhoClaims"}),
        (lambda h: h.complete_task("t-8"), {"action": "complete"}),
        (
            lambda h: h.complete_task("t-8", {"approved": True, "comment": "ok"}),
            {
                "action": "complete",
                "variables": [
                    {"name": "approved", "type": "boolean", "value": True},
                    {"name": "comment", "type": "string", "value": "ok"},
                ],
            },
        ),
        (
            lambda h: h.delegate_task("t-8", "helper", {"n": 1}),
            {
                "action": "delegate",
                "assignee": "helper",
                "variables": [{"name": "n", "type": "integer", "value": 1}],
            },
        ),
        (lambda h: h.resolve_task("t-8"), {"action": "resolve"}),
    ],
)
def test_task_action_bodies(httpserver: HTTPServer, call, body):
    httpserver.expect_request(f"{TASKS}/t-8", method="POST").respond_with_json(task("t-8"))
    call(make_hook(httpserver))
    request = httpserver.log[0][0]
    assert request.method == "POST" and request.path == f"{TASKS}/t-8"
    assert request.get_json() == body
    assert_gateway_headers(request)


def test_claim_uses_the_user_id_extra(httpserver: HTTPServer):
    httpserver.expect_request(f"{TASKS}/t-8", method="POST").respond_with_json(task("t-8"))
    make_hook(httpserver, user_id="0d7fd0be-6a0b").claim_task("t-8")
    assert httpserver.log[0][0].get_json() == {"action": "claim", "assignee": "0d7fd0be-6a0b"}


def test_claim_for_myself_sends_the_user_id_from_idm_me_never_the_login(httpserver: HTTPServer):
    httpserver.expect_request(ME, method="GET").respond_with_json(me_answer())
    httpserver.expect_request(f"{TASKS}/t-8", method="POST").respond_with_json(task("t-8"))
    hook = make_hook(httpserver)
    hook.claim_task("t-8")
    hook.claim_task("t-8")
    paths = [r.path for r, _ in httpserver.log]
    assert paths == [ME, f"{TASKS}/t-8", f"{TASKS}/t-8"]  # the id is read once per hook
    assert all(r.get_json() == {"action": "claim", "assignee": USER_ID} for r, _ in httpserver.log[1:])


def test_unassign_claims_for_a_null_assignee(httpserver: HTTPServer):
    # bpm-api-reference (yuuvis task action: POST /bpm-engine/api/tasks/{id}, {action: claim,
    # assignee?}); the engine is Flowable, whose claim for a null assignee releases the task.
    httpserver.expect_request(f"{TASKS}/t-8", method="POST").respond_with_json(task("t-8"))
    make_hook(httpserver).unassign_task("t-8")
    ((request, _),) = httpserver.log  # no idm/me lookup: no user is named
    assert request.get_json() == {"action": "claim", "assignee": None}
    assert_gateway_headers(request)


def test_complete_refuses_options(httpserver: HTTPServer):
    with pytest.raises(BpmConfigError, match="unknown complete option\\(s\\) for yuuvis Momentum: flow"):
        make_hook(httpserver).complete_task("t-8", flow=2)


def test_task_action_errors_are_clear(httpserver: HTTPServer):
    httpserver.expect_ordered_request(f"{TASKS}/t-8", method="POST").respond_with_json(
        {"message": "Variable 'amount' has an invalid value"}, status=400
    )
    httpserver.expect_ordered_request(f"{TASKS}/t-9", method="POST").respond_with_json(
        {"message": "Task not found"}, status=404
    )
    hook = make_hook(httpserver)
    with pytest.raises(BpmValidationError, match=r"refused to complete task 't-8'.*Variable 'amount'"):
        hook.complete_task("t-8", {"amount": "x"})
    with pytest.raises(
        BpmNotFound, match="task 't-9' does not exist, has ended, or user 'clerk' may not act"
    ):
        hook.claim_task("t-9", USER_ID)


# ---- files ---------------------------------------------------------------------------------------


def metadata(oid: str, name: str, length: int, mime: str = "application/pdf") -> dict[str, Any]:
    return {
        "objects": [
            {
                "properties": {"system:objectId": {"value": oid}},
                "contentStreams": [
                    {"contentStreamId": "cs", "length": length, "mimeType": mime, "fileName": name}
                ],
            }
        ]
    }


def test_list_files_reads_variables_attachments_and_metadata(httpserver: HTTPServer):
    variables = [
        {"name": "documentId", "type": "string", "value": "obj-1"},
        {"name": "extraDocs", "type": "json", "value": ["obj-2", "obj-1"]},
        {"name": "subject", "type": "string", "value": "not a document"},
    ]
    httpserver.expect_request(f"{PROCESSES}/p-1").respond_with_json(
        process("p-1", variables=variables, attachments=["obj-3"])
    )
    httpserver.expect_request("/api/dms/objects/obj-1").respond_with_json(metadata("obj-1", "scan.pdf", 1234))
    httpserver.expect_request("/api/dms/objects/obj-2").respond_with_json(
        metadata("obj-2", "notes.txt", 5, "text/plain")
    )
    httpserver.expect_request("/api/dms/objects/obj-3").respond_with_json(metadata("obj-3", "note.eml", 9))
    hook = make_hook(httpserver, document_variables="documentId, extraDocs")
    files = list(hook.list_files("p-1"))
    assert [(f.name, f.size, f.content_type, f.group, dict(f.ref)) for f in files] == [
        ("scan.pdf", 1234, "application/pdf", "documentId", {"object_id": "obj-1"}),
        ("notes.txt", 5, "text/plain", "extraDocs", {"object_id": "obj-2"}),
        ("note.eml", 9, "application/pdf", "attachments", {"object_id": "obj-3"}),
    ]
    assert all(f.process_instance_id == "p-1" for f in files)
    first = httpserver.log[0][0]
    assert first.path == f"{PROCESSES}/p-1" and args(first) == {"includeProcessVariables": ["true"]}
    assert [(request.method, request.path, args(request)) for request, _ in httpserver.log] == [
        ("GET", f"{PROCESSES}/p-1", {"includeProcessVariables": ["true"]}),
        ("GET", "/api/dms/objects/obj-1", {}),
        ("GET", "/api/dms/objects/obj-2", {}),
        ("GET", "/api/dms/objects/obj-3", {}),
    ]
    for request, _ in httpserver.log:
        assert request.get_data() == b""
        assert_gateway_headers(request)


def test_list_files_default_variable_only(httpserver: HTTPServer):
    variables = [{"name": "documentId", "value": "obj-1"}, {"name": "extraDocs", "value": "obj-2"}]
    httpserver.expect_request(f"{PROCESSES}/p-1").respond_with_json(process("p-1", variables=variables))
    httpserver.expect_request("/api/dms/objects/obj-1").respond_with_json(metadata("obj-1", "scan.pdf", 3))
    assert [f.name for f in make_hook(httpserver).list_files("p-1")] == ["scan.pdf"]


@pytest.mark.parametrize("status", [404, 403])
def test_list_files_keeps_a_hidden_object_under_its_id(httpserver: HTTPServer, status, logs):
    httpserver.expect_request(f"{PROCESSES}/p-1").respond_with_json(
        process("p-1", variables=[{"name": "documentId", "value": "obj-9"}])
    )
    httpserver.expect_request("/api/dms/objects/obj-9").respond_with_data("", status=status)
    httpserver.expect_request("/api/dms/objects/obj-9/contents/file").respond_with_data("", status=status)
    [file] = list(make_hook(httpserver).list_files("p-1"))
    assert (file.name, file.size, dict(file.ref)) == ("obj-9", None, {"object_id": "obj-9"})
    logged = logs()
    assert (
        f"metadata of DMS object obj-9 referenced by documentId of process p-1 not readable (HTTP {status})"
        in logged
    )
    assert "content of DMS object obj-9" in logged and "listed under its object id" in logged


@pytest.mark.parametrize("status", [404, 403])
def test_a_hidden_object_does_not_abort_the_listing_and_is_named_from_its_download(
    httpserver: HTTPServer, status
):
    variables = [{"name": "documentId", "value": ["obj-1", "obj-2"]}]
    httpserver.expect_request(f"{PROCESSES}/p-1").respond_with_json(process("p-1", variables=variables))
    httpserver.expect_request("/api/dms/objects/obj-1").respond_with_json(
        {"message": "no read permission"}, status=status
    )
    httpserver.expect_request("/api/dms/objects/obj-1/contents/file").respond_with_data(
        "x" * 4321, headers={"Content-Disposition": DISPOSITION}, content_type="application/pdf"
    )
    httpserver.expect_request("/api/dms/objects/obj-2").respond_with_json(metadata("obj-2", "b.txt", 2))
    files = list(make_hook(httpserver).list_files("p-1"))
    assert [(f.name, f.size, f.content_type, f.raw, dict(f.ref)) for f in files] == [
        ("Rechnung Ü.pdf", 4321, "application/pdf", {}, {"object_id": "obj-1"}),
        ("b.txt", 2, "application/pdf", metadata("obj-2", "b.txt", 2)["objects"][0], {"object_id": "obj-2"}),
    ]
    assert [(request.method, request.path) for request, _ in httpserver.log] == [
        ("GET", f"{PROCESSES}/p-1"),
        ("GET", "/api/dms/objects/obj-1"),
        ("GET", "/api/dms/objects/obj-1/contents/file"),
        ("GET", "/api/dms/objects/obj-2"),
    ]
    for request, _ in httpserver.log:
        assert_gateway_headers(request)


def test_empty_metadata_names_the_file_from_its_download(httpserver: HTTPServer):
    httpserver.expect_request(f"{PROCESSES}/p-1").respond_with_json(
        process("p-1", variables=[{"name": "documentId", "value": "obj-1"}])
    )
    httpserver.expect_request("/api/dms/objects/obj-1").respond_with_json({"objects": []})
    httpserver.expect_request("/api/dms/objects/obj-1/contents/file").respond_with_data(
        "abc", headers={"Content-Disposition": 'attachment; filename="memo.txt"'}, content_type="text/plain"
    )
    [file] = list(make_hook(httpserver).list_files("p-1"))
    assert (file.name, file.size, file.content_type) == ("memo.txt", 3, "text/plain")


def test_a_401_on_metadata_still_fails_the_listing(httpserver: HTTPServer):
    httpserver.expect_request(f"{PROCESSES}/p-1").respond_with_json(
        process("p-1", variables=[{"name": "documentId", "value": "obj-1"}])
    )
    httpserver.expect_request("/api/dms/objects/obj-1").respond_with_data("expired", status=401)
    with pytest.raises(BpmAuthError, match="authentication failed"):
        list(make_hook(httpserver).list_files("p-1"))


def test_list_files_asks_the_download_headers_when_metadata_has_no_name(httpserver: HTTPServer):
    httpserver.expect_request(f"{PROCESSES}/p-1").respond_with_json(
        process("p-1", variables=[{"name": "documentId", "value": "obj-1"}])
    )
    httpserver.expect_request("/api/dms/objects/obj-1").respond_with_json(
        {"objects": [{"properties": {}, "contentStreams": [{"mimeType": "text/plain"}]}]}
    )
    httpserver.expect_request("/api/dms/objects/obj-1/contents/file").respond_with_data(
        "x" * 70000, headers={"Content-Disposition": DISPOSITION}, content_type="text/plain"
    )
    [file] = list(make_hook(httpserver).list_files("p-1"))
    assert (file.name, file.size, file.content_type) == ("Rechnung Ü.pdf", 70000, "text/plain")
    assert [(request.method, request.path, args(request)) for request, _ in httpserver.log] == [
        ("GET", f"{PROCESSES}/p-1", {"includeProcessVariables": ["true"]}),
        ("GET", "/api/dms/objects/obj-1", {}),
        ("GET", "/api/dms/objects/obj-1/contents/file", {}),
    ]
    for request, _ in httpserver.log:
        assert request.get_data() == b""
        assert_gateway_headers(request)


def test_list_files_skips_objects_without_content(httpserver: HTTPServer):
    httpserver.expect_request(f"{PROCESSES}/p-1").respond_with_json(
        process("p-1", variables=[{"name": "documentId", "value": "folder-1"}])
    )
    httpserver.expect_request("/api/dms/objects/folder-1").respond_with_json(
        {"objects": [{"properties": {}, "contentStreams": []}]}
    )
    assert list(make_hook(httpserver).list_files("p-1")) == []


def test_list_files_of_an_invisible_process(httpserver: HTTPServer):
    httpserver.expect_request(f"{PROCESSES}/p-1").respond_with_data("", status=404)
    with pytest.raises(BpmNotFound, match="may not see it"):
        list(make_hook(httpserver).list_files("p-1"))


def test_bad_document_variables_extra(httpserver: HTTPServer):
    with pytest.raises(BpmConfigError, match="document_variables"):
        make_hook(httpserver, document_variables=[1, 2]).document_variables  # noqa: B018


DISPOSITION = "attachment; filename=\"Rechnung _.pdf\"; filename*=UTF-8''Rechnung%20%C3%9C.pdf"


def test_open_file_streams_with_name_and_size_from_headers(httpserver: HTTPServer):
    content = bytes(range(256)) * 4096  # 1 MiB

    def serve(request: WRequest) -> Response:
        return Response(
            iter([content[i : i + 65536] for i in range(0, len(content), 65536)]),
            headers={
                "Content-Length": str(len(content)),
                "Content-Disposition": DISPOSITION,
            },
            content_type="application/pdf",
        )

    httpserver.expect_request("/api/dms/objects/obj-1/contents/file").respond_with_handler(serve)
    file = ProcessFile(
        name="obj-1", size=None, content_type=None, process_instance_id="p-1", ref={"object_id": "obj-1"}
    )
    hook = make_hook(httpserver)
    with hook.open_file(file) as reply:
        assert reply.body == b""  # streamed, not read into memory
        assert file_name_from_reply(reply) == "Rechnung Ü.pdf"
        assert content_length(reply) == len(content)
        chunks = list(reply.iter_bytes(65536))
    assert b"".join(chunks) == content and len(chunks) > 1
    request = httpserver.log[0][0]
    assert request.method == "GET" and args(request) == {}
    assert_gateway_headers(request)


def test_open_file_from_an_offset_sends_a_range(httpserver: HTTPServer):
    # RFC 9110 Range on the documented content endpoint, to resume a broken download.
    httpserver.expect_request(
        "/api/dms/objects/obj-1/contents/file", method="GET", headers={"Range": "bytes=5-"}
    ).respond_with_data(b"rest", status=206, headers={"Content-Range": "bytes 5-8/9"})
    file = ProcessFile(
        name="obj-1", size=9, content_type=None, process_instance_id="p-1", ref={"object_id": "obj-1"}
    )
    with make_hook(httpserver).open_file(file, offset=5) as reply:
        assert reply.status == 206 and b"".join(reply.iter_bytes(64)) == b"rest"
    request = httpserver.log[0][0]
    assert args(request) == {}
    assert_gateway_headers(request)


def test_open_file_errors(httpserver: HTTPServer):
    httpserver.expect_request("/api/dms/objects/obj-1/contents/file").respond_with_data("gone", status=404)
    hook = make_hook(httpserver)
    file = ProcessFile(
        name="x", size=None, content_type=None, process_instance_id="p", ref={"object_id": "obj-1"}
    )
    expected = "content of DMS object 'obj-1' does not exist or user 'clerk' may not read it"
    with pytest.raises(BpmNotFound, match=expected), hook.open_file(file):
        pass
    foreign = ProcessFile(name="x", size=None, content_type=None, process_instance_id="p", ref={"file_id": 1})
    with pytest.raises(BpmConfigError, match="no DMS object id"), hook.open_file(foreign):
        pass


# ---- a start whose answer was lost (the start operator's journal) --------------------------------


@pytest.mark.parametrize(("extra", "started_by"), [({}, USER_ID), ({"user_id": "u-7"}, "u-7")])
def test_find_unclaimed_starts_asks_for_own_starts_since_then_and_drops_keyed_ones(
    httpserver: HTTPServer, extra: dict[str, Any], started_by: str
):
    # Seed 002: processDefinitionKey, startedBy (a userId, like startUserId; a non-admin may name
    # only themselves), startedAfter. Without extra user_id the id comes from GET idm/me.
    httpserver.expect_request(ME, method="GET").respond_with_json(me_answer())
    httpserver.expect_request(PROCESSES).respond_with_json(
        page([process("p-1", businessKey=None), process("p-2", businessKey="bk-2")], False)
    )

    found = make_hook(httpserver, **extra).find_unclaimed_starts(
        "twosteptest_proc", datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    )

    assert [p.id for p in found] == ["p-1"]
    if not extra:
        (me, _) = httpserver.log.pop(0)
        assert me.method == "GET" and me.path == ME and not me.args
        assert_gateway_headers(me)
    (request, _) = httpserver.log[0]
    assert request.method == "GET" and request.path == PROCESSES
    assert_gateway_headers(request)
    assert args(request) == {
        "processDefinitionKey": ["twosteptest_proc"],
        "startedBy": [started_by],
        "startedAfter": ["2024-05-01T08:00:00.000Z"],
        "page": ["0"],
        "size": ["1000"],
    }


@pytest.mark.parametrize(
    "answer",
    [
        lambda r: r.respond_with_json({"status": 404, "message": "Not Found"}, status=404),
        lambda r: r.respond_with_json({"status": 403, "message": "Forbidden"}, status=403),
        lambda r: r.respond_with_json({"username": LOGIN}),
        lambda r: r.respond_with_json({"id": "", "username": LOGIN}),
    ],
)
def test_without_a_user_id_the_login_is_never_sent_as_started_by(httpserver: HTTPServer, answer):
    answer(httpserver.expect_request(ME, method="GET"))
    hook = make_hook(httpserver)
    with pytest.raises(BpmConfigError, match="set extra field 'user_id'"):
        hook.find_unclaimed_starts("twosteptest_proc", datetime(2024, 5, 1, 8, 0, tzinfo=UTC))
    with pytest.raises(BpmConfigError, match="not the login name"):
        hook.claim_task("t-8")
    assert {r.path for r, _ in httpserver.log} == {ME}  # no list, no claim went out


def test_refused_credentials_on_idm_me_stay_an_auth_error(httpserver: HTTPServer):
    httpserver.expect_request(ME, method="GET").respond_with_json(
        {"status": 401, "message": "Unauthorized"}, status=401
    )
    with pytest.raises(BpmAuthError):
        make_hook(httpserver).find_unclaimed_starts("twosteptest_proc", datetime(2024, 5, 1, tzinfo=UTC))


def test_page_size_extra_asks_for_smaller_pages(httpserver: HTTPServer):
    httpserver.expect_request(TASKS, query_string={"page": "0", "size": "25"}).respond_with_json(
        page([{"id": "t-1"}], False)
    )
    assert [t.id for t in make_hook(httpserver, page_size=25).list_tasks()] == ["t-1"]
    with pytest.raises(BpmConfigError, match="page_size must be a positive integer"):
        _ = make_hook(httpserver, page_size="none").page_size


# ---- batched reads for triggers ---------------------------------------------------------------


def test_batched_read_lists_the_running_processes_of_each_definition(httpserver: HTTPServer):
    # Seed 002: GET processes has no id filter; processDefinitionKey, isCompleted (false: only
    # running ones), page (0-based) and size; page until hasMoreItems is false.
    httpserver.expect_ordered_request(f"{PROCESSES}", method="GET").respond_with_json(
        page([process("p-1"), process("p-9")], True)
    )
    httpserver.expect_ordered_request(f"{PROCESSES}", method="GET").respond_with_json(
        page([process("p-2")], False)
    )
    hook = make_hook(httpserver)
    found = hook._run(hook._poll_processes_flow(["p-1", "p-2", "p-3"], ["twosteptest_proc"]))
    httpserver.check_assertions()
    first, second = (r for r, _ in httpserver.log)
    for number, sent in enumerate((first, second)):
        assert_gateway_headers(sent)
        assert args(sent) == {
            "processDefinitionKey": ["twosteptest_proc"],
            "isCompleted": ["false"],
            "page": [str(number)],
            "size": ["1000"],
        }
    assert sorted(found) == ["p-1", "p-2"]  # p-3 is not running any more: for a single read
    assert found["p-2"].state is ProcessState.RUNNING


def test_batched_read_finds_the_processes_just_completed_among_the_newest(httpserver: HTTPServer):
    # Seed 002: isCompleted=true returns only completed processes; sort=desc (default asc).
    httpserver.expect_ordered_request(f"{PROCESSES}", method="GET").respond_with_json(
        page([process("p-1")], False)
    )
    done = {"endTime": "2021-11-01T13:00:00.000Z"}
    httpserver.expect_ordered_request(f"{PROCESSES}", method="GET").respond_with_json(
        page([process("p-3", **done), process("p-2", **done), process("p-0", **done)], False)
    )
    hook = make_hook(httpserver)
    found = hook._run(hook._poll_processes_flow(["p-1", "p-2", "p-3"], ["twosteptest_proc"]))
    httpserver.check_assertions()
    _, completed = (r for r, _ in httpserver.log)
    assert args(completed) == {
        "processDefinitionKey": ["twosteptest_proc"],
        "isCompleted": ["true"],
        "sort": ["desc"],
        "page": ["0"],
        "size": ["1000"],
    }
    assert sorted(found) == ["p-1", "p-2", "p-3"]
    assert found["p-1"].state is ProcessState.RUNNING
    assert found["p-3"].ended and found["p-3"].ended_at is not None


def test_batched_task_read_lists_each_definitions_tasks(httpserver: HTTPServer):
    # bpm-api-reference (yuuvis): GET tasks?processDefinitionKey=..&page&size, objects/hasMoreItems.
    httpserver.expect_request(TASKS, method="GET").respond_with_json(
        page([{"id": "t-1", "name": "Approve", "processInstanceId": "p-1"}], False)
    )
    hook = make_hook(httpserver)
    found = hook._run(
        hook._poll_tasks_flow({"p-1": "twosteptest_proc", "p-2": "twosteptest_proc"}, "Approve")
    )
    (sent,) = (r for r, _ in httpserver.log)
    assert_gateway_headers(sent)
    assert args(sent) == {
        "processDefinitionKey": ["twosteptest_proc"],
        "name": ["Approve"],
        "page": ["0"],
        "size": ["1000"],
    }
    assert [t.id for t in found["p-1"]] == ["t-1"] and found["p-2"] == []
