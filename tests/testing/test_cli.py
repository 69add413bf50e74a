"""``python -m airflow_bpm_provider.testing serve``: arguments, seeding and a real run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
import requests

from airflow_bpm_provider.testing.__main__ import (
    FaultSpec,
    build_parser,
    configure,
    connection_line,
    parse_fault,
)
from airflow_bpm_provider.testing.demo import DEMO_PASSWORD, DEMO_USER
from airflow_bpm_provider.testing.server import Emulator


def test_defaults():
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.seed, args.large_file_mb, args.latency, args.fail) == (
        "127.0.0.1",
        8765,
        "demo",
        24,
        0.0,
        [],
    )


def test_all_options():
    args = build_parser().parse_args(
        [
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "9000",
            "--seed",
            "none",
            "--large-file-mb",
            "2",
            "--latency",
            "0.25",
            "--fail",
            "ProcessInstance/list:503:2",
            "--fail",
            "File/download:truncate:1",
        ]
    )
    assert (args.host, args.port, args.seed, args.large_file_mb, args.latency) == (
        "0.0.0.0",
        9000,
        "none",
        2,
        0.25,
    )
    assert args.fail == [FaultSpec("ProcessInstance/list", 503, 2), FaultSpec("File/download", None, 1)]


def test_fault_times_default_to_one_and_paths_may_contain_colons():
    assert parse_fault("/API/PE:429") == FaultSpec("/API/PE", 429, 1)
    assert parse_fault("a:b:500:3") == FaultSpec("a:b", 500, 3)


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--fail", "nostatus"],
        ["serve", "--fail", "x:abc:1"],
        ["serve", "--fail", "x:999:1"],
        ["serve", "--fail", "x:500:0"],
        ["serve", "--fail", ":500:1"],
        ["serve", "--seed", "lots"],
        ["serve", "--port", "-1"],
        ["serve", "--latency", "soon"],
        [],
    ],
)
def test_bad_arguments_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_configure_seeds_and_arms_faults():
    emulator = Emulator()
    args = build_parser().parse_args(
        [
            "serve",
            "--system",
            "questetra",
            "--large-file-mb",
            "1",
            "--latency",
            "0.5",
            "--fail",
            "view:502:2",
            "--fail",
            "download:truncate",
        ]
    )
    summary = configure(emulator, args)["Questetra / DataSpider BPM"]
    assert summary["large_file"]["size"] == 1024 * 1024
    assert len(emulator.engine.instances) == len(summary["instances"])
    assert emulator.faults.latency == 0.5
    assert emulator.faults.take("GET", "/API/OR/ProcessInstance/view").status == 502
    assert emulator.faults.take("GET", "/API/OR/ProcessInstance/File/download", truncation=True) is not None
    assert emulator.faults.take("GET", "/API/OR/ProcessInstance/File/download", truncation=True) is None


def test_injected_statuses_can_carry_retry_after():
    emulator = Emulator()
    args = build_parser().parse_args(
        ["serve", "--seed", "none", "--fail", "list:429:2", "--retry-after", "3"]
    )
    configure(emulator, args)
    fault = emulator.faults.take("POST", "/API/OR/ProcessInstance/list")
    assert (fault.status, fault.retry_after) == (429, "3")


def test_configure_without_seed_still_has_a_user():
    emulator = Emulator()
    summaries = configure(emulator, build_parser().parse_args(["serve", "--seed", "none"]))
    assert summaries == {}
    assert not emulator.engine.instances and not emulator.engine.definitions
    assert emulator.engine.check_password(DEMO_USER, DEMO_PASSWORD)


def test_connection_line_survives_a_shell():
    fields = {
        "conn_type": "questetra",
        "host": "http://127.0.0.1:1/userweb",
        "login": "u@x",
        "password": "it's",
    }
    line = connection_line("questetra_demo", fields)
    assert line.startswith("export AIRFLOW_CONN_QUESTETRA_DEMO=")
    echoed = subprocess.run(
        ["bash", "-c", f"{line}\nprintenv AIRFLOW_CONN_QUESTETRA_DEMO"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(echoed) == fields


def test_serve_in_a_subprocess():
    command = [
        sys.executable,
        "-m",
        "airflow_bpm_provider.testing",
        "serve",
        "--port",
        "0",
        "--system",
        "questetra",
        "--large-file-mb",
        "1",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Press Ctrl+C"):
                break
        output = "".join(lines)
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", output)
        assert match, (
            f"no URL in the output: {output!r}; stderr: {process.stderr.read() if process.poll() else ''}"
        )
        url = match.group(1)
        env_line = re.search(r"AIRFLOW_CONN_QUESTETRA_DEMO='(.+)'", output)
        connection = json.loads(env_line.group(1))
        assert connection["host"] == url
        reply = requests.get(
            f"{connection['host']}/userweb/API/PE/ProcessModel/listStartable",
            params={"limit": 10},
            auth=(connection["login"], connection["password"]),
            timeout=10,
        )
        assert reply.status_code == 200 and reply.json()["count"] == 4  # the 3 demo apps and the Quickstart's
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0
