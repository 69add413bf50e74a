"""Start and stop the tier's servers: each in its own process group, logging to a file, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from glob import glob
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], bool], what: str, *, timeout: float, process: Service | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        if process is not None and process.exited():
            raise RuntimeError(
                f"{what}: {process.name} exited ({process.popen.returncode})\n{process.tail()}"
            )
        if time.monotonic() > deadline:
            tail = f"\n{process.tail()}" if process else ""
            raise RuntimeError(f"{what}: not ready after {timeout:.0f} s{tail}")
        time.sleep(0.3)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Service:
    """One server process; ``stop`` ends its whole process group (a Celery worker's children too)."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        argv = list(command)
        if user is not None:
            argv = ["runuser", "-u", user, "--", *argv]
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )

    def exited(self) -> bool:
        return self.popen.poll() is not None

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20) -> None:
        stop_all([self], timeout)

    def terminate(self) -> None:
        if not self.exited():
            self._signal(signal.SIGTERM)

    def finish(self, deadline: float) -> None:
        """Wait for the leader until ``deadline`` (monotonic), then kill what is left of the group."""
        try:
            self.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.popen.wait(10)
        # Children that outlived their leader (a worker's task processes) go too.
        self._signal(signal.SIGKILL)
        self._log.close()

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)


def stop_all(services: Sequence[Service], timeout: float = 20) -> None:
    """SIGTERM every group at once, give them ``timeout`` seconds together, then SIGKILL."""
    for service in services:
        service.terminate()
    deadline = time.monotonic() + timeout
    for service in services:
        service.finish(deadline)


def postgres_bin(name: str) -> str:
    """Debian keeps initdb and postgres off PATH, under /usr/lib/postgresql/<major>/bin."""
    candidates = sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    found = candidates[-1] if candidates else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run `make e2e`, which installs Debian's postgresql")
    return found


def database_user() -> str | None:
    """PostgreSQL refuses to run as root: use the postgres account then, else the current user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "running as root without a postgres account: install Debian's postgresql"
        ) from None
    return "postgres"


def start_postgres(data: Path, port: int, log_dir: Path) -> Service:
    user = database_user()
    data.mkdir(parents=True)
    if user is not None:
        account = pwd.getpwnam(user)
        for path in (data.parent, data):
            os.chown(path, account.pw_uid, account.pw_gid)
    init = [
        postgres_bin("initdb"),
        "-D",
        str(data),
        "-U",
        "airflow",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--no-sync",
    ]
    if user is not None:
        init = ["runuser", "-u", user, "--", *init]
    result = subprocess.run(init, capture_output=True, text=True, timeout=180)
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    command = [
        postgres_bin("postgres"),
        "-D", str(data),
        "-h", "127.0.0.1",
        "-p", str(port),
        "-k", str(data),  # the socket stays in the throwaway folder
        "-c", "fsync=off",
        "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
        "-c", "max_connections=200",
    ]  # fmt: skip
    return Service("postgres", command, log_dir=log_dir, user=user)
