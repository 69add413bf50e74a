"""A loopback HTTP/1.1 server that writes raw bytes, to produce the faults well-behaved servers never do.

Each connection gets one answer and is then closed (or reset): a truncated chunked body, a
connection reset mid-body, a lying Content-Length, a body trickling a byte at a time. The
answer is chosen per hit, so a test can fault the first try and answer the retry.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Answer = Callable[[socket.socket, int], None]  # writes an answer for hit number n (0-based)


@dataclass
class FaultyServer:
    answer: Answer
    hits: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> FaultyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                piece = conn.recv(65536)
                if not piece:
                    return
                data += piece
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
            while len(body) < int(headers.get("content-length", 0)):
                body += conn.recv(65536)
            hit = Hit(method, target.split("?", 1)[0], headers, body)
            self.hits.append(hit)
            with contextlib.suppress(OSError):  # the client gave up first: some tests want that
                self.answer(conn, len(self.hits) - 1)


def head(status: str = "200 OK", *headers: str, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Connection: close", *headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def full(body: bytes, *headers: str, status: str = "200 OK") -> Answer:
    """A correct answer."""
    return lambda conn, n: conn.sendall(head(status, *headers, length=len(body)) + body)


def reset(conn: socket.socket) -> None:
    """Close with a TCP reset instead of an orderly FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def truncated_chunked(start: bytes) -> Answer:
    """A chunked body announcing more than it sends, then an orderly close."""

    def answer(conn: socket.socket, n: int) -> None:
        chunk = b"%x\r\n" % (len(start) + 50) + start
        conn.sendall(head("200 OK", "Content-Type: application/json", "Transfer-Encoding: chunked") + chunk)

    return answer


def reset_mid_body(start: bytes, announced: int) -> Answer:
    def answer(conn: socket.socket, n: int) -> None:
        conn.sendall(head("200 OK", "Content-Type: application/json", length=announced) + start)
        time.sleep(0.05)
        reset(conn)

    return answer


def trickle(body: bytes, every: float, *headers: str) -> Answer:
    """The whole body, a byte at a time: each byte arrives well within any read timeout."""

    def answer(conn: socket.socket, n: int) -> None:
        conn.sendall(head("200 OK", *headers, length=len(body)))
        for i in range(len(body)):
            conn.sendall(body[i : i + 1])
            time.sleep(every)

    return answer


def then(*answers: Answer) -> Answer:
    """Answer hit n with ``answers[n]`` (the last one for every later hit)."""
    return lambda conn, n: answers[min(n, len(answers) - 1)](conn, n)
