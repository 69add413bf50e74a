"""BonitaHook against a fake server: every request it sends is pinned to Bonita's documentation.

Where each expectation comes from (Bonita OpenAPI spec, ``openapi/paths/*.yaml`` and
``components/*``, plus seed 001 = Bonita's "Data and Documents" page):

- login: paths/loginservice.yaml + components/schemas/LoginRequest.yaml (form fields username,
  password, redirect="false"; 204; cookies JSESSIONID and X-Bonita-API-Token); the token goes back
  as the HTTP header X-Bonita-API-Token (securitySchemes/bonita_token.yaml) on every call: the
  global ``security`` of openapi.yaml asks for bonita_auth AND bonita_token on each operation but
  the login (loginservice.yaml: ``security: []``); loginservice.yaml says POST/PUT/DELETE must have it.
- logout: paths/logoutservice.yaml (GET, query redirect=false).
- search: components/parameters/pageIndex|pageCount|pageFilter|pageOrder|pageSearch.yaml (p, c,
  repeated f=name=value, o, s); the total in the Content-Range header.
- errors: components/schemas/Error.yaml {message, exception, explanations[]}.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlencode

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
from airflow_bpm_provider.hooks.bonita import BonitaHook
from airflow_bpm_provider.hooks.retry import RetryPolicy
from airflow_bpm_provider.models import ProcessFile, ProcessState

PASSWORD = "Pw-bonita-never-leak-4417"
USER = "walter.bates"
TOKEN = "csrf-token-1111"
BASE = "/bonita"


# ---- fake server helpers --------------------------------------------------------------------


class FakeBonita:
    """Registers the login service and records what each request carried."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.logins: list[WRequest] = []
        self.tokens = iter([TOKEN, "csrf-token-2222", "csrf-token-3333"])
        self.sessions = iter(["S1", "S2", "S3"])

    def accept_logins(self, *, status: int = 204, body: str = "") -> None:
        def login(request: WRequest) -> Response:
            self.logins.append(request)
            response = Response(body, status=status)
            if status == 204:
                response.headers.add(
                    "Set-Cookie", f"JSESSIONID={next(self.sessions)}; Path=/bonita; HttpOnly"
                )
                response.headers.add("Set-Cookie", f"X-Bonita-API-Token={next(self.tokens)}; Path=/bonita")
            return response

        self.server.expect_request(f"{BASE}/loginservice", method="POST").respond_with_handler(login)

    def requests(self, path_part: str = "/API/") -> list[WRequest]:
        return [request for request, _ in self.server.log if path_part in request.path]


def make_hook(server: HTTPServer, sleeps: list[float] | None = None, **extra: Any) -> BonitaHook:
    conn = Connection(
        conn_id="bonita_test",
        conn_type="bonita",
        host=server.url_for(BASE),
        login=USER,
        password=PASSWORD,
        extra=extra or None,
    )
    return BonitaHook(
        "bonita_test",
        connection=conn,
        retry_policy=RetryPolicy(initial_delay=0.0, max_attempts=3),
        sleep=(sleeps.append if sleeps is not None else (lambda _s: None)),
    )


def qs(*pairs: tuple[str, Any]) -> str:
    """The query string of ``pairs`` in order, form-encoded (``=`` inside an f value is %3D)."""
    return urlencode(pairs)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json", headers=headers)


@pytest.fixture
def bonita(httpserver: HTTPServer) -> FakeBonita:
    fake = FakeBonita(httpserver)
    fake.accept_logins()
    return fake


CASE = {
    "id": "1001",
    "state": "started",
    "start": "2024-03-01 10:15:30.123",
    "end_date": "",
    "started_by": "4",
    "rootCaseId": "1001",
    "processDefinitionId": {
        "id": "8801",
        "name": "Expense report",
        "version": "2.0",
        "displayName": "Expenses",
    },
}


# ---- session auth -----------------------------------------------------------------------------


