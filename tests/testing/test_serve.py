"""``python -m airflow_bpm_provider.testing serve`` as a user runs it: a subprocess whose printed
connection lines are pasted into a shell and used by the real hooks."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests

from airflow_bpm_provider.hooks.registry import get_bpm_hook
from airflow_bpm_provider.testing.demo_systems import SYSTEMS, all_connections, seed_all
from airflow_bpm_provider.testing.engine import Engine

SERVE = [sys.executable, "-m", "airflow_bpm_provider.testing", "serve", "--large-file-mb", "1"]
LINE = re.compile(r"^export (AIRFLOW_CONN_[A-Z0-9_]+)=(.+)$")


@dataclass
class Served:
    url: str
    output: list[str]
    connections: dict[str, dict]  # conn id (lower case) -> its fields, read back by a shell


def shell_reads(line: str) -> tuple[str, str]:
    """What bash makes of one pasted ``export`` line: the variable and its value."""
    name = LINE.match(line).group(1)
    value = subprocess.run(
        ["bash", "-c", f"{line}\nprintenv {name}"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    return name, value.removesuffix("\n")


@contextmanager
def serve(*arguments: str) -> Iterator[Served]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [*SERVE, *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl+C"):
                break
        assert lines and lines[-1].startswith("Press Ctrl+C"), (
            lines,
            process.poll() and process.stderr.read(),
        )
        url = re.fullmatch(r"BPM emulator listening on (http://127\.0\.0\.1:\d+)", lines[0]).group(1)
        connections = {}
        for line in lines:
            if LINE.match(line):
                name, value = shell_reads(line)
                connections[name.removeprefix("AIRFLOW_CONN_").lower()] = json.loads(value)
        yield Served(url, lines, connections)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0


def expected_connections(url: str, systems=None) -> dict[str, dict]:
    """What every (or the named) system's demo connection is, from an engine seeded the same way."""
    return json.loads(json.dumps(all_connections(url, seed_all(Engine(), large_file_mb=1, systems=systems))))


def test_serve_prints_a_working_connection_for_every_system(monkeypatch):
    with serve("--port", "0") as served:
        port = int(served.url.rsplit(":", 1)[1])
        assert port != 0
        assert served.connections == expected_connections(served.url)
        assert {"questetra_demo", "dataspider_demo", "activiti_demo", "bonita_demo", "yuuvis_demo"} <= set(
            served.connections
        )
        for conn_id, fields in served.connections.items():
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
            with get_bpm_hook(conn_id) as hook:
                ok, message = hook.test_connection()
                assert ok, (conn_id, message)
                assert next(hook.find_processes(), None) is not None, f"{conn_id}: no demo processes"


def test_system_chooses_what_is_seeded_and_printed(monkeypatch):
    with serve("--port", "0", "--system", "bonita,yuuvis") as served:
        chosen = [s for s in SYSTEMS if s.names[0] in ("bonita", "yuuvis")]
        assert served.connections == expected_connections(served.url, chosen)
        assert set(served.connections) == {"bonita_demo", "yuuvis_demo"}
        # Questetra was not seeded: its demo user does not exist, so its API refuses it.
        questetra = expected_connections(served.url)["questetra_demo"]
        reply = requests.get(
            f"{served.url}/API/PE/ProcessModel/listStartable",
            auth=(questetra["login"], questetra["password"]),
            timeout=10,
        )
        assert reply.status_code == 401


def test_system_is_repeatable_and_knows_each_products_name():
    with serve("--port", "0", "--system", "DataSpider", "--system", "flowable") as served:
        assert set(served.connections) == {
            "questetra_demo",
            "dataspider_demo",
            "activiti_demo",
            "flowable_demo",
            "activiti_rest_demo",
        }
        assert served.connections["dataspider_demo"]["host"] == f"{served.url}/userweb"


def test_unknown_system_is_a_usage_error():
    result = subprocess.run([*SERVE, "--system", "camunda"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "unknown system camunda (known: questetra, dataspider, activiti" in result.stderr


def test_a_port_out_of_range_is_a_usage_error_not_a_traceback():
    result = subprocess.run([*SERVE, "--port", "70000"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "a TCP port is 0 to 65535, got '70000'" in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_is_one_clear_line_and_exit_code_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([*SERVE, "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use; "
        "pick another with --port PORT, or --port 0 for any free one"
    ]


def test_advance_after_holds_each_step_after_a_completed_task(monkeypatch):
    with serve("--port", "0", "--system", "activiti", "--advance-after", "1.5") as served:
        assert "Process steps after a completed task take 1.5 s (--advance-after)" in served.output
        monkeypatch.setenv("AIRFLOW_CONN_ACTIVITI_DEMO", json.dumps(served.connections["activiti_demo"]))
        with get_bpm_hook("activiti_demo") as hook:
            instance = hook.start_process("activiti-order-approval", variables={"customer": "ACME"})
            (review,) = hook.list_tasks(process_instance_id=instance.id)  # the first task: at once
            hook.claim_task(review.id)
            hook.complete_task(review.id, {"approved": True})
            completed_at = time.monotonic()
            assert hook.get_process(instance.id).state.name == "RUNNING"
            while hook.get_process(instance.id).state.name == "RUNNING":
                assert time.monotonic() - completed_at < 10, "the process never ended"
                time.sleep(0.1)
            assert time.monotonic() - completed_at >= 1.4
            assert hook.get_process(instance.id).state.name == "COMPLETED"


def test_the_readme_emulator_example_runs_as_printed():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "advance_after" in b]
    namespace: dict = {}
    exec(compile(block, "README emulator example", "exec"), namespace)
    assert {"questetra_demo", "activiti_demo", "bonita_demo", "yuuvis_demo"} <= set(namespace["connections"])
    assert namespace["emu"].engine.advance_after == 2 and namespace["emu"].engine.pending == {}
