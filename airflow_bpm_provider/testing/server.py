"""Run the emulator on 127.0.0.1 in a background thread (tests) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

from airflow_bpm_provider.testing.engine import Engine
from airflow_bpm_provider.testing.faults import FaultPlan


class Emulator:
    """An engine, its fault plan and, once started, the HTTP server in front of them."""

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        advance_after: float | None = None,
    ) -> None:
        """``advance_after``: seconds each process step after a completed task takes (see Engine)."""
        self.engine = engine or Engine()
        if advance_after is not None:
            self.engine.advance_after = advance_after
        self.faults = FaultPlan()
        self.host = host
        self.port = port
        self._socket: socket.socket | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> Any:
        from airflow_bpm_provider.testing.app import create_app

        return create_app(self.engine, self.faults)

    def seed_demo(self, **options: Any) -> dict[str, Any]:
        from airflow_bpm_provider.testing.demo import seed_demo

        return seed_demo(self.engine, **options)

    @classmethod
    def start(
        cls,
        engine: Engine | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        advance_after: float | None = None,
    ) -> Emulator:
        emulator = cls(engine, host=host, port=port, advance_after=advance_after)
        emulator.serve_in_background()
        return emulator

    def bind(self) -> None:
        """Take the port (port 0: a free one, then in ``self.port``); raises OSError when it is taken.

        Separate from serving, so a CLI can report a port in use before it seeds anything.
        """
        if self._socket is not None:
            return
        # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets whose proto says TCP, and
        # with Nagle on, a reply written in two pieces (headers, body) waits for the client's
        # delayed ACK, about 40 ms, on every reused keep-alive connection.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            # SO_REUSEADDR lets a restart reuse a port in TIME_WAIT; on Linux it still refuses a
            # port another socket listens on.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._socket = sock

    def serve_in_background(self, timeout: float = 15.0) -> None:
        import uvicorn

        self.bind()
        sock, self._socket = self._socket, None
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[sock])), name="bpm-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the BPM emulator did not start on {self.url}")
            time.sleep(0.02)

    def serve_forever(self) -> None:
        import uvicorn

        uvicorn.run(self.app(), host=self.host, port=self.port, log_level="info", lifespan="off")

    def stop(self) -> None:
        if self._socket is not None:  # bound but never served
            self._socket.close()
            self._socket = None
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Emulator:
        if self._server is None:
            self.serve_in_background()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
