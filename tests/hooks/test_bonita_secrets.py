"""Bonita's session cookie and CSRF token are as secret as the password."""

from __future__ import annotations

import pytest
from airflow.models.connection import Connection
from werkzeug import Response

from airflow_bpm_provider.exceptions import BpmServerError
from airflow_bpm_provider.hooks.bonita import BonitaHook
from airflow_bpm_provider.hooks.retry import RetryPolicy

SESSION, TOKEN = "jsession-0f9e8d7c6b5a", "csrf-token-1a2b3c4d5e"


def test_session_cookie_and_token_are_masked_and_never_in_an_error(httpserver, monkeypatch):
    import airflow.providers.common.compat.sdk as compat

    masked: list[str] = []
    monkeypatch.setattr(compat, "mask_secret", masked.append, raising=False)

    def login(_request):
        response = Response(status=204)
        response.set_cookie("JSESSIONID", SESSION, path="/bonita")
        response.set_cookie("X-Bonita-API-Token", TOKEN, path="/bonita")
        return response

    httpserver.expect_request("/bonita/loginservice", method="POST").respond_with_handler(login)
    httpserver.expect_request("/bonita/API/bpm/case/5").respond_with_data(
        f"session {SESSION} with token {TOKEN} broke", status=500
    )
    conn = Connection(
        conn_id="bonita_secrets",
        conn_type="bonita",
        host=httpserver.url_for("/bonita"),
        login="walter.bates",
        password="bpm-password-99",
    )
    hook = BonitaHook("bonita_secrets", connection=conn, retry_policy=RetryPolicy(max_attempts=1))
    with pytest.raises(BpmServerError) as info:
        hook.get_process("5")
    assert SESSION not in str(info.value) and TOKEN not in str(info.value)
    assert {SESSION, TOKEN, "bpm-password-99"} <= set(masked)


def test_a_failed_logout_is_logged_without_the_session_secrets(httpserver, logs):
    def login(_request):
        response = Response(status=204)
        response.set_cookie("JSESSIONID", SESSION, path="/bonita")
        response.set_cookie("X-Bonita-API-Token", TOKEN, path="/bonita")
        return response

    httpserver.expect_request("/bonita/loginservice", method="POST").respond_with_handler(login)
    httpserver.expect_request("/bonita/API/bpm/case/5").respond_with_json({"id": "5", "state": "started"})
    conn = Connection(
        conn_id="bonita_logout",
        conn_type="bonita",
        host=httpserver.url_for("/bonita"),
        login="w",
        password="pw-77",
    )
    hook = BonitaHook("bonita_logout", connection=conn, retry_policy=RetryPolicy(max_attempts=1))
    hook.get_process("5")
    transport = hook._transport

    def broken_send(request, headers):
        raise RuntimeError(f"socket closed while sending Cookie: JSESSIONID={SESSION}; token {TOKEN}")

    transport.send = broken_send
    hook.close()  # logs, never raises
    logged = logs()
    assert "Bonita logout for connection 'bonita_logout' failed" in logged
    assert SESSION not in logged and TOKEN not in logged
