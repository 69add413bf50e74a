"""The shared machinery of every hook: URL building, auth, retries, error mapping, flows."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from airflow.models.connection import Connection
from pytest_httpserver import HTTPServer
from werkzeug import Response

from airflow_bpm_provider.exceptions import (
    BpmAuthError,
    BpmConfigError,
    BpmConflict,
    BpmConnectionError,
    BpmError,
    BpmNotFound,
    BpmRateLimited,
    BpmServerError,
    BpmValidationError,
)
from airflow_bpm_provider.hooks.base import BpmHook
from airflow_bpm_provider.hooks.http import Flow, Request
from airflow_bpm_provider.hooks.retry import RetryPolicy
from airflow_bpm_provider.models import ProcessFile, ProcessInstance, ProcessState, Task

PASSWORD = "Pw-must-never-leak-7781"


class EchoHook(BpmHook):
    """A minimal dialect: one JSON endpoint per contract call, enough to drive the base class."""

    conn_type = "echo"
    system = "Echo"

    def _probe(self) -> str:
        self.request(Request("GET", "/ping"))
        return "pong"

    def start_process(self, process: str, *, variables: Any = None, business_key: Any = None, **options: Any):
        reply = self.request(Request("POST", "/start", json={"process": process}))
        return ProcessInstance(id=str(reply.json()["id"]), state=ProcessState.RUNNING)

    def _get_process_flow(self, instance_id: str) -> Flow[ProcessInstance]:
        try:
            reply = yield Request("GET", f"/live/{instance_id}")
        except BpmNotFound:
            reply = yield Request("GET", f"/history/{instance_id}")
        body = reply.json()
        return ProcessInstance(id=instance_id, state=ProcessState.parse(body["state"]))

    def find_processes(self, **filters: Any) -> Iterator[ProcessInstance]:
        return iter(())

    def cancel_process(self, instance_id: str) -> None:
        self.request(Request("DELETE", f"/live/{instance_id}"))

    def _list_tasks_flow(
        self, *, process_instance_id: str | None = None, name: str | None = None
    ) -> Flow[list[Task]]:
        reply = yield Request("GET", "/tasks", params={"pid": process_instance_id, "name": name})
        return [
            Task(id=str(t["id"]), name=t["name"], process_instance_id=process_instance_id)
            for t in reply.json()
        ]

    def claim_task(self, task_id: str, assignee: str | None = None) -> None:
        self.request(Request("POST", f"/tasks/{task_id}/claim"))

    def complete_task(self, task_id: str, variables: Mapping[str, Any] | None = None, **options: Any) -> None:
        self.request(Request("POST", f"/tasks/{task_id}/complete", json=dict(variables or {})))

    def list_files(self, instance_id: str) -> Iterator[ProcessFile]:
        return iter(())


class SessionHook(EchoHook):
    """A dialect with a session login, like Bonita."""

    logins = 0

    def _login_flow(self) -> Flow[dict[str, str]]:
        reply = yield Request("POST", "/login", data={"user": self.settings.login}, authenticate=False)
        type(self).logins += 1
        return {"X-Session": reply.json()["token"]}

    def _auth_headers(self, request: Request, session: Mapping[str, str] | None) -> dict[str, str]:
        return dict(session or {})


def make_hook(server: HTTPServer, cls: type[BpmHook] = EchoHook, **extra: Any) -> BpmHook:
    conn = Connection(
        conn_id="bpm_test",
        conn_type="echo",
        host=server.url_for("/"),
        login="alice@example.com",
        password=PASSWORD,
        extra=extra or None,
    )
    return cls("bpm_test", connection=conn, retry_policy=RetryPolicy(initial_delay=0.0, max_attempts=3))


def basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


# ---- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "schema", "port", "extra", "expected"),
    [
        ("https://acme.questetra.net", None, None, {}, "https://acme.questetra.net"),
        ("http://h:8080/userweb/", None, None, {}, "http://h:8080/userweb"),
        ("http://h/bonita", None, 8080, {}, "http://h:8080/bonita"),
        ("h", "userweb", 9000, {}, "https://h:9000/userweb"),
        ("h", "userweb", 9000, {"scheme": "http"}, "http://h:9000/userweb"),
        ("h", "http", 80, {}, "http://h:80"),
        ("h/flowable-rest/service", None, None, {}, "https://h/flowable-rest/service"),
    ],
)
def test_base_url_keeps_scheme_port_and_context_root(host, schema, port, extra, expected):
    from airflow_bpm_provider.hooks.settings import ConnectionSettings

    conn = Connection(
        conn_id="c",
        conn_type="echo",
        host=host,
        schema=schema,
        port=port,
        login="u",
        password="p",
        extra=extra,
    )
    assert ConnectionSettings.from_connection(conn).base_url == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"host": None}, "no host"),
        ({"login": None}, "needs a login"),
        ({"password": None}, "no password"),
        ({"extra": {"auth_type": "kerberos"}}, "auth_type"),
        ({"extra": {"timeout": "soon"}}, "'timeout' must be a number"),
        ({"extra": {"scheme": "ftp"}, "host": "h"}, "scheme"),
        ({"host": "ftp://h/bonita"}, "the host's scheme must be http or https, got 'ftp'"),
        ({"host": "htps://h/bonita"}, "the host's scheme must be http or https, got 'htps'"),
        ({"extra": {"max_response_bytes": "big"}}, "'max_response_bytes' must be a number"),
        ({"extra": {"response_timeout": 0}}, "'response_timeout' must be >= 0.1"),
        ({"extra": {"stall_timeout": -1}}, "'stall_timeout' must be >= 0.1"),
    ],
)
def test_bad_connection_fields_are_named(fields, message):
    from airflow_bpm_provider.hooks.settings import ConnectionSettings

    base = {"conn_id": "broken", "conn_type": "echo", "host": "https://h", "login": "u", "password": "p"}
    conn = Connection(**{**base, **fields})
    with pytest.raises(BpmConfigError, match=message) as info:
        ConnectionSettings.from_connection(conn)
    assert "broken" in str(info.value)


def test_verify_and_timeouts_come_from_extra():
    from airflow_bpm_provider.hooks.settings import ConnectionSettings

    conn = Connection(
        conn_id="c",
        conn_type="echo",
        host="https://h",
        login="u",
        password="p",
        extra={"verify": "false", "timeout": "12.5", "connect_timeout": 3, "extra__echo__max_retries": "2"},
    )
    settings = ConnectionSettings.from_connection(conn)
    assert settings.verify is False
    assert settings.timeout == (3.0, 12.5)
    assert settings.max_retries == 2
    assert (settings.limits.response_timeout, settings.limits.max_response_bytes) == (300.0, 64 << 20)
    assert settings.limits.stall_timeout == 60.0
    bounded = Connection(
        conn_id="c",
        conn_type="echo",
        host="https://h",
        login="u",
        password="p",
        extra={"response_timeout": "30", "max_response_bytes": 1048576, "stall_timeout": 5},
    )
    limits = ConnectionSettings.from_connection(bounded).limits
    assert (limits.response_timeout, limits.max_response_bytes, limits.stall_timeout) == (30.0, 1 << 20, 5.0)
    bundle = Connection(
        conn_id="c",
        conn_type="echo",
        host="https://h",
        login="u",
        password="p",
        extra={"verify": "/etc/ca.pem"},
    )
    assert ConnectionSettings.from_connection(bundle).verify == "/etc/ca.pem"


# ---- auth -----------------------------------------------------------------------------------


def test_basic_credentials_are_sent_pre_emptively(httpserver: HTTPServer):
    httpserver.expect_oneshot_request(
        "/ping", method="GET", headers={"Authorization": basic("alice@example.com", PASSWORD)}
    ).respond_with_json({})
    assert make_hook(httpserver).test_connection() == (True, "pong")
    httpserver.check_assertions()


def test_bearer_token_from_password_field(httpserver: HTTPServer):
    httpserver.expect_oneshot_request(
        "/ping", headers={"Authorization": f"Bearer {PASSWORD}"}
    ).respond_with_json({})
    assert make_hook(httpserver, auth_type="bearer").test_connection()[0]
    httpserver.check_assertions()


def test_401_is_not_retried_and_never_shows_the_password(httpserver: HTTPServer, caplog):
    httpserver.expect_request("/ping").respond_with_data(f"bad credentials for {PASSWORD}", status=401)
    caplog.set_level(logging.DEBUG)
    ok, message = make_hook(httpserver).test_connection()
    assert not ok
    assert "authentication failed" in message and "bpm_test" in message and "GET /ping" in message
    assert PASSWORD not in message
    assert PASSWORD not in caplog.text
    assert len(httpserver.log) == 1


def test_session_login_runs_once_and_again_after_expiry(httpserver: HTTPServer):
    SessionHook.logins = 0
    tokens = iter(["t1", "t2"])
    httpserver.expect_request("/login", method="POST").respond_with_handler(
        lambda r: Response(f'{{"token": "{next(tokens)}"}}', content_type="application/json")
    )
    seen: list[str | None] = []

    def ping(request):
        seen.append(request.headers.get("X-Session"))
        return Response("{}", status=401 if len(seen) == 2 else 200, content_type="application/json")

    httpserver.expect_request("/ping").respond_with_handler(ping)
    hook = make_hook(httpserver, SessionHook)
    hook.request(Request("GET", "/ping"))
    hook.request(Request("GET", "/ping"))  # 401 → login again → repeated
    assert seen == ["t1", "t1", "t2"]
    assert SessionHook.logins == 2


def test_session_expired_twice_fails_clearly(httpserver: HTTPServer):
    httpserver.expect_request("/login").respond_with_json({"token": "t"})
    httpserver.expect_request("/ping").respond_with_data("expired", status=401)
    with pytest.raises(BpmAuthError, match="expired"):
        make_hook(httpserver, SessionHook).request(Request("GET", "/ping"))


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BpmValidationError),
        (403, BpmAuthError),
        (404, BpmNotFound),
        (409, BpmConflict),
        (500, BpmServerError),
    ],
)
def test_status_maps_to_error_with_server_message(httpserver: HTTPServer, status, cls):
    httpserver.expect_request("/thing").respond_with_json({"message": "the server says why"}, status=status)
    with pytest.raises(cls) as info:
        make_hook(httpserver).request(Request("GET", "/thing"))
    assert info.value.status == status
    assert info.value.server_message == "the server says why"
    assert "Echo" in str(info.value) and "bpm_test" in str(info.value)


def test_long_html_error_is_shortened(httpserver: HTTPServer):
    httpserver.expect_request("/thing").respond_with_data("<html>" + "x" * 5000 + "</html>", status=400)
    with pytest.raises(BpmValidationError) as info:
        make_hook(httpserver).request(Request("GET", "/thing"))
    assert len(str(info.value)) < 800


# ---- retries --------------------------------------------------------------------------------


def test_reads_are_retried_on_503_then_succeed(httpserver: HTTPServer):
    httpserver.expect_ordered_request("/live/1").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/live/1").respond_with_data("busy", status=502)
    httpserver.expect_ordered_request("/live/1").respond_with_json({"state": "running"})
    assert make_hook(httpserver).get_process("1").state is ProcessState.RUNNING


def test_reads_are_retried_on_500_then_succeed(httpserver: HTTPServer):
    httpserver.expect_ordered_request("/live/1").respond_with_data("oops", status=500)
    httpserver.expect_ordered_request("/live/1").respond_with_json({"state": "running"})
    assert make_hook(httpserver).get_process("1").state is ProcessState.RUNNING
    assert len(httpserver.log) == 2


def test_a_start_is_not_resent_after_500(httpserver: HTTPServer):
    httpserver.expect_request("/start").respond_with_data("oops", status=500)
    with pytest.raises(BpmServerError, match="HTTP 500"):
        make_hook(httpserver).start_process("p")
    assert len(httpserver.log) == 1


def test_retries_give_up_after_max_attempts(httpserver: HTTPServer):
    httpserver.expect_request("/live/1").respond_with_data("down", status=504)
    with pytest.raises(BpmServerError, match=r"HTTP 504.*down"):
        make_hook(httpserver).get_process("1")
    assert len(httpserver.log) == 3


def test_a_start_is_not_resent_after_502(httpserver: HTTPServer):
    httpserver.expect_request("/start").respond_with_data("gateway", status=502)
    with pytest.raises(BpmServerError):
        make_hook(httpserver).start_process("p")
    assert len(httpserver.log) == 1


def test_429_honours_retry_after_even_for_a_start(httpserver: HTTPServer):
    httpserver.expect_ordered_request("/start").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "7"}
    )
    httpserver.expect_ordered_request("/start").respond_with_json({"id": 5})
    slept: list[float] = []
    hook = make_hook(httpserver)
    hook._sleep = slept.append
    assert hook.start_process("p").id == "5"
    assert slept == [7.0]


def test_429_every_time_raises_rate_limited(httpserver: HTTPServer):
    httpserver.expect_request("/start").respond_with_data("no", status=429, headers={"Retry-After": "0"})
    with pytest.raises(BpmRateLimited):
        make_hook(httpserver).start_process("p")


def test_connection_refused_is_retried_and_named():
    conn = Connection(
        conn_id="down", conn_type="echo", host="http://127.0.0.1:9", login="u", password=PASSWORD
    )
    slept: list[float] = []
    hook = EchoHook(
        "down",
        connection=conn,
        retry_policy=RetryPolicy(initial_delay=0.01, max_attempts=3),
        sleep=slept.append,
    )
    with pytest.raises(BpmConnectionError) as info:
        hook.start_process("p")  # refused: the server cannot have acted, so even a start is retried
    assert len(slept) == 2
    assert "no answer after 3 attempt(s)" in str(info.value) and "down" in str(info.value)
    assert PASSWORD not in str(info.value)


def test_a_start_is_not_resent_after_a_read_timeout(httpserver: HTTPServer):
    import time

    httpserver.expect_request("/start").respond_with_handler(lambda r: (time.sleep(0.5), Response("{}"))[1])
    hook = make_hook(httpserver, timeout=0.1)
    with pytest.raises(BpmConnectionError, match="not re-sent"):
        hook.start_process("p")
    assert len(httpserver.log) <= 1


def test_retry_after_http_date():
    from datetime import UTC, datetime

    from airflow_bpm_provider.hooks.retry import parse_retry_after

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("soon") is None


def test_backoff_grows_and_is_capped():
    policy = RetryPolicy(initial_delay=1.0, max_delay=4.0, max_attempts=10)
    delays = [policy._backoff(n) for n in range(1, 8)]
    assert all(0.5 <= d <= 4.0 for d in delays)
    assert max(delays[4:]) > 1.0


# ---- flows, sync and async ------------------------------------------------------------------


def test_flow_falls_back_after_not_found(httpserver: HTTPServer):
    httpserver.expect_request("/live/9").respond_with_json({"message": "gone"}, status=404)
    httpserver.expect_request("/history/9").respond_with_json({"state": "completed"})
    assert make_hook(httpserver).get_process("9").state is ProcessState.COMPLETED


def test_async_twins_share_auth_and_fallback(httpserver: HTTPServer):
    httpserver.expect_request(
        "/live/9", headers={"Authorization": basic("alice@example.com", PASSWORD)}
    ).respond_with_json({}, status=404)
    httpserver.expect_request("/history/9").respond_with_json({"state": "cancelled"})
    httpserver.expect_request("/tasks", query_string="pid=9&name=Approve").respond_with_json(
        [{"id": 3, "name": "Approve"}]
    )
    hook = make_hook(httpserver)

    async def main() -> tuple[ProcessInstance, list[Task]]:
        try:
            return await hook.aget_process("9"), await hook.alist_tasks(
                process_instance_id="9", name="Approve"
            )
        finally:
            await hook.aclose()

    instance, tasks = asyncio.run(main())
    assert instance.state is ProcessState.CANCELLED
    assert [t.id for t in tasks] == ["3"]


def test_async_retries_after_503(httpserver: HTTPServer):
    httpserver.expect_ordered_request("/live/1").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/live/1").respond_with_json({"state": "suspended"})
    hook = make_hook(httpserver)

    async def main() -> ProcessInstance:
        try:
            return await hook.aget_process("1")
        finally:
            await hook.aclose()

    assert asyncio.run(main()).state is ProcessState.SUSPENDED


def test_repeated_params_and_none_dropped(httpserver: HTTPServer):
    httpserver.expect_request("/q", query_string="a=1&a=2&flag=true").respond_with_json({})
    make_hook(httpserver).request(Request("GET", "/q", params={"a": [1, 2], "flag": True, "skip": None}))
    httpserver.check_assertions()


def test_state_parse_names_valid_values():
    assert ProcessState.parse("completed") is ProcessState.COMPLETED
    with pytest.raises(ValueError, match="RUNNING, SUSPENDED"):
        ProcessState.parse("done")


def test_a_far_off_retry_after_fails_at_once_naming_the_time(httpserver: HTTPServer):
    when = "Wed, 21 Oct 2099 07:28:00 GMT"
    httpserver.expect_request("/start").respond_with_data("quota", status=429, headers={"Retry-After": when})
    slept: list[float] = []
    hook = make_hook(httpserver)
    hook._sleep = slept.append
    with pytest.raises(BpmRateLimited) as info:
        hook.start_process("p")
    assert slept == [] and len(httpserver.log) == 1
    assert when in str(info.value)


def test_test_connection_closes_its_session(httpserver: HTTPServer):
    httpserver.expect_request("/login").respond_with_json({"token": "t"})
    httpserver.expect_request("/ping").respond_with_json({})
    hook = make_hook(httpserver, SessionHook)
    assert hook.test_connection() == (True, "pong")
    assert hook._transport is None


def test_errors_scrub_what_the_dialect_adds_to_secrets(httpserver: HTTPServer):
    class CookieHook(EchoHook):
        def _secrets(self) -> tuple[str, ...]:
            return (*super()._secrets(), "session-cookie-value-123")

    httpserver.expect_request("/thing").respond_with_data("your session-cookie-value-123 expired", status=500)
    hook = make_hook(httpserver, CookieHook)
    with pytest.raises(BpmServerError) as info:
        hook.request(Request("GET", "/thing"))
    assert "session-cookie-value-123" not in str(info.value) and "***" in str(info.value)


def test_a_redirect_is_not_success(httpserver: HTTPServer):
    httpserver.expect_request("/live/1").respond_with_data("", status=302, headers={"Location": "/sso/login"})
    with pytest.raises(BpmError) as info:
        make_hook(httpserver).cancel_process("1")
    assert "redirected to /sso/login" in str(info.value) and info.value.status == 302


@pytest.mark.parametrize("host", ["https://u:s3cr3t-pw@h/bonita", "u:s3cr3t-pw@h"])
def test_credentials_in_the_host_are_refused_without_echoing_them(host):
    from airflow_bpm_provider.hooks.settings import ConnectionSettings

    conn = Connection(conn_id="c", conn_type="echo", host=host, login="u", password="p")
    with pytest.raises(BpmConfigError, match="must not carry credentials") as info:
        ConnectionSettings.from_connection(conn)
    assert "s3cr3t-pw" not in str(info.value)


# ---- hints for a base URL without its context root ------------------------------------------


class RootedHook(EchoHook):
    context_roots = ("/engine-rest", "/other/service")


def test_a_first_404_asks_for_the_missing_context_root(httpserver: HTTPServer):
    httpserver.expect_request("/live/1").respond_with_data("<html>Not Found</html>", status=404)
    with pytest.raises(BpmNotFound) as info:
        make_hook(httpserver, RootedHook).cancel_process("1")
    text = str(info.value)
    assert "is the context root (/engine-rest, /other/service) missing from the connection's host?" in text
    assert f"e.g. http://{httpserver.host}:{httpserver.port}/engine-rest" in text
    assert "bpm_test" in text and "DELETE /live/1" in text


def test_no_context_root_hint_once_a_call_succeeded_or_with_a_path(httpserver: HTTPServer):
    httpserver.expect_request("/ping").respond_with_data("ok")
    httpserver.expect_request("/live/1").respond_with_json({"message": "no such instance"}, status=404)
    hook = make_hook(httpserver, RootedHook)
    hook.test_connection()
    with pytest.raises(BpmNotFound) as info:
        hook.cancel_process("1")
    assert "context root" not in str(info.value)  # the base URL works: the instance is missing

    conn = Connection(
        conn_id="bpm_test", conn_type="echo", host=httpserver.url_for("/x"), login="a", password=PASSWORD
    )
    httpserver.expect_request("/x/live/2").respond_with_data("", status=404)
    with pytest.raises(BpmNotFound) as info:
        RootedHook("bpm_test", connection=conn).cancel_process("2")
    assert "context root" not in str(info.value)  # a path was given: not second-guessed


def test_no_context_root_hint_for_a_system_served_at_the_root(httpserver: HTTPServer):
    httpserver.expect_request("/live/1").respond_with_data("", status=404)
    with pytest.raises(BpmNotFound) as info:
        make_hook(httpserver).cancel_process("1")
    assert "context root" not in str(info.value)


@pytest.mark.parametrize(
    ("hook_path", "roots"),
    [
        ("airflow_bpm_provider.hooks.bonita.BonitaHook", "/bonita"),
        (
            "airflow_bpm_provider.hooks.activiti.ActivitiHook",
            "/bpmn, /activiti-rest/service, /flowable-rest/service",
        ),
        ("airflow_bpm_provider.hooks.questetra.QuestetraHook", "/userweb"),
    ],
)
def test_each_system_names_its_own_context_roots(httpserver: HTTPServer, hook_path, roots):
    from importlib import import_module

    module, _, name = hook_path.rpartition(".")
    cls = getattr(import_module(module), name)
    # Tomcat's answer for a webapp that is not there: every path of the host is a 404.
    httpserver.expect_request(re.compile(".*")).respond_with_data("<html>HTTP Status 404</html>", status=404)
    conn = Connection(
        conn_id="bpm_x", conn_type=cls.conn_type, host=httpserver.url_for("/"), login="a", password=PASSWORD
    )
    ok, message = cls("bpm_x", connection=conn, retry_policy=RetryPolicy(initial_delay=0.0)).test_connection()
    assert not ok
    assert f"is the context root ({roots}) missing" in message, message


def test_questetra_cloud_is_served_at_the_root(httpserver: HTTPServer):
    from airflow_bpm_provider.hooks.questetra import QuestetraHook

    hook = QuestetraHook(
        "q",
        connection=Connection(
            conn_id="q", conn_type="questetra", host="https://acme.questetra.net", login="a", password="p"
        ),
    )
    assert hook._context_root_hint() is None


# ---- the ui_url extra -----------------------------------------------------------------------


def test_ui_url_extra_is_the_process_page(httpserver: HTTPServer):
    from airflow_bpm_provider.hooks.activiti import ActivitiHook

    page = "https://bpm.example.com/flowable-ui/workflow/#/processes/{id}"
    conn = Connection(
        conn_id="a",
        conn_type="activiti",
        host="https://bpm.example.com/flowable-rest/service",
        login="u",
        password="p",
        extra={"ui_url": page},
    )
    assert ActivitiHook("a", connection=conn).ui_url("5 0/x") == (
        "https://bpm.example.com/flowable-ui/workflow/#/processes/5%200%2Fx"
    )
    plain = Connection(conn_id="a", conn_type="activiti", host="https://h/bpmn", login="u", password="p")
    assert ActivitiHook("a", connection=plain).ui_url("7") is None  # the REST API does not say where a UI is


@pytest.mark.parametrize("value", ["bpm.example.com/processes/{id}", "https://bpm.example.com/processes/"])
def test_a_ui_url_without_scheme_or_id_is_refused_naming_the_connection(value):
    from airflow_bpm_provider.hooks.settings import ConnectionSettings

    conn = Connection(
        conn_id="wso2_bpm",
        conn_type="activiti",
        host="https://h/bpmn",
        login="u",
        password="p",
        extra={"ui_url": value},
    )
    with pytest.raises(
        BpmConfigError, match=r"extra field 'ui_url' must be an http\(s\) address with \{id\}"
    ) as info:
        ConnectionSettings.from_connection(conn)
    assert info.value.conn_id == "wso2_bpm" and "wso2_bpm" in str(info.value)


def test_yuuvis_takes_its_ui_page_from_the_ui_url_extra():
    from airflow_bpm_provider.hooks.yuuvis import YuuvisBpmHook

    extra = {"tenant": "acme", "ui_url": "https://client.example.com/processes?id={id}"}
    conn = Connection(
        conn_id="y", conn_type="yuuvis_bpm", host="https://gw", login="u", password="p", extra=extra
    )
    assert (
        YuuvisBpmHook("y", connection=conn).ui_url("a1b2") == "https://client.example.com/processes?id=a1b2"
    )
