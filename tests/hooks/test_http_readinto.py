"""Reading a streamed download into the caller's buffer: plain bodies, encoded ones, short ones."""

from __future__ import annotations

import gzip
import os
import socket
import threading

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from airflow_bpm_provider.exceptions import BpmTransferError
from airflow_bpm_provider.hooks.http import Reply, Request, SyncTransport


def read_all(reply: Reply, size: int = 1 << 16) -> tuple[bytes, list[int]]:
    buffer = memoryview(bytearray(size))
    out, counts = bytearray(), []
    while count := reply.readinto(buffer):
        counts.append(count)
        out += buffer[:count]
    return bytes(out), counts


def streamed(url: str, path: str) -> Reply:
    transport = SyncTransport(url, verify=True, timeout=(5, 5))
    return transport.send(Request("GET", path, stream=True), {})


def test_a_plain_body_is_read_straight_into_the_buffer(httpserver: HTTPServer):
    data = os.urandom(3 * 1024 * 1024 + 17)
    httpserver.expect_request("/f").respond_with_data(data, content_type="application/octet-stream")
    reply = streamed(httpserver.url_for(""), "/f")
    try:
        got, counts = read_all(reply)
    finally:
        reply.close()
    assert got == data
    assert max(counts) <= 1 << 16
    assert reply.readinto(memoryview(bytearray(10))) == 0  # the end stays the end


def test_a_gzip_body_is_decoded_on_the_way(httpserver: HTTPServer):
    data = b"line of a report\n" * 50_000
    httpserver.expect_request("/g").respond_with_response(
        Response(gzip.compress(data), headers={"Content-Encoding": "gzip"})
    )
    reply = streamed(httpserver.url_for(""), "/g")
    try:
        got, _ = read_all(reply, 4096)
    finally:
        reply.close()
    assert got == data


def test_a_body_cut_short_raises_a_transfer_error():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 40_000)
        connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    reply = streamed(f"http://127.0.0.1:{port}", "/cut")
    buffer = memoryview(bytearray(1 << 16))
    received = 0
    with pytest.raises(BpmTransferError) as info:
        while count := reply.readinto(buffer):
            received += count
    reply.close()
    listener.close()
    assert received == 40_000
    assert "broke off after 40000 bytes" in str(info.value)
    assert "still to come" in str(info.value)


def test_a_reply_without_a_stream_reads_its_body():
    reply = Reply(status=200, headers={}, body=b"abcdef")  # type: ignore[arg-type]
    assert read_all(reply, 4) == (b"abcdef", [4, 2])
