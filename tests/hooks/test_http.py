"""The async transport: what it sends, and what it costs to create one per trigger."""

from __future__ import annotations

import asyncio
import ssl

from pytest_httpserver import HTTPServer

from airflow_bpm_provider.hooks.http import AsyncTransport, Request, SyncTransport, shared_ssl_context


def send_async(url: str, request: Request) -> int:
    async def main() -> int:
        transport = AsyncTransport(url, verify=True, timeout=(5, 5))
        try:
            return (await transport.send(request, {"Authorization": "Bearer t"})).status
        finally:
            await transport.close()

    return asyncio.run(main())


def test_async_form_keeps_repeated_keys_and_drops_none(httpserver: HTTPServer):
    httpserver.expect_request(
        "/search", method="POST", data="criteria=%3Cq%2F%3E&state=OFFERED&state=ALLOCATED&start=0"
    ).respond_with_data("ok")
    data = {"criteria": "<q/>", "state": ["OFFERED", "ALLOCATED"], "start": 0, "limit": None}
    assert send_async(httpserver.url_for(""), Request("POST", "/search", data=data)) == 200
    httpserver.check_assertions()


def test_sync_and_async_send_the_same_form(httpserver: HTTPServer):
    data = [("a", "1"), ("a", "2"), ("b", "x y")]
    httpserver.expect_request("/f", method="POST", data="a=1&a=2&b=x+y").respond_with_data("ok")
    sync = SyncTransport(httpserver.url_for(""), verify=True, timeout=(5, 5))
    assert sync.send(Request("POST", "/f", data=data), {}).status == 200
    assert send_async(httpserver.url_for(""), Request("POST", "/f", data=data)) == 200


def test_async_clients_share_one_tls_context_per_verify_setting():
    # Loading the CA bundle takes tens of milliseconds of CPU: a triggerer must not pay it per trigger.
    first = AsyncTransport("https://bpm.example.test", verify=True, timeout=(1, 1))
    second = AsyncTransport("https://other.example.test", verify=True, timeout=(1, 1))
    context = first.client._transport._pool._ssl_context
    assert context is second.client._transport._pool._ssl_context
    assert context is shared_ssl_context(True)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname

    insecure = shared_ssl_context(False)
    assert insecure is not context
    assert insecure.verify_mode is ssl.CERT_NONE
    assert (
        AsyncTransport("https://x", verify=False, timeout=(1, 1)).client._transport._pool._ssl_context
        is insecure
    )


def test_a_cookie_set_on_two_paths_does_not_break_either_transport(httpserver):
    import asyncio

    from werkzeug import Response

    from airflow_bpm_provider.hooks.http import AsyncTransport, Request, SyncTransport

    def twice(_request):
        response = Response("{}", content_type="application/json")
        response.set_cookie("GWSESSIONID", "root-session", path="/")
        response.set_cookie("GWSESSIONID", "engine-session", path="/bpm-engine")
        return response

    httpserver.expect_request("/bpm-engine/api/processes").respond_with_handler(twice)
    base = httpserver.url_for("/").rstrip("/")
    sync = SyncTransport(base, verify=True, timeout=(5, 5))
    for _ in range(2):  # the second answer meets a jar that already holds both cookies
        reply = sync.send(Request("GET", "/bpm-engine/api/processes"), {})
    assert reply.cookies["GWSESSIONID"] in ("root-session", "engine-session")

    async def main():
        transport = AsyncTransport(base, verify=True, timeout=(5, 5))
        try:
            for _ in range(2):
                reply = await transport.send(Request("GET", "/bpm-engine/api/processes"), {})
            return reply
        finally:
            await transport.close()

    assert asyncio.run(main()).cookies["GWSESSIONID"] in ("root-session", "engine-session")
