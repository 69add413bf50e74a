"""FaultProxy: clean HTTP/1.1 keep-alive when it does nothing, and each fault exactly as documented."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import requests

from airflow_bpm_provider.testing.fault_proxy import KINDS, FaultProxy

BODY = bytes(range(256)) * 64  # 16 KiB


class Upstream(http.server.BaseHTTPRequestHandler):
    """A plain HTTP/1.1 server: a fixed-length body, a chunked one, and a POST that counts as an action."""

    protocol_version = "HTTP/1.1"
    actions: list[bytes] = []

    def do_GET(self) -> None:
        if self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(BODY), 5000):
                piece = BODY[start : start + 5000]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path.startswith("/empty"):
            self.send_response(204)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("Set-Cookie", "SESSION=cookie-value-123; Path=/")
        self.end_headers()
        self.wfile.write(BODY)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Upstream.actions.append(body)
        answer = b'{"started": %d}' % len(Upstream.actions)
        self.send_response(201)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture
def proxy(upstream: str) -> Iterator[FaultProxy]:
    Upstream.actions.clear()
    with FaultProxy.start(upstream, rate=0.0, seed=3) as running:
        yield running


def only(proxy: FaultProxy, kind: str) -> None:
    proxy.weights = {kind: 1.0}
    proxy.rate = 1.0


def raw_exchange(proxy: FaultProxy, request: bytes) -> tuple[bytes, str]:
    """Send one request on a fresh socket; the bytes received and how the connection ended."""
    with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while True:
            try:
                piece = sock.recv(65536)
            except ConnectionResetError:
                return received, "reset"
            if not piece:
                return received, "closed"
            received += piece


def test_without_faults_requests_and_httpx_reuse_one_connection_and_get_every_byte(proxy):
    with requests.Session() as session:
        for path in ("/fixed", "/chunked", "/empty", "/fixed"):
            reply = session.get(proxy.url + path)
            assert reply.content == (b"" if path == "/empty" else BODY)
        assert session.post(proxy.url + "/start", json={"n": 1}).json() == {"started": 1}
    assert proxy.connections == 1
    with httpx.Client() as client:
        for path in ("/chunked", "/fixed"):
            assert client.get(proxy.url + path).content == BODY
        assert client.post(proxy.url + "/start", content=b"x").status_code == 201
    assert proxy.connections == 2
    exchanges = proxy.exchanges()
    assert [(e.method, e.path, e.status) for e in exchanges] == [
        ("GET", "/fixed", 200),
        ("GET", "/chunked", 200),
        ("GET", "/empty", 204),
        ("GET", "/fixed", 200),
        ("POST", "/start", 201),
        ("GET", "/chunked", 200),
        ("GET", "/fixed", 200),
        ("POST", "/start", 201),
    ]
    assert all(e.forwarded and e.delivered and e.fault is None for e in exchanges)
    assert Upstream.actions == [b'{"n": 1}', b"x"] or Upstream.actions == [b'{"n":1}', b"x"]
    assert not proxy.counts()


def test_status_faults_keep_the_connection_and_only_504_reaches_the_server(proxy):
    only(proxy, "5xx")
    seen = []
    with requests.Session() as session:
        for _ in range(12):
            reply = session.post(proxy.url + "/start", data=b"go")
            seen.append(reply.status_code)
            assert b"injected by the fault proxy" in reply.content
    assert proxy.connections == 1  # an injected status is a whole, well-framed answer
    assert set(seen) <= {500, 502, 503, 504} and len(set(seen)) >= 3
    exchanges = proxy.exchanges()
    assert [e.forwarded for e in exchanges] == [status == 504 for status in seen]
    assert len(Upstream.actions) == seen.count(504)
    assert all(e.answer_lost == (status == 504) for e, status in zip(exchanges, seen, strict=True))
    assert proxy.counts() == {"5xx": 12}


def test_429_carries_a_small_retry_after_and_never_reaches_the_server(proxy):
    only(proxy, "429")
    with httpx.Client() as client:
        replies = [client.post(proxy.url + "/start", content=b"go") for _ in range(6)]
    assert {r.status_code for r in replies} == {429}
    assert {r.headers["retry-after"] for r in replies} <= {"0", "1"}
    assert Upstream.actions == []
    assert not any(e.forwarded for e in proxy.exchanges())
    assert proxy.connections == 1


@pytest.mark.parametrize("path", ["/fixed", "/chunked"])
def test_truncate_sends_part_of_the_body_then_closes_cleanly(proxy, path):
    only(proxy, "truncate")
    received, ending = raw_exchange(proxy, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert ending == "closed"
    if path == "/fixed":
        assert b"Content-Length: 16384" in head and len(body) < len(BODY)
        assert BODY.startswith(body)
    else:
        assert not body.endswith(b"0\r\n\r\n")  # the chunked body never ends
    (exchange,) = proxy.exchanges()
    assert exchange.forwarded and exchange.status == 200 and not exchange.delivered
    assert "cut at" in (exchange.detail or "")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        requests.get(proxy.url + path)
    with pytest.raises(httpx.TransportError):
        httpx.get(proxy.url + path)


def test_reset_breaks_the_connection_with_rst_mid_answer(proxy):
    only(proxy, "reset")
    received, ending = raw_exchange(proxy, b"GET /fixed HTTP/1.1\r\nHost: x\r\n\r\n")
    assert ending == "reset"
    assert len(received) < len(BODY)
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(proxy.url + "/fixed")
    assert all(e.forwarded and not e.delivered for e in proxy.exchanges())


def test_an_answer_lost_after_the_server_acted(proxy):
    only(proxy, "lost")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(proxy.url + "/start", data=b"once")
    assert Upstream.actions == [b"once"]  # the server did start it
    (exchange,) = proxy.exchanges()
    assert exchange.forwarded and exchange.status == 201 and exchange.answer_lost
    assert proxy.counts() == {"lost": 1}


def test_latency_delays_a_whole_answer(proxy):
    only(proxy, "latency")
    proxy.latency = (0.3, 0.3)
    began = time.monotonic()
    assert requests.get(proxy.url + "/fixed").content == BODY
    assert time.monotonic() - began >= 0.3
    (exchange,) = proxy.exchanges()
    assert exchange.delivered and exchange.fault == "latency"


def test_one_seed_gives_one_fault_sequence_at_about_the_rate(upstream):
    sequences = []
    for _ in range(2):
        with FaultProxy.start(upstream, rate=0.25, seed=11) as proxy, requests.Session() as session:
            for _ in range(120):
                with contextlib.suppress(requests.RequestException):
                    session.get(proxy.url + "/empty", timeout=5)
            sequences.append([e.fault for e in proxy.exchanges()])
    assert sequences[0] == sequences[1]
    faulted = [kind for kind in sequences[0] if kind]
    assert 12 <= len(faulted) <= 50  # 30 expected
    assert set(faulted) <= set(KINDS) and len(set(faulted)) >= 4


def test_a_forced_fault_hits_exactly_the_call_after_the_one_named(proxy):
    proxy.force("5xx", status=500, after="^POST /start$", skip=1)
    with requests.Session() as session:
        statuses = [session.get(proxy.url + "/empty").status_code]
        statuses.append(session.post(proxy.url + "/start", data=b"go").status_code)
        statuses += [session.get(proxy.url + "/empty").status_code for _ in range(3)]
    assert statuses == [204, 201, 204, 500, 204]  # the second call after the start, once
    assert [e.fault for e in proxy.exchanges()] == [None, None, None, "5xx", None]
    with pytest.raises(ValueError, match="unknown fault kind"):
        proxy.force("meteor")


def test_headers_on_the_wire_are_recorded_for_secret_searches(proxy):
    requests.get(proxy.url + "/fixed", auth=("user", "pass-word-1"))
    (exchange,) = proxy.exchanges()
    assert ("Authorization", "Basic dXNlcjpwYXNzLXdvcmQtMQ==") in exchange.request_headers
    assert ("Set-Cookie", "SESSION=cookie-value-123; Path=/") in exchange.reply_headers


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="http://"):
        FaultProxy("https://example.com")
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultProxy("http://127.0.0.1:1", weights={"meteor": 1.0})
    with pytest.raises(ValueError, match="rate"):
        FaultProxy("http://127.0.0.1:1", rate=1.5)
