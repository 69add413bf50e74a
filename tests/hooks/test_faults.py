"""Faults a real network and a broken server produce, each through the sync and the async driver.

Every fault comes from a loopback server writing raw bytes (tests/faulty_server.py). Each test
checks the BpmError subclass and its fields, and counts server hits: safe requests are retried,
a start (POST) is not re-sent once the server may have acted on it.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import shutil
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from airflow.models.connection import Connection
from faulty_server import FaultyServer, full, head, reset_mid_body, then, trickle, truncated_chunked
from test_base import PASSWORD, EchoHook

from airflow_bpm_provider.exceptions import (
    BpmConnectionError,
    BpmError,
    BpmRateLimited,
    BpmServerError,
    BpmTransferError,
)
from airflow_bpm_provider.hooks.bounds import BodyError, BoundedDecoder, parse_content_length
from airflow_bpm_provider.hooks.http import Flow, Reply, Request
from airflow_bpm_provider.hooks.retry import RetryPolicy, parse_retry_after
from airflow_bpm_provider.models import ProcessFile

ATTEMPTS = 3
OK = full(b'{"state": "running"}', "Content-Type: application/json")
GET = Request("GET", "/live/1")
PDF = ProcessFile(name="a.pdf", process_instance_id="1", size=None, content_type=None)
START = Request("POST", "/start", json={"process": "p"})


class FileHook(EchoHook):
    """EchoHook plus a streamed download, the way the vendor hooks open files."""

    @contextmanager
    def _open_reply(self, file: ProcessFile, *, offset: int = 0) -> Iterator[Reply]:
        reply = self.request(Request("GET", f"/files/{file.name}", stream=True))
        try:
            yield reply
        finally:
            reply.close()


def make_hook(url: str, **extra: Any) -> FileHook:
    conn = Connection(
        conn_id="bpm_faults",
        conn_type="echo",
        host=url,
        login="alice@example.com",
        password=PASSWORD,
        extra={"timeout": 5, **extra},
    )
    return FileHook(
        "bpm_faults", connection=conn, retry_policy=RetryPolicy(initial_delay=0.0, max_attempts=ATTEMPTS)
    )


def one(request: Request) -> Flow[Reply]:
    reply = yield request
    return reply


def send(mode: str, hook: EchoHook, request: Request) -> Reply:
    """One request through the sync driver (requests) or the async one (httpx), as flows run."""
    if mode == "sync":
        try:
            return hook._run(one(request))
        finally:
            hook.close()

    async def main() -> Reply:
        try:
            return await hook._arun(one(request))
        finally:
            await hook.aclose()

    return asyncio.run(main())


def fails(mode: str, hook: EchoHook, request: Request, cls: type[BpmError]) -> BpmError:
    with pytest.raises(BpmError) as info:
        send(mode, hook, request)
    error = info.value
    assert type(error) is cls, f"{type(error).__name__}: {error}"
    assert (error.system, error.conn_id, error.method, error.path) == (
        "Echo",
        "bpm_faults",
        request.method,
        request.path,
    )
    assert "Echo" in str(error) and "bpm_faults" in str(error) and request.path in str(error)
    return error


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


# ---- broken bodies ----------------------------------------------------------------------------


@MODES
def test_a_truncated_chunked_body_is_retried_then_a_transfer_error(mode):
    with FaultyServer(truncated_chunked(b'{"state": "runn')) as server:
        error = fails(mode, make_hook(server.url), GET, BpmTransferError)
    assert len(server.hits) == ATTEMPTS
    assert f"after {ATTEMPTS} attempt(s)" in str(error)


@MODES
def test_a_truncated_body_then_a_good_one_succeeds(mode):
    with FaultyServer(then(truncated_chunked(b'{"st'), OK)) as server:
        assert send(mode, make_hook(server.url), GET).json() == {"state": "running"}
    assert len(server.hits) == 2


@MODES
def test_a_reset_mid_body_is_retried_for_a_read(mode):
    with FaultyServer(reset_mid_body(b'{"state": ', 200)) as server:
        fails(mode, make_hook(server.url), GET, BpmTransferError)
    assert len(server.hits) == ATTEMPTS


@MODES
def test_a_start_whose_answer_broke_off_is_not_sent_again(mode):
    with FaultyServer(reset_mid_body(b'{"id": ', 200)) as server:
        error = fails(mode, make_hook(server.url), START, BpmTransferError)
    assert len(server.hits) == 1  # the server started something: a repeat could start it twice
    assert "not re-sent" in str(error)


@MODES
def test_bad_gzip_is_a_server_error_retried_for_reads_only(mode):
    bad = full(b"this is not gzip at all", "Content-Encoding: gzip", "Content-Type: application/json")
    with FaultyServer(bad) as server:
        fails(mode, make_hook(server.url), GET, BpmServerError)
    assert len(server.hits) == ATTEMPTS
    with FaultyServer(bad) as server:
        fails(mode, make_hook(server.url), START, BpmServerError)
    assert len(server.hits) == 1


@MODES
def test_gzip_cut_short_is_a_transfer_error(mode):
    body = gzip.compress(json.dumps({"state": "running", "pad": "x" * 5000}).encode())[:-20]
    with FaultyServer(full(body, "Content-Encoding: gzip")) as server:
        fails(mode, make_hook(server.url), GET, BpmTransferError)
    assert len(server.hits) == ATTEMPTS


def _bomb(decoded: int) -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    parts = [squeeze.compress(zeros) for _ in range(decoded >> 20)]
    return b"".join(parts) + squeeze.flush()


BOMB = _bomb(400 << 20)  # about 400 KB on the wire, 400 MiB inflated


@MODES
def test_a_gzip_bomb_fails_fast_with_bounded_memory(mode):
    with FaultyServer(full(BOMB, "Content-Encoding: gzip", "Content-Type: application/json")) as server:
        hook = make_hook(server.url)  # the default cap, 64 MiB
        tracemalloc.start()
        started = time.monotonic()
        try:
            error = fails(mode, hook, GET, BpmServerError)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert "too large" in str(error) and "max_response_bytes=67108864" in str(error)
    assert len(server.hits) == 1  # a repeat would only inflate it again
    assert peak < 160 << 20, f"peak {peak >> 20} MiB"
    assert time.monotonic() - started < 20


@MODES
def test_a_body_announced_over_the_cap_is_refused_before_reading(mode):
    announced = lambda conn, n: conn.sendall(head("200 OK", length=10 << 20) + b"x" * 1000)  # noqa: E731
    with FaultyServer(announced) as server:
        error = fails(mode, make_hook(server.url, max_response_bytes=1 << 20), GET, BpmServerError)
    assert "announces 10485760 bytes" in str(error)
    assert len(server.hits) == 1


@MODES
def test_a_trickling_body_cannot_outlast_the_response_timeout(mode):
    body = json.dumps({"state": "running", "pad": "x" * 100}).encode()
    with FaultyServer(trickle(body, 0.05)) as server:
        started = time.monotonic()
        error = fails(mode, make_hook(server.url, response_timeout=0.5), GET, BpmTransferError)
        elapsed = time.monotonic() - started
    assert "response_timeout=0.5 s" in str(error)
    assert len(server.hits) == ATTEMPTS
    assert elapsed < ATTEMPTS * 1.5  # each try ends near its deadline, not after the ~6 s body


@MODES
def test_a_pause_mid_body_is_cut_at_the_deadline_not_the_read_timeout(mode):
    def pause(conn, n):
        conn.sendall(head("200 OK", length=100) + b'{"state": ')
        time.sleep(4)

    with FaultyServer(pause) as server:
        started = time.monotonic()
        error = fails(mode, make_hook(server.url, response_timeout=0.4, max_retries=1), GET, BpmTransferError)
        elapsed = time.monotonic() - started
    assert "response_timeout=0.4 s" in str(error)
    assert elapsed < ATTEMPTS * 1.0  # the read timeout is 5 s and the pause 4 s


@MODES
def test_a_request_that_cannot_be_built_is_not_sent(mode):
    with FaultyServer(OK) as server:
        bad = Request("GET", "/live/1", headers={"X-Echo": "a\r\nInjected: yes"})
        error = fails(mode, make_hook(server.url), bad, BpmConnectionError)
    assert "could not be sent" in str(error)
    assert server.hits == []


@MODES
@pytest.mark.parametrize("length", ["-5", "lots", "12, 13", "9" * 20])
def test_a_bad_content_length_is_refused_clearly(mode, length):
    with FaultyServer(
        lambda conn, n: conn.sendall(head("200 OK", f"Content-Length: {length}") + b"{}")
    ) as server:
        error = fails(mode, make_hook(server.url), GET, BpmServerError)
    assert "Content-Length" in str(error) or "content-length" in str(error).lower()
    assert len(server.hits) == ATTEMPTS


FAULTS = {
    "truncated chunked": (truncated_chunked(b'{"id": 4'), BpmTransferError),
    "reset mid-body": (reset_mid_body(b'{"id": ', 300), BpmTransferError),
    "bad gzip": (full(b"garbage", "Content-Encoding: gzip"), BpmServerError),
    "unknown encoding": (full(b"garbage", "Content-Encoding: br"), BpmServerError),
    "bad length": (
        lambda conn, n: conn.sendall(head("200 OK", "Content-Length: -3") + b"{}"),
        BpmServerError,
    ),
    "trickle": (trickle(b'{"id": 4}' * 20, 0.05), BpmTransferError),
}
SEARCH = Request("POST", "/search", data={"q": "x"}, idempotent=True)  # a read-only POST, like Questetra's


@MODES
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(("request_", "tries"), [(START, 1), (SEARCH, ATTEMPTS)], ids=["start", "search"])
def test_every_fault_retries_a_safe_request_and_never_resends_a_start(mode, fault, request_, tries):
    answer, cls = FAULTS[fault]
    with FaultyServer(answer) as server:
        fails(mode, make_hook(server.url, response_timeout=0.3), request_, cls)
    assert len(server.hits) == tries
    assert [hit.method for hit in server.hits] == ["POST"] * tries


# ---- Retry-After -------------------------------------------------------------------------------


@MODES
@pytest.mark.parametrize("value", ["-5", "soon", "Fri, 31 Dec 99999 23:59:59 GMT", "1e3"])
def test_an_unreadable_retry_after_is_ignored_with_a_clear_log(mode, value, logs):
    busy = full(b"busy", f"Retry-After: {value}", status="429 Too Many Requests")
    with FaultyServer(then(busy, OK)) as server:
        assert send(mode, make_hook(server.url), GET).status == 200
    assert len(server.hits) == 2
    text = logs()
    assert "ignoring Retry-After" in text and "neither seconds nor a date" in text


@MODES
def test_an_unreadable_retry_after_is_named_in_the_final_error(mode):
    busy = full(b"busy", "Retry-After: whenever", status="429 Too Many Requests")
    with FaultyServer(busy) as server:
        error = fails(mode, make_hook(server.url), GET, BpmRateLimited)
    assert "Retry-After 'whenever' is neither seconds nor a date" in str(error)
    assert len(server.hits) == ATTEMPTS


@MODES
@pytest.mark.parametrize("value", ["99999999999", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_an_absurdly_far_retry_after_fails_at_once_naming_the_time(mode, value):
    busy = full(b"quota", f"Retry-After: {value}", status="429 Too Many Requests")
    with FaultyServer(busy) as server:
        error = fails(mode, make_hook(server.url), START, BpmRateLimited)
    assert value in str(error)
    assert len(server.hits) == 1


def test_retry_after_parsing_refuses_what_is_not_a_delay():
    assert parse_retry_after("-5") is None
    assert parse_retry_after("1" * 100) is None
    assert parse_retry_after("٣") is None  # a non-ASCII digit
    assert parse_retry_after(" 30 ") == 30.0


# ---- streamed downloads ----------------------------------------------------------------------


def download(hook: FileHook, chunk_size: int = 8192) -> bytes:
    with hook.open_file(PDF) as reply:
        return b"".join(reply.iter_bytes(chunk_size))


def broken_download(answer: Any, **extra: Any) -> tuple[BpmTransferError, FaultyServer]:
    with FaultyServer(answer) as server, pytest.raises(BpmError) as info:
        download(make_hook(server.url, **extra))
    error = info.value
    assert type(error) is BpmTransferError, f"{type(error).__name__}: {error}"
    assert (error.system, error.conn_id, error.method, error.path) == (
        "Echo",
        "bpm_faults",
        "GET",
        "/files/a.pdf",
    )
    assert "bpm_faults" in str(error) and "GET /files/a.pdf" in str(error)
    return error, server


def test_a_stream_cut_short_raises_a_transfer_error_naming_the_download():
    cut = lambda conn, n: conn.sendall(head("200 OK", length=5000) + b"x" * 1000)  # noqa: E731
    error, _ = broken_download(cut)
    assert "broke off" in str(error)


def test_a_stream_reset_mid_body_raises_a_transfer_error():
    broken_download(reset_mid_body(b"x" * 3000, 100_000))


def test_a_truncated_chunked_stream_raises_a_transfer_error():
    broken_download(truncated_chunked(b"x" * 100))


def test_an_undecodable_stream_raises_a_transfer_error():
    error, _ = broken_download(full(b"not gzip" * 100, "Content-Encoding: gzip"))
    assert "broke off" in str(error)


def test_a_stalled_stream_raises_a_transfer_error():
    started = time.monotonic()
    error, _ = broken_download(trickle(b"x" * 200, 0.02), stall_timeout=0.5)
    assert "stalled" in str(error) and "stall_timeout=0.5 s" in str(error)
    assert time.monotonic() - started < 2.5


def test_a_long_steady_stream_has_no_whole_body_deadline():
    body = bytes(range(256)) * 4096  # 1 MiB in 2 KiB steps over about 1 s: slow, but moving

    def steady(conn, n):
        conn.sendall(head("200 OK", length=len(body)))
        for i in range(0, len(body), 2048):
            conn.sendall(body[i : i + 2048])
            time.sleep(0.002)

    with FaultyServer(steady) as server:
        assert download(make_hook(server.url, response_timeout=0.2, stall_timeout=0.3)) == body


@pytest.mark.parametrize(
    "answer",
    [
        lambda conn, n: conn.sendall(head("200 OK", length=5000) + b"x" * 1000),
        reset_mid_body(b"x" * 3000, 100_000),
        truncated_chunked(b"x" * 100),
        full(b"not gzip" * 100, "Content-Encoding: gzip"),
    ],
    ids=["cut short", "reset", "truncated chunked", "undecodable"],
)
@pytest.mark.parametrize("how", ["read", "read(n)", "readinto", "copyfileobj"])
def test_reading_a_broken_stream_as_a_file_raises_a_transfer_error(answer, how):
    with (
        FaultyServer(answer) as server,
        pytest.raises(BpmError) as info,
        make_hook(server.url).open_file(PDF) as stream,
    ):
        if how == "read":
            stream.read()
        elif how == "read(n)":
            while stream.read(700):
                pass
        elif how == "readinto":
            while stream.readinto(bytearray(700)):
                pass
        else:
            shutil.copyfileobj(stream, io.BytesIO())
    error = info.value
    assert type(error) is BpmTransferError, f"{type(error).__name__}: {error}"
    assert (error.system, error.conn_id, error.method, error.path) == (
        "Echo",
        "bpm_faults",
        "GET",
        "/files/a.pdf",
    )


def test_a_file_stream_reads_full_pieces_and_goes_on_with_iter_bytes():
    body = bytes(range(256)) * 1000
    with FaultyServer(full(body)) as server, make_hook(server.url).open_file(PDF) as stream:
        assert stream.read(100_001) == body[:100_001]  # whole, though the socket gives less at once
        assert next(stream.iter_bytes(10)) == body[100_001:100_011]  # what read() left, first
        pieces = stream.iter_bytes(65536)
        first = next(pieces)
        del pieces  # left half-way: nothing is lost for read()
        assert first + stream.read() == body[100_011:]
        assert stream.read() == b"" and list(stream.iter_bytes(10)) == []
    assert stream.closed
    with pytest.raises(ValueError, match="closed"):
        stream.read(1)


def test_a_stream_exposes_a_validated_content_length_and_refuses_a_bad_one():
    with FaultyServer(full(b"abc" * 10)) as server:
        hook = make_hook(server.url)
        with hook.open_file(PDF) as reply:
            assert reply.content_length == 30
            assert b"".join(reply.iter_bytes(4)) == b"abc" * 10
    bad = lambda conn, n: conn.sendall(head("200 OK", "Content-Length: -1") + b"abc")  # noqa: E731
    with FaultyServer(bad) as server, pytest.raises(BpmServerError, match="'-1' is not a byte count") as info:
        download(make_hook(server.url))
    assert info.value.path == "/files/a.pdf"


def test_a_decoded_stream_arrives_in_bounded_pieces():
    with FaultyServer(full(_bomb(8 << 20), "Content-Encoding: gzip")) as server:
        hook = make_hook(server.url)
        with hook.open_file(PDF) as reply:
            sizes = [len(piece) for piece in reply.iter_bytes(65536)]
    assert sum(sizes) == 8 << 20 and max(sizes) <= 65536


# ---- the safety net around flows --------------------------------------------------------------


def _parse(request: Request, fault: str) -> Flow[Any]:
    reply = yield request
    body = reply.json()
    if fault == "key":
        return body["missing"]
    if fault == "attribute":
        return body["items"][0].get("id")
    return int(body["items"][0])


@MODES
@pytest.mark.parametrize("fault", ["key", "attribute", "value"])
def test_a_wrong_shape_is_a_server_error_naming_the_request(mode, fault):
    answer = full(b'{"items": ["a string where an object belongs"]}', "Content-Type: application/json")
    with FaultyServer(answer) as server:
        hook = make_hook(server.url)
        with pytest.raises(BpmError) as info:
            if mode == "sync":
                hook._run(_parse(GET, fault))
            else:
                asyncio.run(hook._arun(_parse(GET, fault)))
    error = info.value
    assert type(error) is BpmServerError
    assert (error.method, error.path, error.conn_id, error.status) == ("GET", "/live/1", "bpm_faults", 200)
    assert str(error).startswith("unexpected answer:")


def _json_flow(hook: EchoHook, request: Request) -> Flow[Any]:
    reply = yield request
    return hook._json(request, reply)


@MODES
@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"[" * 100_000 + b"]" * 100_000, "nested too deeply"), (b'{"a": "\xff\xfe"}', "not UTF-8")],
)
def test_deep_or_undecodable_json_is_a_clear_server_error(mode, body, reason):
    with FaultyServer(full(body, "Content-Type: application/json")) as server:
        hook = make_hook(server.url)
        with pytest.raises(BpmServerError, match=reason) as info:
            if mode == "sync":
                hook._run(_json_flow(hook, GET))
            else:
                asyncio.run(hook._arun(_json_flow(hook, GET)))
    assert info.value.path == "/live/1" and "the body is not JSON" in str(info.value)


def test_an_error_before_any_answer_is_left_to_the_caller():
    def flow() -> Flow[None]:
        raise ValueError("bad argument")
        yield  # pragma: no cover

    with pytest.raises(ValueError, match="bad argument"):
        make_hook("http://127.0.0.1:9")._run(flow())


# ---- echoed secrets --------------------------------------------------------------------------

TOKEN = "tok-7d1e-secret-session"
COOKIE = "ck-91aa-secret-cookie"


class LoginHook(FileHook):
    """A session dialect: the login answers a token header and a session cookie."""

    session_cookies = ("SID",)

    def _login_flow(self) -> Flow[dict[str, str]]:
        reply = yield Request("POST", "/login", authenticate=False)
        return {"X-Token": reply.json()["token"]}

    def _auth_headers(self, request: Request, session: Any) -> dict[str, str]:
        return dict(session or {})


def _echoing(fault: str) -> Any:
    hook = make_hook("http://unused")
    echo = f"{PASSWORD} {hook.settings.basic_credentials} {TOKEN} {COOKIE}"
    login = full(
        json.dumps({"token": TOKEN}).encode(),
        "Content-Type: application/json",
        f"Set-Cookie: SID={COOKIE}; Path=/",
    )
    body = f"you sent {echo}".encode()
    if fault == "location":
        answer = full(body, f"Location: /sso/login?echo={echo.replace(' ', '+')}", status="302 Found")
    else:
        answer = full(body, f"Retry-After: {echo}", status="429 Too Many Requests")
    return lambda conn, n: (login if n == 0 else answer)(conn, n)


@MODES
@pytest.mark.parametrize("fault", ["location", "retry-after"])
def test_secrets_echoed_in_headers_and_body_reach_neither_errors_nor_debug_logs(mode, fault, logs):
    with FaultyServer(_echoing(fault)) as server:
        conn = make_hook(server.url)._connection
        hook = LoginHook(
            "bpm_faults", connection=conn, retry_policy=RetryPolicy(initial_delay=0, max_attempts=2)
        )
        with pytest.raises(BpmError) as info:
            send(mode, hook, GET)
    text = str(info.value) + repr(info.value.__dict__)
    logged = logs()  # DEBUG records (urllib3, httpcore, the hook) and Airflow's structured log
    assert "GET" in logged
    secrets = (PASSWORD, hook.settings.basic_credentials, TOKEN, COOKIE)
    for secret in secrets:
        assert secret not in text, f"{secret} in the error"
        assert secret not in logged, f"{secret} in the logs"
    assert "***" in text
    if fault == "location":
        assert "redirected to /sso/login" in text
    else:
        assert isinstance(info.value, BpmRateLimited) and "ignoring Retry-After" in logged


def test_a_failure_before_any_answer_stays_a_connection_error():
    hook = make_hook("http://127.0.0.1:9")
    with pytest.raises(BpmConnectionError, match=r"no answer after 3 attempt\(s\)"):
        hook._run(one(GET))


# ---- the pieces ------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("42", 42), (" 7 ", 7), ("5, 5", 5), (None, None)])
def test_content_length_parsing(value, expected):
    assert parse_content_length(value) == expected


@pytest.mark.parametrize("value", ["-1", "1.5", "x", "1, 2", "+3", str(1 << 60)])
def test_content_length_parsing_refuses_nonsense(value):
    with pytest.raises(ValueError, match="Content-Length"):
        parse_content_length(value)


def test_bounded_decoder_handles_multi_member_gzip_and_raw_deflate():
    two = gzip.compress(b"first ") + gzip.compress(b"second")
    assert BoundedDecoder("gzip").decode(two, 1000) == b"first second"
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    assert BoundedDecoder("deflate").decode(raw.compress(b"raw") + raw.flush(), 100) == b"raw"
    assert BoundedDecoder("deflate").decode(zlib.compress(b"wrapped"), 100) == b"wrapped"
    decoder = BoundedDecoder("gzip")
    assert len(decoder.decode(gzip.compress(bytes(10_000)), 101)) == 101  # stops at the limit
    with pytest.raises(BodyError, match="unsupported Content-Encoding"):
        BoundedDecoder("br")


def test_scrub_also_hides_the_url_encoded_forms_of_a_secret():
    from urllib.parse import quote, quote_plus

    from airflow_bpm_provider.exceptions import scrub

    secret = "p@ss w/rd&1"
    text = f"Location: /login?pw={quote(secret, safe='')}&again={quote_plus(secret)} raw={secret}"
    assert scrub(text, [secret]) == "Location: /login?pw=***&again=*** raw=***"