def test_login_form_cookies_and_token_header_on_every_call(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/case/1001", method="GET").respond_with_json(CASE)
    httpserver.expect_request(f"{BASE}/API/bpm/humanTask/77", method="PUT").respond_with_data("")
    httpserver.expect_request(f"{BASE}/API/bpm/case/1001", method="DELETE").respond_with_data("")
    httpserver.expect_request(
        f"{BASE}/logoutservice", method="GET", query_string="redirect=false"
    ).respond_with_data("")

    with make_hook(httpserver) as hook:
        assert hook.get_process("1001").state is ProcessState.RUNNING
        hook.claim_task("77", "4")
        hook.delete_case("1001")

    # loginservice.yaml: urlencoded username, password, redirect=false; exactly once.
    (login,) = bonita.logins
    assert login.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert login.get_data(as_text=True) == qs(
        ("username", USER), ("password", PASSWORD), ("redirect", "false")
    )
    assert "X-Bonita-API-Token" not in login.headers and "Authorization" not in login.headers

    get, put, delete = bonita.requests()
    for request in (get, put, delete):
        assert request.cookies["JSESSIONID"] == "S1"
        assert "Authorization" not in request.headers
    # openapi.yaml's global security: session cookie and token header on every operation (GETs
    # too); loginservice.yaml: every POST/PUT/DELETE must carry the header.
    assert get.headers["X-Bonita-API-Token"] == TOKEN
    assert put.headers["X-Bonita-API-Token"] == TOKEN
    assert delete.headers["X-Bonita-API-Token"] == TOKEN
    assert json.loads(put.get_data()) == {"assigned_id": "4"}

    (logout,) = [r for r, _ in httpserver.log if r.path == f"{BASE}/logoutservice"]
    assert logout.args.to_dict(flat=False) == {"redirect": ["false"]}
    assert logout.cookies["JSESSIONID"] == "S1"
    assert logout.headers["X-Bonita-API-Token"] == TOKEN  # logoutservice.yaml has no security override
    httpserver.check_assertions()


def test_tenant_from_extra_is_sent_at_login(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/system/session/unusedId").respond_with_json(
        {"user_id": "4", "user_name": USER, "version": "2025.1"}
    )
    hook = make_hook(httpserver, tenant="2")
    ok, message = hook.test_connection()
    assert ok, message
    assert message == "Logged in to Bonita 2025.1 as 'walter.bates' (user id 4)"
    assert bonita.logins[0].get_data(as_text=True) == qs(
        ("username", USER), ("password", PASSWORD), ("redirect", "false"), ("tenant", "2")
    )


def test_refused_login_names_user_and_connection_never_the_password(httpserver: HTTPServer, logs):
    FakeBonita(httpserver).accept_logins(status=401, body=f'{{"message": "Bad credentials for {PASSWORD}"}}')
    hook = make_hook(httpserver)
    with pytest.raises(BpmAuthError) as info:
        hook.get_process("1001")
    text = str(info.value)
    assert "walter.bates" in text and "bonita_test" in text and "POST /loginservice" in text
    assert "HTTP 401" in text
    assert "Bad credentials for ***" in text  # the server's echo of the password is scrubbed
    assert PASSWORD not in text and PASSWORD not in logs()
    # The login is not repeated and the API never called without a session.
    assert [r.path for r, _ in httpserver.log] == [f"{BASE}/loginservice"]


def test_login_answer_other_than_204_is_refused(httpserver: HTTPServer):
    # A proxy or SSO page answering 200 with HTML is not a Bonita session.
    FakeBonita(httpserver).accept_logins(status=200, body="<html>login page</html>")
    with pytest.raises(BpmAuthError, match="expected HTTP 204, got 200"):
        make_hook(httpserver).get_process("1001")


def test_expired_session_logs_in_again_once_and_repeats(httpserver: HTTPServer, bonita: FakeBonita):
    calls: list[WRequest] = []

    def case(request: WRequest) -> Response:
        calls.append(request)
        if len(calls) == 1:
            return json_response({"message": "session expired"}, status=401)
        return json_response(CASE)

    httpserver.expect_request(f"{BASE}/API/bpm/case/1001", method="GET").respond_with_handler(case)
    httpserver.expect_request(f"{BASE}/API/bpm/case/1001", method="PUT").respond_with_data("")
    hook = make_hook(httpserver)
    assert hook.get_process("1001").id == "1001"
    hook.cancel_process("1001")

    assert len(bonita.logins) == 2
    assert [c.cookies["JSESSIONID"] for c in calls] == ["S1", "S2"]
    assert [c.headers["X-Bonita-API-Token"] for c in calls] == [TOKEN, "csrf-token-2222"]
    (put,) = [r for r in bonita.requests() if r.method == "PUT"]
    assert put.cookies["JSESSIONID"] == "S2"
    assert put.headers["X-Bonita-API-Token"] == "csrf-token-2222"  # the new session's token
    assert json.loads(put.get_data()) == {"state": "cancelled"}  # ProcessInstanceUpdateRequest.yaml


def test_session_refused_twice_fails_with_auth_error(httpserver: HTTPServer, bonita: FakeBonita, logs):
    httpserver.expect_request(f"{BASE}/API/bpm/case/1001").respond_with_json(
        {"message": "Unauthorized"}, status=401
    )
    with pytest.raises(BpmAuthError) as info:
        make_hook(httpserver).get_process("1001")
    assert "authentication failed" in str(info.value) and "GET /API/bpm/case/1001" in str(info.value)
    assert len(bonita.logins) == 2  # one login, one renewal, then the error
    assert len(bonita.requests()) == 2
    text = logs()
    assert "session expired" in text  # the renewal is logged
    assert PASSWORD not in str(info.value) and PASSWORD not in text
    assert TOKEN not in text and "csrf-token-2222" not in text


def test_bearer_token_needs_no_session(httpserver: HTTPServer):
    httpserver.expect_request(f"{BASE}/API/bpm/case/1001").respond_with_json(CASE)
    httpserver.expect_request(f"{BASE}/API/bpm/userTask/9/execution", method="POST").respond_with_data(
        "", status=204
    )
    with make_hook(httpserver, auth_type="bearer") as hook:
        hook.get_process("1001")
        hook.complete_task("9", {"approved": True})
    paths = [r.path for r, _ in httpserver.log]
    assert paths == [
        f"{BASE}/API/bpm/case/1001",
        f"{BASE}/API/bpm/userTask/9/execution",
    ]  # no login, no logout
    for request, _ in httpserver.log:
        assert request.headers["Authorization"] == f"Bearer {PASSWORD}"
        assert "X-Bonita-API-Token" not in request.headers


def test_refused_bearer_token_is_not_retried(httpserver: HTTPServer):
    httpserver.expect_request(f"{BASE}/API/bpm/case/1001").respond_with_json(
        {"message": "Unauthorized"}, status=401
    )
    with pytest.raises(BpmAuthError):
        make_hook(httpserver, auth_type="bearer").get_process("1001")
    assert len(httpserver.log) == 1


def test_logout_failure_is_logged_not_raised(httpserver: HTTPServer, bonita: FakeBonita, logs):
    httpserver.expect_request(f"{BASE}/API/bpm/case/1001").respond_with_json(CASE)
    httpserver.expect_request(f"{BASE}/logoutservice").respond_with_data("boom", status=500)
    with make_hook(httpserver) as hook:
        hook.get_process("1001")
    assert "Bonita logout for connection 'bonita_test' answered HTTP 500" in logs()


# ---- searches and paging -------------------------------------------------------------------------


def test_search_pages_with_p_c_repeated_f_o_s_and_content_range(httpserver: HTTPServer, bonita: FakeBonita):
    rows = [{"id": str(i)} for i in range(5)]
    for page in range(3):
        httpserver.expect_oneshot_request(
            f"{BASE}/API/bpm/case",
            query_string=qs(
                ("p", page),
                ("c", 2),
                ("f", "processDefinitionId=8801"),
                ("f", "started_by=4"),
                ("o", "id ASC"),
                ("s", "exp"),
                ("d", "processDefinitionId"),
            ),
        ).respond_with_response(
            json_response(rows[page * 2 : page * 2 + 2], headers={"Content-Range": f"{page * 2}-2/5"})
        )
    hook = make_hook(httpserver)
    found = hook.search(
        "bpm/case",
        filters=[("processDefinitionId", "8801"), ("started_by", "4")],
        order="id ASC",
        search="exp",
        deploy=["processDefinitionId"],
        page_size=2,
    )
    assert [r["id"] for r in found] == ["0", "1", "2", "3", "4"]
    searched = bonita.requests()
    assert [r.args.getlist("p") for r in searched] == [["0"], ["1"], ["2"]]
    assert searched[0].args.getlist("f") == ["processDefinitionId=8801", "started_by=4"]
    assert b"f=processDefinitionId%3D8801" in searched[0].query_string  # the "=" inside f is URL-encoded
    httpserver.check_assertions()


def test_search_trusts_the_total_when_the_server_caps_the_page(httpserver: HTTPServer, bonita: FakeBonita):
    # Asked for 5 per page, the server sends 2 and a total of 3: a second page is still needed.
    httpserver.expect_oneshot_request(
        f"{BASE}/API/bpm/caseDocument", query_string=qs(("p", 0), ("c", 5))
    ).respond_with_response(json_response([{"id": "1"}, {"id": "2"}], headers={"Content-Range": "0-2/3"}))
    httpserver.expect_oneshot_request(
        f"{BASE}/API/bpm/caseDocument", query_string=qs(("p", 1), ("c", 5))
    ).respond_with_response(json_response([{"id": "3"}], headers={"Content-Range": "1-1/3"}))
    assert len(list(make_hook(httpserver).search("bpm/caseDocument", page_size=5))) == 3


def test_search_without_content_range_stops_at_a_short_page(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_oneshot_request(
        f"{BASE}/API/bpm/process", query_string=qs(("p", 0), ("c", 2))
    ).respond_with_json([{"id": "1"}, {"id": "2"}])
    httpserver.expect_oneshot_request(
        f"{BASE}/API/bpm/process", query_string=qs(("p", 1), ("c", 2))
    ).respond_with_json([{"id": "3"}])
    assert [r["id"] for r in make_hook(httpserver).search("bpm/process", page_size=2)] == ["1", "2", "3"]
    httpserver.check_assertions()


def test_count_reads_content_range(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(
        f"{BASE}/API/bpm/humanTask", query_string=qs(("p", 0), ("c", 1), ("f", "state=ready"))
    ).respond_with_response(json_response([{"id": "1"}], headers={"Content-Range": "0-1/42"}))
    hook = make_hook(httpserver)
    assert hook.count("bpm/humanTask", filters={"state": "ready"}) == 42
    # The resource is written as search() takes it: a leading "API/" (or "/API/") is not doubled.
    assert hook.count("API/bpm/humanTask", filters={"state": "ready"}) == 42
    assert hook.count("/API/bpm/humanTask/", filters={"state": "ready"}) == 42
    assert {r.path for r in bonita.requests()} == {f"{BASE}/API/bpm/humanTask"}


# ---- processes and starting -----------------------------------------------------------------------

DEFINITION = {"id": "8801", "name": "Expense report", "version": "2.0", "activationState": "ENABLED"}


def latest_enabled(name: str) -> str:
    # API@bpm@process.yaml: filter name + activationState=ENABLED, order on deploymentDate.
    return qs(
        ("p", 0),
        ("c", 1),
        ("f", f"name={name}"),
        ("f", "activationState=ENABLED"),
        ("o", "deploymentDate DESC"),
    )


LATEST_ENABLED_EXPENSE = latest_enabled("Expense report")
ALL_PROCESSES = qs(("p", 0), ("c", 1000), ("o", "name ASC"))


def test_start_finds_latest_enabled_version_then_instantiates_with_contract(
    httpserver: HTTPServer, bonita: FakeBonita
):
    # API@bpm@process.yaml: filter name + activationState=ENABLED, order on deploymentDate.
    httpserver.expect_oneshot_request(
        f"{BASE}/API/bpm/process",
        method="GET",
        query_string=LATEST_ENABLED_EXPENSE,
    ).respond_with_json([DEFINITION])
    # API@bpm@process@{id}@instantiation.yaml: body = contract inputs, 201 {"caseId"}.
    httpserver.expect_oneshot_request(
        f"{BASE}/API/bpm/process/8801/instantiation", method="POST"
    ).respond_with_json({"caseId": "1001"}, status=201)
    hook = make_hook(httpserver)
    instance = hook.start_process(
        "Expense report", variables={"amount": 12.5, "day": date(2024, 3, 1), "items": ("a", "b")}
    )
    assert instance.id == "1001"
    assert instance.state is ProcessState.RUNNING
    assert instance.definition == "8801" and instance.definition_name == "Expense report"
    assert instance.url == httpserver.url_for("/bonita/portal/form/processInstance/1001")
    (post,) = [r for r in bonita.requests() if r.method == "POST"]
    assert post.headers["Content-Type"] == "application/json"
    assert post.get_json() == {"amount": 12.5, "day": "2024-03-01", "items": ["a", "b"]}
    assert post.headers["X-Bonita-API-Token"] == TOKEN
    httpserver.check_assertions()


def test_start_with_name_at_version_and_with_numeric_id(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_oneshot_request(
        f"{BASE}/API/bpm/process",
        query_string=qs(
            ("p", 0),
            ("c", 1),
            ("f", "name=Expense report"),
            ("f", "version=1.0"),
            ("o", "deploymentDate DESC"),
        ),
    ).respond_with_json([{**DEFINITION, "id": "7701", "version": "1.0"}])
    httpserver.expect_oneshot_request(
        f"{BASE}/API/bpm/process/7701/instantiation", method="POST"
    ).respond_with_json({"caseId": "5"})
    httpserver.expect_oneshot_request(f"{BASE}/API/bpm/process/8801", method="GET").respond_with_json(
        DEFINITION
    )
    httpserver.expect_oneshot_request(
        f"{BASE}/API/bpm/process/8801/instantiation", method="POST"
    ).respond_with_json({"caseId": "6"})
    hook = make_hook(httpserver)
    assert hook.start_process("Expense report@1.0").id == "5"
    assert hook.start_process("8801").id == "6"
    httpserver.check_assertions()


def test_disabled_version_is_refused_before_any_start(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/process").respond_with_json(
        [{**DEFINITION, "activationState": "DISABLED"}]
    )
    with pytest.raises(BpmConfigError, match="is DISABLED"):
        make_hook(httpserver).start_process("Expense report@2.0")
    assert not [r for r in bonita.requests() if r.method == "POST"]


def test_unknown_process_name_lists_close_and_available_names(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(
        f"{BASE}/API/bpm/process", query_string=latest_enabled("Expense reprot")
    ).respond_with_json([])
    httpserver.expect_request(f"{BASE}/API/bpm/process", query_string=ALL_PROCESSES).respond_with_response(
        json_response(
            [
                {"name": "Expense report", "version": "1.0", "activationState": "ENABLED"},
                {"name": "Leave request", "version": "3.1", "activationState": "ENABLED"},
            ],
            headers={"Content-Range": "0-2/2"},
        )
    )
    with pytest.raises(BpmNotFound) as info:
        make_hook(httpserver).start_process("Expense reprot")
    text = str(info.value)
    assert "no process named 'Expense reprot'" in text
    assert "did you mean: Expense report" in text
    assert "Expense report, Leave request" in text


def test_known_name_without_enabled_version_lists_its_versions(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(
        f"{BASE}/API/bpm/process", query_string=latest_enabled("Leave")
    ).respond_with_json([])
    httpserver.expect_request(f"{BASE}/API/bpm/process", query_string=ALL_PROCESSES).respond_with_json(
        [{"name": "Leave", "version": "1.0", "activationState": "DISABLED"}]
    )
    with pytest.raises(BpmNotFound, match=r"has no enabled version[\s\S]*1.0 \(DISABLED\)"):
        make_hook(httpserver).get_process_definition("Leave")


def test_contract_violation_lists_every_explanation(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/process/8801").respond_with_json(DEFINITION)
    # The 400 example of API@bpm@process@{id}@instantiation.yaml.
    httpserver.expect_request(f"{BASE}/API/bpm/process/8801/instantiation", method="POST").respond_with_json(
        {
            "message": "USERNAME=walter.bates | Contract is not valid: ",
            "exception": "class org.bonitasoft.engine.bpm.contract.ContractViolationException",
            "explanations": [
                "Expected input [ticket_account] is missing",
                "Expected input [ticket_description] is missing",
                "Expected input [ticket_subject] is missing",
            ],
        },
        status=400,
    )
    with pytest.raises(BpmValidationError) as info:
        make_hook(httpserver).start_process("8801", variables={})
    error = info.value
    assert error.status == 400 and "Contract is not valid" in str(error)
    assert error.details == [
        "Expected input [ticket_account] is missing",
        "Expected input [ticket_description] is missing",
        "Expected input [ticket_subject] is missing",
    ]
    for detail in error.details:
        assert detail in str(error)
    # A start is never re-sent after a refusal.
    assert len([r for r in bonita.requests() if r.method == "POST"]) == 1


def test_case_creation_limit_429_waits_for_retry_after(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/process/8801").respond_with_json(DEFINITION)
    # 429 of API@bpm@process@{id}@instantiation.yaml: Retry-After, body {code, description, reasonPhrase}.
    httpserver.expect_oneshot_request(
        f"{BASE}/API/bpm/process/8801/instantiation", method="POST"
    ).respond_with_response(
        json_response(
            {
                "code": 429,
                "description": "Unable to start the process with ID 8801",
                "reasonPhrase": "Case creation limit reached.",
            },
            status=429,
            headers={"Retry-After": "7"},
        )
    )
    httpserver.expect_oneshot_request(
        f"{BASE}/API/bpm/process/8801/instantiation", method="POST"
    ).respond_with_json({"caseId": "1002"}, status=201)
    sleeps: list[float] = []
    assert make_hook(httpserver, sleeps).start_process("8801").id == "1002"
    assert sleeps == [7.0]
    httpserver.check_assertions()


def test_case_creation_limit_every_time_names_the_reason(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/process/8801").respond_with_json(DEFINITION)
    httpserver.expect_request(
        f"{BASE}/API/bpm/process/8801/instantiation", method="POST"
    ).respond_with_response(
        json_response(
            {"code": 429, "description": "Unable to start", "reasonPhrase": "Case creation limit reached."},
            status=429,
            headers={"Retry-After": "1"},
        )
    )
    from airflow_bpm_provider.exceptions import BpmRateLimited

    with pytest.raises(BpmRateLimited, match="Case creation limit reached"):
        make_hook(httpserver, []).start_process("8801")


def test_start_without_contract_posts_case_with_variables(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/process/8801").respond_with_json(DEFINITION)
    httpserver.expect_request(f"{BASE}/API/bpm/case", method="POST").respond_with_json(
        {**CASE, "processDefinitionId": "8801", "id": "1003"}
    )
    hook = make_hook(httpserver)
    instance = hook.start_process(
        "8801",
        variables={
            "stringVariable": "aValue",
            "dateVariable": datetime(1981, 1, 25, 5, 0, tzinfo=UTC),
            "n": 55,
        },
        via="case",
    )
    assert instance.id == "1003" and instance.definition == "8801"
    assert instance.started_at == datetime(2024, 3, 1, 10, 15, 30, 123000, tzinfo=UTC)
    (post,) = [r for r in bonita.requests() if r.method == "POST"]
    # ProcessInstanceCreateRequest.yaml: processDefinitionId + variables [{name, value}], dates in ms.
    assert post.get_json() == {
        "processDefinitionId": "8801",
        "variables": [
            {"name": "stringVariable", "value": "aValue"},
            {"name": "dateVariable", "value": 349246800000},
            {"name": "n", "value": 55},
        ],
    }


def test_business_key_needs_the_variable_extra(httpserver: HTTPServer, bonita: FakeBonita):
    hook = make_hook(httpserver)
    with pytest.raises(BpmConfigError, match="business_key_variable"):
        hook.start_process("8801", business_key="INV-1")
    with pytest.raises(NotImplementedError):
        hook.find_process_by_business_key("8801", "INV-1")
    assert bonita.requests() == []


def test_business_key_is_sent_as_the_configured_contract_input(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/process/8801").respond_with_json(DEFINITION)
    httpserver.expect_request(f"{BASE}/API/bpm/process/8801/instantiation", method="POST").respond_with_json(
        {"caseId": "9"}
    )
    instance = make_hook(httpserver, business_key_variable="invoiceRef").start_process(
        "8801", variables={"amount": 3}, business_key="INV-1"
    )
    assert instance.business_key == "INV-1"
    (post,) = [r for r in bonita.requests() if r.method == "POST"]
    assert post.get_json() == {"amount": 3, "invoiceRef": "INV-1"}


def newest_cases(order: str) -> str:
    # The process's cases, newest first: o=id DESC for cases; API@bpm@archivedCase.yaml lists
    # sourceObjectId (the case id) among the order fields of archived cases.
    return qs(("p", 0), ("c", 1000), ("f", "name=Expense report"), ("o", order), ("d", "processDefinitionId"))


def test_find_by_business_key_reads_the_variable_of_each_case(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/process/8801").respond_with_json(DEFINITION)
    httpserver.expect_request(f"{BASE}/API/bpm/case", query_string=newest_cases("id DESC")).respond_with_json(
        [{**CASE, "id": "12"}, {**CASE, "id": "11"}]
    )
    httpserver.expect_request(
        f"{BASE}/API/bpm/archivedCase", query_string=newest_cases("sourceObjectId DESC")
    ).respond_with_json([{**CASE, "id": "90", "sourceObjectId": "13", "state": "completed"}])
    httpserver.expect_request(f"{BASE}/API/bpm/caseVariable/11/invoiceRef").respond_with_json(
        {"name": "invoiceRef", "value": "INV-2", "type": "java.lang.String", "case_id": "11"}
    )
    httpserver.expect_request(f"{BASE}/API/bpm/caseVariable/12/invoiceRef").respond_with_json(
        {"name": "invoiceRef", "value": "INV-1", "type": "java.lang.String", "case_id": "12"}
    )
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCaseVariable/13/invoiceRef").respond_with_json(
        {"name": "invoiceRef", "value": "INV-1", "type": "java.lang.String", "case_id": "13"}
    )
    found = make_hook(httpserver, business_key_variable="invoiceRef").find_process_by_business_key(
        "8801", "INV-1"
    )
    # Case 13 is newer than the live match 12 (it started later and has ended already).
    assert found is not None and found.id == "13" and found.state is ProcessState.COMPLETED
    assert found.business_key == "INV-1"
    read = [r.path.rsplit("/API/bpm/", 1)[1] for r in bonita.requests("Variable/")]
    assert read == ["caseVariable/12/invoiceRef", "archivedCaseVariable/13/invoiceRef"]  # 11 is older


def test_find_by_business_key_scans_newest_first_so_a_retried_start_finds_its_case(
    httpserver: HTTPServer, bonita: FakeBonita
):
    # 5 cases; the newest (105) holds the key. With a scan limit of 2 an oldest-first scan never
    # reaches it and a retried start would create a second case.
    cases = [{**CASE, "id": str(101 + i)} for i in range(5)]

    def search(request: WRequest) -> Response:
        newest_first = request.args.get("o") == "id DESC"
        rows = list(reversed(cases)) if newest_first else cases
        page, count = int(request.args["p"]), int(request.args["c"])
        start = page * count
        chunk = rows[start : start + count]
        return json_response(
            chunk, headers={"Content-Range": f"{start}-{start + len(chunk) - 1}/{len(rows)}"}
        )

    def variable(request: WRequest) -> Response:
        case_id = request.path.split("/")[-2]
        return json_response(
            {"name": "invoiceRef", "type": "java.lang.String", "case_id": case_id,
             "value": "INV-9" if case_id == "105" else f"OTHER-{case_id}"}
        )  # fmt: skip

    httpserver.expect_request(f"{BASE}/API/bpm/process/8801").respond_with_json(DEFINITION)
    httpserver.expect_request(f"{BASE}/API/bpm/case").respond_with_handler(search)
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCase").respond_with_json([])
    httpserver.expect_request(re.compile(r".*/API/bpm/caseVariable/\d+/invoiceRef")).respond_with_handler(
        variable
    )
    hook = make_hook(httpserver, business_key_variable="invoiceRef", business_key_scan_limit=2)
    found = hook.find_process_by_business_key("8801", "INV-9")
    assert found is not None and found.id == "105" and found.state is ProcessState.RUNNING
    (live,) = [r for r in bonita.requests() if r.path == f"{BASE}/API/bpm/case"]
    assert live.args.getlist("o") == ["id DESC"]
    assert [r.path.rsplit("/", 2)[1] for r in bonita.requests("caseVariable/")] == ["105"]
    # An archived case may be newer than the live match, so archived cases are searched too.
    (archived,) = [r for r in bonita.requests() if r.path == f"{BASE}/API/bpm/archivedCase"]
    assert archived.args.getlist("o") == ["sourceObjectId DESC"]


def test_find_by_business_key_reads_a_live_case_in_error_from_case_variables(
    httpserver: HTTPServer, bonita: FakeBonita
):
    # A live case in state "error" maps to FAILED (an ended state) but is still live: its key is a
    # caseVariable, not an archivedCaseVariable.
    httpserver.expect_request(f"{BASE}/API/bpm/process/8801").respond_with_json(DEFINITION)
    httpserver.expect_request(f"{BASE}/API/bpm/case").respond_with_json(
        [{**CASE, "id": "21", "state": "error"}]
    )
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCase").respond_with_json([])
    httpserver.expect_request(f"{BASE}/API/bpm/caseVariable/21/invoiceRef").respond_with_json(
        {"name": "invoiceRef", "value": "INV-5", "type": "java.lang.String", "case_id": "21"}
    )
    hook = make_hook(httpserver, business_key_variable="invoiceRef")
    found = hook.find_process_by_business_key("8801", "INV-5")
    assert found is not None and found.id == "21" and found.state is ProcessState.FAILED
    assert bonita.requests("archivedCaseVariable") == []


def test_find_by_business_key_returns_none_when_no_case_has_it(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/process/8801").respond_with_json(DEFINITION)
    httpserver.expect_request(f"{BASE}/API/bpm/case").respond_with_json([{**CASE, "id": "11"}])
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCase").respond_with_json([])
    httpserver.expect_request(f"{BASE}/API/bpm/caseVariable/11/invoiceRef").respond_with_json(
        {"message": "not found"}, status=404
    )
    hook = make_hook(httpserver, business_key_variable="invoiceRef")
    assert hook.find_process_by_business_key("8801", "INV-1") is None


# ---- cases ------------------------------------------------------------------------------------------


def test_get_process_expands_the_definition_name(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(
        f"{BASE}/API/bpm/case/1001", query_string=qs(("d", "processDefinitionId"))
    ).respond_with_json(CASE)
    instance = make_hook(httpserver, timezone="Europe/Paris").get_process("1001")
    assert instance.definition == "8801" and instance.definition_name == "Expense report"
    assert instance.raw_state == "started" and instance.ended_at is None
    assert instance.started_at is not None and instance.started_at.utcoffset().total_seconds() == 3600
    httpserver.check_assertions()


def test_get_process_falls_back_to_the_archived_case_after_404(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/case/1001").respond_with_json(
        {"message": "not found"}, status=404
    )
    # The case-overview tutorial: archivedCase?p=0&c=1&f=sourceObjectId={caseId} (+ the definition).
    httpserver.expect_request(
        f"{BASE}/API/bpm/archivedCase",
        query_string=qs(("p", 0), ("c", 1), ("f", "sourceObjectId=1001"), ("d", "processDefinitionId")),
    ).respond_with_json(
        [
            {
                **CASE,
                "id": "5005",
                "sourceObjectId": "1001",
                "state": "completed",
                "end_date": "2024-03-02 08:00:00.000",
            }
        ]
    )
    instance = make_hook(httpserver).get_process("1001")
    assert instance.id == "1001"  # the case id, not the archive record's id
    assert instance.state is ProcessState.COMPLETED and instance.ended
    assert instance.ended_at == datetime(2024, 3, 2, 8, 0, tzinfo=UTC)


def test_get_process_reads_the_business_key_variable_live_and_archived(
    httpserver: HTTPServer, bonita: FakeBonita
):
    # API@bpm@caseVariable@{id}@{variableName}.yaml (live) and archivedCaseVariable (ended, 2022.1+)
    httpserver.expect_request(f"{BASE}/API/bpm/case/1001").respond_with_json(CASE)
    httpserver.expect_request(f"{BASE}/API/bpm/caseVariable/1001/invoiceRef").respond_with_json(
        {
            "name": "invoiceRef",
            "value": "INV-1",
            "type": "java.lang.String",
            "case_id": "1001",
            "description": "",
        }
    )
    httpserver.expect_request(f"{BASE}/API/bpm/case/1002").respond_with_json(
        {"message": "not found"}, status=404
    )
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCase").respond_with_json(
        [{**CASE, "id": "5005", "sourceObjectId": "1002", "state": "completed"}]
    )
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCaseVariable/1002/invoiceRef").respond_with_json(
        {"name": "invoiceRef", "value": "INV-2", "type": "java.lang.String", "case_id": "1002"}
    )
    httpserver.expect_request(f"{BASE}/API/bpm/case/1003").respond_with_json({**CASE, "id": "1003"})
    httpserver.expect_request(f"{BASE}/API/bpm/caseVariable/1003/invoiceRef").respond_with_json(
        {"message": "not found"}, status=404
    )
    hook = make_hook(httpserver, business_key_variable="invoiceRef")
    assert hook.get_process("1001").business_key == "INV-1"
    assert hook.get_process("1002").business_key == "INV-2"
    assert hook.get_process("1003").business_key is None  # a case without the variable has no key
    assert asyncio.run(hook.aget_process("1001")).business_key == "INV-1"  # the triggers' twin
    assert make_hook(httpserver).get_process("1001").business_key is None  # no variable named


def test_waits_read_the_case_state_without_the_key_variable(httpserver: HTTPServer, bonita: FakeBonita):
    # A sensor poke or a trigger's single read needs the state only: one GET case/{id}, no
    # caseVariable read, even with business_key_variable set (that would double every poll).
    httpserver.expect_request(f"{BASE}/API/bpm/case/1001").respond_with_json(CASE)
    hook = make_hook(httpserver, business_key_variable="invoiceRef")
    httpserver.log.clear()
    assert hook.get_process("1001", with_business_key=False).state is ProcessState.RUNNING
    assert asyncio.run(hook.aget_process("1001", with_business_key=False)).id == "1001"
    paths = [request.path for request, _ in httpserver.log]
    assert paths.count(f"{BASE}/API/bpm/case/1001") == 2
    assert not [path for path in paths if "Variable" in path], paths


def test_a_search_index_gives_the_key_and_a_one_search_lookup(httpserver: HTTPServer, bonita: FakeBonita):
    # API@bpm@case.yaml / API@bpm@archivedCase.yaml: f=searchIndexNValue=.. (since 10.3 - 2025.1);
    # ProcessInstance.yaml: searchIndexNLabel / searchIndexNValue on every case.
    indexed = {**CASE, "searchIndex2Label": "invoiceRef", "searchIndex2Value": "INV-7"}
    httpserver.expect_request(f"{BASE}/API/bpm/process/8801").respond_with_json(DEFINITION)
    httpserver.expect_request(
        f"{BASE}/API/bpm/case",
        query_string=qs(
            ("p", 0),
            ("c", 1),
            ("f", "name=Expense report"),
            ("f", "searchIndex2Value=INV-7"),
            ("o", "id DESC"),
            ("d", "processDefinitionId"),
        ),
    ).respond_with_json([{**indexed, "id": "12"}], headers={"Content-Range": "0-0/3"})
    httpserver.expect_request(
        f"{BASE}/API/bpm/archivedCase",
        query_string=qs(
            ("p", 0),
            ("c", 1),
            ("f", "name=Expense report"),
            ("f", "searchIndex2Value=INV-7"),
            ("o", "sourceObjectId DESC"),
            ("d", "processDefinitionId"),
        ),
    ).respond_with_json([{**indexed, "id": "90", "sourceObjectId": "9", "state": "completed"}])
    httpserver.expect_request(f"{BASE}/API/bpm/case/12").respond_with_json({**indexed, "id": "12"})
    hook = make_hook(httpserver, business_key_variable="invoiceRef", business_key_search_index="2")
    found = hook.find_process_by_business_key("8801", "INV-7")
    assert found is not None and (found.id, found.business_key) == ("12", "INV-7")  # newer than 9
    searches = [r for r in bonita.requests() if r.path.endswith(("/bpm/case", "/bpm/archivedCase"))]
    assert len(searches) == 2 and bonita.requests("Variable") == []  # not one request per case
    assert hook.get_process("12").business_key == "INV-7"  # read from the case: no variable request
    assert bonita.requests("Variable") == []
    with pytest.raises(BpmConfigError, match="1 to 5"):
        make_hook(httpserver, business_key_variable="invoiceRef", business_key_search_index=6).get_process(
            "12"
        )


def test_find_processes_by_business_key_filters_on_the_search_index(
    httpserver: HTTPServer, bonita: FakeBonita
):
    # API@bpm@case.yaml / API@bpm@archivedCase.yaml: f=searchIndexNValue=.. (since 10.3 - 2025.1)
    indexed = {**CASE, "searchIndex1Label": "invoiceRef", "searchIndex1Value": "INV-7"}
    httpserver.expect_request(f"{BASE}/API/bpm/case").respond_with_json([indexed])
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCase").respond_with_json([])
    hook = make_hook(httpserver, business_key_variable="invoiceRef", business_key_search_index=1)
    (found,) = hook.find_processes(business_key="INV-7")
    assert (found.id, found.business_key) == ("1001", "INV-7")
    searches = [r for r in bonita.requests() if r.path.endswith(("/bpm/case", "/bpm/archivedCase"))]
    assert [r.args.getlist("f") for r in searches] == [["searchIndex1Value=INV-7"]] * 2
    assert bonita.requests("Variable") == []


def test_case_unknown_live_and_archived_is_not_found(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/case/404").respond_with_json(
        {"message": "not found"}, status=404
    )
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCase").respond_with_json([])
    with pytest.raises(BpmNotFound, match="no case 404: neither a live case nor an archived one"):
        make_hook(httpserver).get_process("404")


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("initializing", ProcessState.RUNNING),
        ("started", ProcessState.RUNNING),
        ("completing", ProcessState.RUNNING),
        ("suspended", ProcessState.SUSPENDED),
        ("completed", ProcessState.COMPLETED),
        ("cancelled", ProcessState.CANCELLED),
        ("aborted", ProcessState.CANCELLED),
        ("aborting", ProcessState.CANCELLED),
        ("error", ProcessState.FAILED),
    ],
)
def test_every_bonita_case_state_maps(httpserver: HTTPServer, bonita: FakeBonita, raw, state):
    httpserver.expect_request(f"{BASE}/API/bpm/case/1001").respond_with_json({**CASE, "state": raw})
    instance = make_hook(httpserver).get_process("1001")
    assert instance.state is state and instance.raw_state == raw


def test_unknown_case_state_is_an_error_not_a_guess(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/case/1001").respond_with_json({**CASE, "state": "hibernating"})
    with pytest.raises(BpmServerError, match="unknown state 'hibernating'"):
        make_hook(httpserver).get_process("1001")


def test_async_get_process_logs_in_and_falls_back(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/case/1001").respond_with_json({"message": "gone"}, status=404)
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCase").respond_with_json(
        [{**CASE, "sourceObjectId": "1001", "state": "cancelled"}]
    )
    httpserver.expect_request(f"{BASE}/logoutservice").respond_with_data("")
    hook = make_hook(httpserver)

    async def run() -> Any:
        try:
            return await hook.aget_process("1001")
        finally:
            await hook.aclose()

    instance = asyncio.run(run())
    assert instance.state is ProcessState.CANCELLED
    case_call = next(r for r, _ in httpserver.log if r.path.endswith("/case/1001"))
    assert case_call.cookies["JSESSIONID"] == "S1"
    assert [r.path for r, _ in httpserver.log][-1] == f"{BASE}/logoutservice"


def test_find_processes_searches_live_then_archived_by_state(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(
        f"{BASE}/API/bpm/case",
        query_string=qs(
            ("p", 0),
            ("c", 1000),
            ("f", "name=Expense report"),
            ("f", "started_by=4"),
            ("d", "processDefinitionId"),
        ),
    ).respond_with_json([{**CASE, "id": "1"}, {**CASE, "id": "2", "state": "suspended"}])
    httpserver.expect_request(
        f"{BASE}/API/bpm/archivedCase",
        query_string=qs(
            ("p", 0),
            ("c", 1000),
            ("f", "name=Expense report"),
            ("f", "started_by=4"),
            ("d", "processDefinitionId"),
        ),
    ).respond_with_json(
        [
            {**CASE, "id": "50", "sourceObjectId": "3", "state": "completed"},
            {**CASE, "id": "51", "sourceObjectId": "3", "state": "completed"},
            {**CASE, "id": "52", "sourceObjectId": "4", "state": "error"},
        ]
    )
    hook = make_hook(httpserver)
    everything = hook.find_processes(definition="Expense report", started_by="4")
    assert [(p.id, p.state.value) for p in everything] == [
        ("1", "RUNNING"), ("2", "SUSPENDED"), ("3", "COMPLETED"), ("4", "FAILED"),
    ]  # fmt: skip
    before = len(bonita.requests())
    done = list(hook.find_processes(definition="Expense report", started_by="4", states=["COMPLETED"]))
    assert [p.id for p in done] == ["3"]
    # Only ended states asked: no search of live cases.
    assert all("archivedCase" in r.path for r in bonita.requests()[before:])
    with pytest.raises(BpmConfigError, match="'title'"):
        hook.find_processes(title="x")


def test_find_processes_failed_or_cancelled_also_searches_live_cases(
    httpserver: HTTPServer, bonita: FakeBonita
):
    # ProcessInstance.yaml: a live case can be in "error" (FAILED) or "aborting" (CANCELLED).
    httpserver.expect_request(
        f"{BASE}/API/bpm/case", query_string=qs(("p", 0), ("c", 1000), ("d", "processDefinitionId"))
    ).respond_with_json(
        [
            {**CASE, "id": "1"},
            {**CASE, "id": "2", "state": "error"},
            {**CASE, "id": "3", "state": "aborting"},
        ]
    )
    httpserver.expect_request(
        f"{BASE}/API/bpm/archivedCase", query_string=qs(("p", 0), ("c", 1000), ("d", "processDefinitionId"))
    ).respond_with_json(
        [
            {**CASE, "id": "60", "sourceObjectId": "4", "state": "error"},
            {**CASE, "id": "61", "sourceObjectId": "5", "state": "aborted"},
        ]
    )
    hook = make_hook(httpserver)
    assert [p.id for p in hook.find_processes(states=["FAILED"])] == ["2", "4"]
    assert [p.id for p in hook.find_processes(states=["CANCELLED"])] == ["3", "5"]
    assert [p.id for p in hook.find_processes(states=["RUNNING"])] == ["1"]
    paths = [r.path.rsplit("/", 1)[1] for r in bonita.requests()]
    assert paths == ["case", "archivedCase", "case", "archivedCase", "case"]


def test_find_processes_by_key_reads_live_failed_cases_from_case_variables(
    httpserver: HTTPServer, bonita: FakeBonita
):
    httpserver.expect_request(f"{BASE}/API/bpm/case").respond_with_json(
        [{**CASE, "id": "2", "state": "error"}]
    )
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCase").respond_with_json([])
    httpserver.expect_request(f"{BASE}/API/bpm/caseVariable/2/invoiceRef").respond_with_json(
        {"name": "invoiceRef", "value": "INV-7", "type": "java.lang.String", "case_id": "2"}
    )
    hook = make_hook(httpserver, business_key_variable="invoiceRef")
    found = list(hook.find_processes(states=["FAILED"], business_key="INV-7"))
    assert [(p.id, p.state) for p in found] == [("2", ProcessState.FAILED)]
    assert bonita.requests("archivedCaseVariable") == []


def test_find_processes_lists_a_case_that_ends_between_the_searches_once(
    httpserver: HTTPServer, bonita: FakeBonita
):
    # Case 7 is RUNNING when live cases are searched and archived COMPLETED by the second search.
    httpserver.expect_request(f"{BASE}/API/bpm/case").respond_with_json([{**CASE, "id": "7"}])
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCase").respond_with_json(
        [
            {**CASE, "id": "70", "sourceObjectId": "7", "state": "completed"},
            {**CASE, "id": "71", "sourceObjectId": "8", "state": "completed"},
        ]
    )
    hook = make_hook(httpserver)
    assert [(p.id, p.state.value) for p in hook.find_processes()] == [("7", "RUNNING"), ("8", "COMPLETED")]
    # A live case left out by the state filter is still found once it has ended.
    assert [p.id for p in hook.find_processes(states=["SUSPENDED", "COMPLETED"])] == ["7", "8"]


def test_cancel_of_an_ended_case_is_a_no_op(httpserver: HTTPServer, bonita: FakeBonita, logs):
    httpserver.expect_request(f"{BASE}/API/bpm/case/1001", method="PUT").respond_with_json(
        {"message": "nf"}, status=404
    )
    httpserver.expect_request(f"{BASE}/API/bpm/case/1001", method="GET").respond_with_json(
        {"message": "nf"}, status=404
    )
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCase").respond_with_json(
        [{**CASE, "sourceObjectId": "1001", "state": "completed"}]
    )
    make_hook(httpserver).cancel_process("1001")
    assert "already ended" in logs()


def test_ids_that_could_change_the_path_are_refused(httpserver: HTTPServer, bonita: FakeBonita):
    hook = make_hook(httpserver)
    with pytest.raises(BpmConfigError, match="case id"):
        hook.get_process("../../API/identity/user")
    with pytest.raises(BpmConfigError, match="task id"):
        hook.complete_task("1?assign=true", {})
    assert bonita.requests() == []


PATH_CALLS = {
    "case id": [
        lambda h, v: h.get_process(v),
        lambda h, v: h.cancel_process(v),
        lambda h, v: h.delete_case(v),
        lambda h, v: h.get_case_variable(v, "amount"),
        lambda h, v: h.update_case_variable(v, "amount", "1"),
        lambda h, v: h.get_archived_case_variable(v, "amount"),
    ],
    "task id": [
        lambda h, v: h.get_task(v),
        lambda h, v: h.claim_task(v, "4"),
        lambda h, v: h.complete_task(v, {}),
        lambda h, v: h.get_task_contract(v),
    ],
    "document id": [
        lambda h, v: h.get_document(v),
        lambda h, v: h.delete_document(v),
        lambda h, v: h.update_document(v, url="http://example.com/a.pdf"),
    ],
    "activity id": [
        lambda h, v: h.get_activity_variable(v, "amount"),
        lambda h, v: h.get_archived_activity_variable(v, "amount"),
    ],
}


@pytest.mark.parametrize("bad", [".", "..", "...", "1.2", "1/..", "abc", "-1", "", " ", "١٢"])
@pytest.mark.parametrize("what", sorted(PATH_CALLS))
def test_only_digits_are_ids_so_dots_never_reach_a_path(
    httpserver: HTTPServer, bonita: FakeBonita, what: str, bad: str
):
    # requests normalises "userTask/../execution" to "/API/bpm/execution": "." and ".." (which the
    # spec's loose path pattern allows) must never be sent; Bonita's ids are numbers.
    hook = make_hook(httpserver)
    for call in PATH_CALLS[what]:
        with pytest.raises(BpmConfigError, match=f"{what} must be a Bonita id \\(digits only\\)"):
            call(hook, bad)
    assert httpserver.log == []  # not even a login


@pytest.mark.parametrize("name", [".", "..", "....", "a/b", "../x", ""])
def test_variable_names_that_could_change_the_path_are_refused(
    httpserver: HTTPServer, bonita: FakeBonita, name: str
):
    hook = make_hook(httpserver)
    calls = [
        lambda: hook.get_case_variable("1", name),
        lambda: hook.update_case_variable("1", name, "x"),
        lambda: hook.get_archived_case_variable("1", name),
        lambda: hook.get_activity_variable("1", name),
        lambda: hook.get_archived_activity_variable("1", name),
    ]
    for call in calls:
        with pytest.raises(BpmConfigError, match="variable name must be non-empty"):
            call()
    assert httpserver.log == []


def test_variable_names_with_dots_inside_are_sent_encoded(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/caseVariable/1/a.b c").respond_with_json(
        {"name": "a.b c", "value": "x", "type": "java.lang.String"}
    )
    assert make_hook(httpserver).get_case_variable("1", "a.b c").value == "x"
    (sent,) = bonita.requests()
    assert sent.environ["RAW_URI"] == f"{BASE}/API/bpm/caseVariable/1/a.b%20c"


# ---- tasks ------------------------------------------------------------------------------------------


def test_list_tasks_filters_case_ready_and_name_over_pages(httpserver: HTTPServer, bonita: FakeBonita):
    tasks = [
        {
            "id": str(20000 + i),
            "name": "Review",
            "state": "ready",
            "assigned_id": "" if i else "4",
            "caseId": "1001",
        }
        for i in range(3)
    ]
    # API@bpm@humanTask.yaml: filters caseId, state, name.
    for page in range(2):
        httpserver.expect_oneshot_request(
            f"{BASE}/API/bpm/humanTask",
            query_string=qs(
                ("p", page), ("c", 2), ("f", "caseId=1001"), ("f", "state=ready"), ("f", "name=Review")
            ),
        ).respond_with_response(
            json_response(tasks[page * 2 : page * 2 + 2], headers={"Content-Range": f"{page}-2/3"})
        )
    hook = make_hook(httpserver, page_size=2)
    found = list(hook.list_tasks(process_instance_id="1001", name="Review"))
    assert [(t.id, t.assignee, t.process_instance_id, t.state) for t in found] == [
        ("20000", "4", "1001", "ready"), ("20001", None, "1001", "ready"), ("20002", None, "1001", "ready"),
    ]  # fmt: skip
    httpserver.check_assertions()


def assert_session_get(request: WRequest) -> None:
    """A GET of the session: no query, no body, the session cookie and the token header."""
    assert request.method == "GET"
    assert request.query_string == b""
    assert request.get_data() == b""
    assert request.cookies["JSESSIONID"] == "S1"
    assert request.headers["X-Bonita-API-Token"] == TOKEN
    assert "Authorization" not in request.headers


def test_get_task_reads_the_human_task(httpserver: HTTPServer, bonita: FakeBonita):
    # API@bpm@humanTask@{id}.yaml: GET, path id only; the body is HumanTask.yaml (its example).
    httpserver.expect_request(
        f"{BASE}/API/bpm/humanTask/20004", method="GET", query_string=""
    ).respond_with_json(
        {"id": 20004, "name": "Analyse case", "displayName": "Analyse case", "state": "ready",
         "type": "USER_TASK", "assigned_id": None, "caseId": 1002, "rootContainerId": 1002,
         "processId": 5826139717723008213, "priority": "normal"}
    )  # fmt: skip
    task = make_hook(httpserver).get_task("20004")
    assert (task.id, task.name, task.process_instance_id, task.assignee, task.state) == (
        "20004", "Analyse case", "1002", None, "ready",
    )  # fmt: skip
    (request,) = bonita.requests()
    assert request.path == f"{BASE}/API/bpm/humanTask/20004"
    assert_session_get(request)
    httpserver.check_assertions()


def test_get_task_contract_reads_inputs_and_constraints(httpserver: HTTPServer, bonita: FakeBonita):
    # API@bpm@userTask@{id}@contract.yaml: GET, path id only; the body is Contract.yaml.
    contract = {
        "inputs": [{"name": "approved", "type": "BOOLEAN", "multiple": "false", "description": "",
                    "inputs": []}],
        "constraints": [{"name": "approved", "expression": "approved != null",
                         "explanation": "approved is mandatory", "inputNames": ["approved"]}],
    }  # fmt: skip
    httpserver.expect_request(
        f"{BASE}/API/bpm/userTask/20004/contract", method="GET", query_string=""
    ).respond_with_json(contract)
    assert make_hook(httpserver).get_task_contract("20004") == contract
    (request,) = bonita.requests()
    assert request.path == f"{BASE}/API/bpm/userTask/20004/contract"
    assert_session_get(request)
    httpserver.check_assertions()


def test_get_process_contract_resolves_the_definition_first(httpserver: HTTPServer, bonita: FakeBonita):
    # API@bpm@process.yaml search for the latest enabled version, then
    # API@bpm@process@{id}@contract.yaml: GET, path id only; the body is Contract.yaml.
    contract = {"inputs": [{"name": "amount", "type": "DECIMAL", "multiple": "false"}], "constraints": []}
    httpserver.expect_request(
        f"{BASE}/API/bpm/process", method="GET", query_string=LATEST_ENABLED_EXPENSE
    ).respond_with_json([DEFINITION])
    httpserver.expect_request(
        f"{BASE}/API/bpm/process/8801/contract", method="GET", query_string=""
    ).respond_with_json(contract)
    assert make_hook(httpserver).get_process_contract("Expense report") == contract
    search, request = bonita.requests()
    assert search.path == f"{BASE}/API/bpm/process"
    assert request.path == f"{BASE}/API/bpm/process/8801/contract"
    assert_session_get(request)
    httpserver.check_assertions()


def test_claim_without_assignee_uses_the_session_user(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_oneshot_request(f"{BASE}/API/system/session/unusedId").respond_with_json(
        {"user_id": "4", "user_name": USER}
    )
    httpserver.expect_request(f"{BASE}/API/bpm/humanTask/20001", method="PUT").respond_with_data("")
    hook = make_hook(httpserver)
    hook.claim_task("20001")
    hook.claim_task("20001", USER)  # the session user's name also means that user
    puts = [r for r in bonita.requests() if r.method == "PUT"]
    assert [p.get_json() for p in puts] == [{"assigned_id": "4"}, {"assigned_id": "4"}]
    with pytest.raises(BpmConfigError, match="user id"):
        hook.claim_task("20001", "helen.kelly")
    httpserver.check_assertions()


def test_unassign_puts_an_empty_assigned_id(httpserver: HTTPServer, bonita: FakeBonita):
    # HumanTaskUpdateRequest.yaml (API@bpm@humanTask@{id}.yaml, PUT): assigned_id; "" releases
    # the task, which then reads assigned_id "0", "unassigned" (FlowNode.yaml).
    httpserver.expect_oneshot_request(f"{BASE}/API/bpm/humanTask/20001", method="PUT").respond_with_data("")
    make_hook(httpserver).unassign_task("20001")
    (put,) = [r for r in bonita.requests() if r.method == "PUT"]
    assert put.get_json() == {"assigned_id": ""}
    assert put.headers["X-Bonita-API-Token"]  # a write carries the session's token
    httpserver.check_assertions()
    with pytest.raises(BpmConfigError, match="task id"):
        make_hook(httpserver).unassign_task("../case/1")


def test_complete_task_posts_contract_inputs_with_optional_assign(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_oneshot_request(
        f"{BASE}/API/bpm/userTask/20001/execution", method="POST", query_string=""
    ).respond_with_data("", status=204)
    httpserver.expect_oneshot_request(
        f"{BASE}/API/bpm/userTask/20002/execution", method="POST", query_string="assign=true"
    ).respond_with_data("", status=204)
    hook = make_hook(httpserver)
    hook.complete_task("20001", {"approved": True, "when": datetime(2024, 3, 1, 9, 30, tzinfo=UTC)})
    hook.complete_task("20002", None, assign=True)
    first, second = [r for r in bonita.requests() if r.method == "POST"]
    assert first.get_json() == {"approved": True, "when": "2024-03-01T09:30:00+00:00"}
    assert second.get_json() == {}
    assert first.headers["X-Bonita-API-Token"] == TOKEN
    with pytest.raises(BpmConfigError, match="'flow'"):
        hook.complete_task("20001", {}, flow=1)
    httpserver.check_assertions()


def test_task_contract_violation_lists_explanations(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/userTask/20001/execution", method="POST").respond_with_json(
        {"message": "Contract is not valid", "explanations": ["Expected input [approved] is missing"]},
        status=400,
    )
    with pytest.raises(BpmValidationError) as info:
        make_hook(httpserver).complete_task("20001", {})
    assert info.value.details == ["Expected input [approved] is missing"]


# ---- variables (seed 001) ------------------------------------------------------------------------


def test_case_variable_get_search_and_archived(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/caseVariable/1/myInvoiceAmount").respond_with_json(
        {
            "description": "",
            "name": "myInvoiceAmount",
            "value": "14.2",
            "case_id": "1",
            "type": "java.lang.Float",
        }
    )
    httpserver.expect_request(
        f"{BASE}/API/bpm/caseVariable", query_string=qs(("p", 0), ("c", 1000), ("f", "case_id=11754"))
    ).respond_with_json(
        [
            {"name": "myInvoiceAmount", "value": "14.2", "case_id": "11754", "type": "java.lang.Float"},
            {"name": "count", "value": "3", "case_id": "11754", "type": "java.lang.Long"},
            {"name": "paid", "value": "true", "case_id": "11754", "type": "java.lang.Boolean"},
        ]
    )
    httpserver.expect_request(
        f"{BASE}/API/bpm/archivedCaseVariable", query_string=qs(("p", 0), ("c", 1000), ("f", "case_id=11754"))
    ).respond_with_json([{"name": "count", "value": "4", "case_id": "11754", "type": "java.lang.Integer"}])
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCaseVariable/11754/count").respond_with_json(
        {
            "name": "count",
            "value": "4",
            "type": "java.lang.Integer",
            "archivedDate": "2021-01-01 03:10:38.520",
        }
    )
    hook = make_hook(httpserver)
    variable = hook.get_case_variable("1", "myInvoiceAmount")
    assert (variable.name, variable.type, variable.value) == ("myInvoiceAmount", "java.lang.Float", 14.2)
    assert [(v.name, v.value) for v in hook.search_case_variables("11754")] == [
        ("myInvoiceAmount", 14.2), ("count", 3), ("paid", True),
    ]  # fmt: skip
    assert [v.value for v in hook.search_archived_case_variables("11754")] == [4]
    assert hook.get_archived_case_variable("11754", "count").value == 4


def test_activity_variables(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/activityVariable/20004/RequestValidationData").respond_with_json(
        {"id": 5010, "name": "RequestValidationData", "className": "java.lang.String", "containerId": 20004,
         "containerType": "ACTIVITY_INSTANCE", "value": "Confirmed", "transientData": False}
    )  # fmt: skip
    httpserver.expect_request(
        f"{BASE}/API/bpm/archivedActivityVariable/20004/RequestValidationData"
    ).respond_with_json(
        {
            "name": "RequestValidationData",
            "type": "java.lang.String",
            "value": "Confirmed",
            "sourceObjectId": 5010,
        }
    )
    hook = make_hook(httpserver)
    assert hook.get_activity_variable("20004", "RequestValidationData").value == "Confirmed"
    archived = hook.get_archived_activity_variable("20004", "RequestValidationData")
    assert (archived.type, archived.value) == ("java.lang.String", "Confirmed")


@pytest.mark.parametrize(
    ("value", "kwargs", "body"),
    [
        ("new", {}, {"type": "java.lang.String", "value": "new"}),
        (True, {}, {"type": "java.lang.Boolean", "value": "true"}),
        (42, {}, {"type": "java.lang.Integer", "value": "42"}),
        (2**40, {}, {"type": "java.lang.Long", "value": "1099511627776"}),
        (42, {"java_type": "java.lang.Long"}, {"type": "java.lang.Long", "value": "42"}),
        (("Long", 7), {}, {"type": "java.lang.Long", "value": "7"}),
        (46.35, {}, {"type": "java.lang.Double", "value": "46.35"}),
        (
            datetime(2024, 3, 1, 9, 30, 5, tzinfo=UTC),
            {},
            {"type": "java.util.Date", "value": "Fri Mar 01 09:30:05 UTC 2024"},
        ),
        (date(2024, 12, 25), {}, {"type": "java.util.Date", "value": "Wed Dec 25 00:00:00 UTC 2024"}),
    ],
)
def test_update_case_variable_sends_java_type_and_text(
    httpserver: HTTPServer, bonita: FakeBonita, value, kwargs, body
):
    # PUT caseVariable (seed 001): {"type": javaTypeclassname, "value": newValue}.
    httpserver.expect_request(f"{BASE}/API/bpm/caseVariable/1/myVar", method="PUT").respond_with_data("")
    make_hook(httpserver).update_case_variable("1", "myVar", value, **kwargs)
    (put,) = [r for r in bonita.requests() if r.method == "PUT"]
    assert put.get_json() == body
    assert put.headers["X-Bonita-API-Token"] == TOKEN


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        ([1, 2], {}, "cannot send a list"),
        (1.5, {"java_type": "java.lang.Float"}, "not a type Bonita can update"),
        ("x", {"java_type": "Integer"}, "cannot be sent as java.lang.Integer"),
        (2**40, {"java_type": "Integer"}, "does not fit"),
    ],
)
def test_update_case_variable_refuses_what_bonita_cannot_take(
    httpserver: HTTPServer, bonita: FakeBonita, value, kwargs, message
):
    with pytest.raises(BpmConfigError, match=message):
        make_hook(httpserver).update_case_variable("1", "myVar", value, **kwargs)
    assert bonita.requests() == []


@pytest.mark.parametrize(
    ("value", "kwargs"),
    [
        (None, {}),
        (None, {"java_type": "java.lang.String"}),
        (("java.lang.String", None), {}),
        (("Long", None), {}),
    ],
)
def test_update_case_variable_refuses_none(httpserver: HTTPServer, bonita: FakeBonita, value, kwargs):
    # ProcessInstanceVariableUpdateRequest.yaml: value is a string, not nullable; nothing clears a variable.
    with pytest.raises(BpmValidationError) as info:
        make_hook(httpserver).update_case_variable("1", "myVar", value, **kwargs)
    text = str(info.value)
    assert "'myVar'" in text and "None" in text and "bonita_test" in text
    assert "PUT /API/bpm/caseVariable/1/myVar" in text
    assert httpserver.log == []


# ---- documents (seed 001) -------------------------------------------------------------------------

DOC = {
    "id": "3", "creationDate": "2014-10-09 16:45:36.658", "author": "1", "index": "-1",
    "contentMimetype": "application/octet-stream", "caseId": "1", "contentStorageId": "4",
    "isInternal": "true", "description": "draft", "name": "Doc 1", "fileName": "document_1.jpg",
    "submittedBy": "1", "url": "documentDownload?fileName=document_1.jpg&contentStorageId=4", "version": "2",
}  # fmt: skip
EXTERNAL = {
    **DOC, "id": "4", "contentMimetype": "image/png", "contentStorageId": "5", "isInternal": "false",
    "name": "Train receipt", "fileName": "train_receipt.png", "version": "1",
    "url": "http://cloud.storage.com/sites/chris/expenses/july_2014/train_receipt.png",
}  # fmt: skip
ARCHIVED_V1 = {
    **DOC, "id": "31", "fileName": "draft.jpg", "contentStorageId": "2", "version": "1",
    "sourceObjectId": "3", "url": "documentDownload?fileName=draft.jpg&contentStorageId=2",
    "archivedDate": "2014-10-09 17:39:52.473",
}  # fmt: skip


def test_document_search_get_delete_and_archived_versions(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(
        f"{BASE}/API/bpm/caseDocument",
        query_string=qs(("p", 0), ("c", 1000), ("f", "caseId=1"), ("f", "name=Doc 1")),
    ).respond_with_json([DOC])
    httpserver.expect_request(f"{BASE}/API/bpm/caseDocument/3", method="GET").respond_with_json(DOC)
    httpserver.expect_request(f"{BASE}/API/bpm/caseDocument/3", method="DELETE").respond_with_data("")
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCaseDocument/31", method="DELETE").respond_with_data(
        ""
    )
    httpserver.expect_request(
        f"{BASE}/API/bpm/archivedCaseDocument",
        query_string=qs(("p", 0), ("c", 1000), ("f", "sourceObjectId=3")),
    ).respond_with_json([ARCHIVED_V1])
    httpserver.expect_request(
        f"{BASE}/API/bpm/archivedCaseDocument",
        query_string=qs(
            ("p", 0), ("c", 1000), ("f", "caseId=1"), ("f", "name=myDocList"), ("o", "index ASC")
        ),
    ).respond_with_json([])
    hook = make_hook(httpserver)
    assert [d["id"] for d in hook.search_documents("1", name="Doc 1")] == ["3"]
    assert hook.get_document("3")["fileName"] == "document_1.jpg"
    assert [d["version"] for d in hook.document_versions("3")] == ["1", "2"]
    assert list(hook.search_archived_documents(case_id="1", name="myDocList", order="index ASC")) == []
    hook.delete_document("3")
    hook.delete_archived_document_content("31")  # seed 001: the file goes, the record stays
    delete, delete_archived = [r for r in bonita.requests() if r.method == "DELETE"]
    assert delete.path == f"{BASE}/API/bpm/caseDocument/3"
    assert delete_archived.path == f"{BASE}/API/bpm/archivedCaseDocument/31"
    assert delete.headers["X-Bonita-API-Token"] == TOKEN == delete_archived.headers["X-Bonita-API-Token"]
    httpserver.check_assertions()


def test_add_document_uploads_the_file_first_then_posts_its_temp_name(
    httpserver: HTTPServer, bonita: FakeBonita, tmp_path
):
    local = tmp_path / "doc.jpg"
    local.write_bytes(b"\xff\xd8jpeg-bytes")
    # API@formFileUpload.yaml: multipart field "file", answer {filename, tempPath, contentType}.
    httpserver.expect_request(f"{BASE}/API/formFileUpload", method="POST").respond_with_json(
        {"filename": "doc.jpg", "tempPath": "tmp_885efa7d.jpg", "contentType": "image/jpeg"}
    )
    httpserver.expect_request(f"{BASE}/API/bpm/caseDocument", method="POST").respond_with_json(DOC)
    httpserver.expect_request(f"{BASE}/API/bpm/caseDocument/3", method="PUT").respond_with_json(
        {**DOC, "version": "3"}
    )
    hook = make_hook(httpserver)
    added = hook.add_document(
        "1", "Doc 1", source=str(local), file_name="document_1.jpg", description="draft"
    )
    assert added["id"] == "3"
    by_url = hook.add_document("1", "Train receipt", url=EXTERNAL["url"])
    assert by_url["id"] == "3"
    updated = hook.update_document("3", source=local, description="updated version of document")
    assert updated["version"] == "3"

    upload1, post1, post2, upload2, put = [r for r in bonita.requests() if r.method in ("POST", "PUT")]
    assert upload1.path == f"{BASE}/API/formFileUpload"
    assert upload1.headers["Content-Type"].startswith("multipart/form-data")
    assert upload1.files["file"].filename == "document_1.jpg"
    assert upload1.files["file"].read() == b"\xff\xd8jpeg-bytes"
    assert upload1.headers["X-Bonita-API-Token"] == TOKEN
    # ProcessInstanceDocumentCreateRequest.yaml, seed 001 example 1 and 2.
    assert post1.get_json() == {
        "caseId": "1", "name": "Doc 1", "file": "tmp_885efa7d.jpg", "fileName": "document_1.jpg",
        "description": "draft",
    }  # fmt: skip
    assert post2.get_json() == {"caseId": "1", "name": "Train receipt", "url": EXTERNAL["url"]}
    assert upload2.files["file"].filename == "doc.jpg"
    # ProcessInstanceDocumentUpdateRequest.yaml.
    assert put.get_json() == {
        "file": "tmp_885efa7d.jpg",
        "fileName": "doc.jpg",
        "description": "updated version of document",
    }


def test_add_document_from_object_storage(httpserver: HTTPServer, bonita: FakeBonita, tmp_path):
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.7 from storage")
    httpserver.expect_request(f"{BASE}/API/formFileUpload", method="POST").respond_with_json(
        {"filename": "report.pdf", "tempPath": "tmp_1.pdf", "contentType": "application/pdf"}
    )
    httpserver.expect_request(f"{BASE}/API/bpm/caseDocument", method="POST").respond_with_json(DOC)
    make_hook(httpserver).add_document("1", "Report", source=f"file://{tmp_path}/report.pdf")
    upload = next(r for r in bonita.requests() if r.path.endswith("formFileUpload"))
    assert upload.files["file"].read() == b"%PDF-1.7 from storage"
    assert upload.files["file"].content_type == "application/pdf"


def test_document_input_errors_are_named(httpserver: HTTPServer, bonita: FakeBonita, tmp_path):
    hook = make_hook(httpserver)
    with pytest.raises(BpmConfigError, match="exactly one of source"):
        hook.add_document("1", "Doc", source=str(tmp_path / "a"), url="http://x")
    with pytest.raises(BpmConfigError, match="no local file"):
        hook.add_document("1", "Doc", source=str(tmp_path / "missing.txt"))
    with pytest.raises(BpmConfigError, match="file_name"):
        hook.upload_file(b"raw")
    assert bonita.requests() == []


def test_list_files_latest_versions_and_external_documents(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(
        f"{BASE}/API/bpm/caseDocument", query_string=qs(("p", 0), ("c", 1000), ("f", "caseId=1"))
    ).respond_with_json([DOC, EXTERNAL])
    httpserver.expect_request(
        f"{BASE}/API/bpm/archivedCaseDocument", query_string=qs(("p", 0), ("c", 1000), ("f", "caseId=1"))
    ).respond_with_json([ARCHIVED_V1])
    hook = make_hook(httpserver)
    latest = list(hook.list_files("1"))
    assert [(f.name, f.group, f.ref["version"], f.external_url) for f in latest] == [
        ("document_1.jpg", "Doc 1", "2", None),
        ("train_receipt.png", "Train receipt", "1", EXTERNAL["url"]),
    ]
    assert latest[0].content_type == "application/octet-stream" and latest[0].process_instance_id == "1"
    every = list(hook.list_files("1", all_versions=True))
    assert [(f.name, f.ref["version"]) for f in every] == [
        ("draft.jpg", "1"), ("document_1.jpg", "2"), ("train_receipt.png", "1"),
    ]  # fmt: skip
    assert [f.name for f in make_hook(httpserver, document_versions="all").list_files("1")] == [
        f.name for f in every
    ]


def test_list_files_of_an_ended_case_uses_archived_documents_only(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/caseDocument").respond_with_json([])
    v2 = {**ARCHIVED_V1, "id": "32", "version": "2", "fileName": "final.jpg", "contentStorageId": "6"}
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCaseDocument").respond_with_json([ARCHIVED_V1, v2])
    (only,) = make_hook(httpserver).list_files("1")
    assert (only.name, only.ref["contentStorageId"], only.ref["document_id"]) == ("final.jpg", "6", "3")


def test_list_files_of_an_unknown_case_is_not_found(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/caseDocument").respond_with_json([])
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCaseDocument").respond_with_json([])
    httpserver.expect_request(f"{BASE}/API/bpm/case/77").respond_with_json({"message": "nf"}, status=404)
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCase").respond_with_json([])
    with pytest.raises(BpmNotFound, match="no case 77"):
        list(make_hook(httpserver).list_files("77"))


def test_open_file_streams_the_download_servlet(httpserver: HTTPServer, bonita: FakeBonita):
    content = bytes(range(256)) * 1000
    httpserver.expect_request(f"{BASE}/API/bpm/caseDocument").respond_with_json(
        [
            {
                **DOC,
                "fileName": "r&d plan.pdf",
                "url": "documentDownload?fileName=r%26d+plan.pdf&contentStorageId=4",
            }
        ]
    )
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCaseDocument").respond_with_json([])
    # The download servlet of seed 001: /portal/documentDownload?fileName=..&contentStorageId=..
    httpserver.expect_request(
        f"{BASE}/portal/documentDownload",
        method="GET",
        query_string=qs(("fileName", "r&d plan.pdf"), ("contentStorageId", "4")),
    ).respond_with_data(content, content_type="application/pdf")
    hook = make_hook(httpserver)
    (file,) = hook.list_files("1")
    with hook.open_file(file) as reply:
        assert reply.stream is not None  # streamed, not read whole
        received = b"".join(reply.iter_bytes(4096))
    assert received == content
    (download,) = bonita.requests("/portal/")
    assert download.cookies["JSESSIONID"] == "S1"
    httpserver.check_assertions()


def test_open_file_from_an_offset_sends_a_range(httpserver: HTTPServer, bonita: FakeBonita):
    # RFC 9110 Range on the download servlet, to resume a broken download.
    httpserver.expect_request(
        f"{BASE}/portal/documentDownload",
        method="GET",
        query_string=qs(("fileName", "a.pdf"), ("contentStorageId", "4")),
        headers={"Range": "bytes=2-"},
    ).respond_with_data(b"rest", status=206, headers={"Content-Range": "bytes 2-5/6"})
    file = ProcessFile(
        name="a.pdf",
        size=6,
        content_type=None,
        process_instance_id="1",
        ref={"url": "documentDownload?fileName=a.pdf&contentStorageId=4"},
    )
    with make_hook(httpserver).open_file(file, offset=2) as reply:
        assert reply.status == 206 and b"".join(reply.iter_bytes(64)) == b"rest"
    (download,) = bonita.requests("/portal/")
    assert download.cookies["JSESSIONID"] == "S1"
    httpserver.check_assertions()


def test_open_file_of_an_external_document_says_where_it_is(httpserver: HTTPServer, bonita: FakeBonita):
    httpserver.expect_request(f"{BASE}/API/bpm/caseDocument").respond_with_json([EXTERNAL])
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCaseDocument").respond_with_json([])
    hook = make_hook(httpserver)
    (file,) = hook.list_files("1")
    with pytest.raises(BpmNotFound, match="is external"), hook.open_file(file):
        pass
    assert not bonita.requests("/portal/")


# ---- options and config -----------------------------------------------------------------------------


def test_unknown_start_options_and_bad_extras_are_named(httpserver: HTTPServer, bonita: FakeBonita):
    hook = make_hook(httpserver)
    with pytest.raises(BpmConfigError, match="'flow'"):
        hook.start_process("8801", flow=2)
    with pytest.raises(BpmConfigError, match="via must be one of instantiation, case"):
        hook.start_process("8801", via="form")
    with pytest.raises(BpmConfigError, match="document_versions"):
        list(make_hook(httpserver, document_versions="some").list_files("1"))
    assert bonita.requests() == []
    httpserver.expect_request(f"{BASE}/API/bpm/case/1").respond_with_json(CASE)
    with pytest.raises(BpmConfigError, match="'timezone' must be an IANA time zone"):
        make_hook(httpserver, timezone="Mars/Olympus").get_process("1")


def test_registry_picks_the_bonita_hook():
    from airflow_bpm_provider.hooks.registry import hook_class

    assert hook_class("bonita", conn_id="x") is BonitaHook


# ---- a start whose answer was lost (the start operator's journal) --------------------------------


def test_find_unclaimed_starts_reads_my_cases_newest_first_until_older_than_then(
    httpserver: HTTPServer, bonita: FakeBonita
):
    # API@bpm@case.yaml / API@bpm@archivedCase.yaml: f=name (every version), f=started_by (a user
    # id; the session's, API@system@session@unusedId.yaml). No start-date filter: read newest first.
    def mine(order: str) -> str:
        return qs(("p", 0), ("c", 1000), ("f", "name=Expense report"), ("f", "started_by=4"), ("o", order))

    httpserver.expect_request(f"{BASE}/API/bpm/process/8801").respond_with_json(DEFINITION)
    httpserver.expect_request(f"{BASE}/API/system/session/unusedId").respond_with_json(
        {"user_id": "4", "user_name": USER}
    )
    httpserver.expect_request(f"{BASE}/API/bpm/case", query_string=mine("id DESC")).respond_with_json(
        [
            {**CASE, "id": "1003", "start": "2024-03-01 10:20:00.000"},
            {**CASE, "id": "1002", "start": "2024-03-01 10:16:00.000"},
            {**CASE, "id": "1001", "start": "2024-03-01 09:59:00.000"},
            {**CASE, "id": "1000", "start": "2024-03-01 09:58:00.000"},
        ]
    )
    httpserver.expect_request(
        f"{BASE}/API/bpm/archivedCase", query_string=mine("sourceObjectId DESC")
    ).respond_with_json(
        [
            {
                **CASE,
                "id": "90",
                "sourceObjectId": "1004",
                "state": "completed",
                "start": "2024-03-01 10:30:00.000",
            }
        ]
    )
    httpserver.expect_request(f"{BASE}/API/bpm/caseVariable/1003/invoiceRef").respond_with_json(
        {"name": "invoiceRef", "value": "", "type": "java.lang.String", "case_id": "1003"}
    )
    httpserver.expect_request(f"{BASE}/API/bpm/caseVariable/1002/invoiceRef").respond_with_json(
        {"name": "invoiceRef", "value": "INV-1", "type": "java.lang.String", "case_id": "1002"}
    )
    httpserver.expect_request(f"{BASE}/API/bpm/archivedCaseVariable/1004/invoiceRef").respond_with_data(
        "{}", status=404, content_type="application/json"
    )
    hook = make_hook(httpserver, business_key_variable="invoiceRef")

    found = hook.find_unclaimed_starts("8801", datetime(2024, 3, 1, 10, 0, tzinfo=UTC))

    assert [p.id for p in found] == ["1003", "1004"]
    read = [r.path.rsplit("/API/bpm/", 1)[1] for r in bonita.requests("Variable/")]
    assert read == [
        "caseVariable/1003/invoiceRef",
        "caseVariable/1002/invoiceRef",
        "archivedCaseVariable/1004/invoiceRef",
    ]  # 1001 is older than the bound: the scan stopped there


# ---- batched reads for triggers ---------------------------------------------------------------


def test_batched_read_lists_the_open_cases_of_each_process(httpserver: HTTPServer, bonita: FakeBonita):
    # API@bpm@case.yaml: a search (p, c, f=processDefinitionId=.., o, d) over live cases only;
    # the case search has no id filter. The total comes in Content-Range.
    other = {**CASE, "id": "1002"}
    httpserver.expect_request(
        f"{BASE}/API/bpm/case",
        method="GET",
        query_string=qs(
            ("p", 0),
            ("c", 1000),
            ("f", "processDefinitionId=8801"),
            ("o", "id ASC"),
            ("d", "processDefinitionId"),
        ),
    ).respond_with_response(json_response([CASE, other], headers={"Content-Range": "0-2/2"}))
    # API@bpm@archivedCase.yaml: the same search over archived cases, here newest first.
    archived = {
        **CASE,
        "id": "5001",
        "sourceObjectId": "1003",
        "state": "completed",
        "end_date": CASE["start"],
    }
    httpserver.expect_request(
        f"{BASE}/API/bpm/archivedCase",
        method="GET",
        query_string=qs(
            ("p", 0),
            ("c", 1000),
            ("f", "processDefinitionId=8801"),
            ("o", "sourceObjectId DESC"),
            ("d", "processDefinitionId"),
        ),
    ).respond_with_response(json_response([archived], headers={"Content-Range": "0-1/1"}))
    hook = make_hook(httpserver)
    found = hook._run(hook._poll_processes_flow(["1001", "1003", "1004"], ["8801"]))
    httpserver.check_assertions()
    assert sorted(found) == ["1001", "1003"]  # 1004 is nowhere: for a single read, which says so
    assert found["1001"].state is ProcessState.RUNNING
    assert found["1001"].definition == "8801"
    assert found["1003"].state is ProcessState.COMPLETED
    assert len(bonita.logins) == 1


def test_batched_task_read_lists_each_processs_ready_tasks(httpserver: HTTPServer, bonita: FakeBonita):
    # API@bpm@humanTask.yaml: filters processDefinitionId, state, name (one caseId at most).
    ready = {"id": "77", "name": "Approve", "state": "ready", "caseId": "1001", "assigned_id": ""}
    httpserver.expect_request(
        f"{BASE}/API/bpm/humanTask",
        method="GET",
        query_string=qs(
            ("p", 0),
            ("c", 1000),
            ("f", "processDefinitionId=8801"),
            ("f", "state=ready"),
            ("f", "name=Approve"),
        ),
    ).respond_with_response(json_response([ready], headers={"Content-Range": "0-1/1"}))
    hook = make_hook(httpserver)
    found = hook._run(hook._poll_tasks_flow({"1001": "8801", "1002": "8801"}, "Approve"))
    httpserver.check_assertions()
    assert [t.id for t in found["1001"]] == ["77"] and found["1002"] == []
