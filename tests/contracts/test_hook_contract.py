"""The contract every hook keeps, checked on each connection type against the emulator.

``open_file`` yields a binary file object (``read``, ``readinto``, ``shutil.copyfileobj``,
boto3's ``upload_fileobj``) that still offers ``iter_bytes``; a body cut short raises
BpmTransferError from ``read``. ``unassign_task`` releases a claimed task where the vendor's
API can, and says plainly where it cannot (Questetra).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest
from airflow.models.connection import Connection

from airflow_bpm_provider.exceptions import BpmConfigError, BpmTransferError
from airflow_bpm_provider.hooks.base import BpmHook
from airflow_bpm_provider.hooks.registry import hook_class
from airflow_bpm_provider.hooks.retry import RetryPolicy
from airflow_bpm_provider.models import ProcessFile
from airflow_bpm_provider.testing.demo_systems import all_connections, seed_all
from airflow_bpm_provider.testing.server import Emulator

CONNECTIONS = ["questetra_demo", "dataspider_demo", "activiti_demo", "yuuvis_demo", "bonita_demo"]
NAMES = itertools.count()  # Bonita document names are unique per case
BIG = 6 * 1024 * 1024 + 123  # over boto3's 5 MiB part minimum: the upload goes multipart


@pytest.fixture(scope="module")
def emu() -> Iterator[tuple[Emulator, dict[str, Any], dict[str, Any]]]:
    emulator = Emulator.start()
    summaries = seed_all(emulator.engine, large_file_mb=1)
    try:
        yield emulator, summaries, all_connections(emulator.url, summaries)
    finally:
        emulator.stop()


@pytest.fixture
def system(emu, request) -> Iterator[tuple[Emulator, BpmHook, dict[str, Any]]]:
    emulator, summaries, connections = emu
    fields = dict(connections[request.param])
    extra = fields.pop("extra", None)
    conn = Connection(conn_id=request.param, extra=json.dumps(extra) if extra else None, **fields)
    hook = hook_class(conn.conn_type, conn_id=request.param)(
        request.param, connection=conn, retry_policy=RetryPolicy(initial_delay=0.0, max_attempts=1)
    )
    emulator.faults.clear()
    try:
        yield emulator, hook, summaries
    finally:
        emulator.faults.clear()
        hook.close()


def a_file(hook: BpmHook, summaries: dict[str, Any], *, size: int = 200_000) -> tuple[ProcessFile, bytes]:
    """A stored file of a process this connection sees, added through the hook where it can."""
    content = bytes(range(256)) * (size // 256) + b"end"
    if hook.conn_type == "activiti":
        from airflow_bpm_provider.testing.demo_activiti import PROCESS_KEY

        instance = hook.start_process(PROCESS_KEY)
        hook.set_variable(instance.id, "scan", content)  # type: ignore[attr-defined]
        (file,) = [f for f in hook.list_files(instance.id) if f.name == "scan" or "scan" in str(f.ref)]
        return file, content
    if hook.conn_type == "bonita":
        case_id = summaries["Bonita"]["cases"]["open"]
        with tempfile.TemporaryDirectory() as folder:
            source = Path(folder) / "scan.bin"
            source.write_bytes(content)
            added = hook.add_document(case_id, f"scan{next(NAMES)}", source=str(source))  # type: ignore[attr-defined]
        (file,) = [f for f in hook.list_files(case_id) if f.group == added["name"]]
        return file, content
    for process in hook.find_processes():
        for file in hook.list_files(process.id):
            if not file.external_url and file.size:
                with hook.open_file(file) as stream:
                    return file, b"".join(stream.iter_bytes(65536))
    raise AssertionError(f"no stored file visible to {hook.bpm_conn_id}")


@pytest.mark.parametrize("system", CONNECTIONS, indirect=True)
def test_open_file_is_a_binary_file_object(system):
    _, hook, summaries = system
    file, content = a_file(hook, summaries)
    assert content
    with hook.open_file(file) as stream:
        assert isinstance(stream, io.RawIOBase) and stream.readable() and not stream.seekable()
        assert stream.status == 200 and stream.headers.get("content-type")
        head = stream.read(5)
        assert head == content[:5]
        buffer = bytearray(7)
        assert stream.readinto(buffer) == min(7, len(content) - 5)
        assert bytes(buffer[: len(content) - 5]) == content[5:12]
        rest = stream.read()
        assert head + bytes(buffer[: max(0, min(7, len(content) - 5))]) + rest == content
        assert stream.read() == b"" and stream.read(10) == b""
    assert stream.closed
    with hook.open_file(file) as stream:
        copied = io.BytesIO()
        shutil.copyfileobj(stream, copied, length=1000)
    assert copied.getvalue() == content
    with hook.open_file(file) as stream:
        first = stream.read(3)
        assert first + b"".join(stream.iter_bytes(4096)) == content  # iter_bytes goes on from there


@pytest.mark.parametrize("system", CONNECTIONS, indirect=True)
def test_a_truncated_download_raises_a_transfer_error_from_read(system):
    emulator, hook, summaries = system
    file, _ = a_file(hook, summaries)
    with hook.open_file(file) as probe:
        path = probe.url.split("?", 1)[0].split("://", 1)[-1].split("/", 1)[-1]
    emulator.faults.truncate("/" + path)
    with hook.open_file(file) as stream, pytest.raises(BpmTransferError) as info:
        stream.read()
    error = info.value
    assert (error.system, error.conn_id, error.method) == (hook.system, hook.bpm_conn_id, "GET")
    assert error.path and error.path.split("?", 1)[0] in "/" + path
    assert "broke off" in str(error)


@pytest.mark.parametrize("system", CONNECTIONS, indirect=True)
def test_upload_fileobj_takes_the_stream(system, monkeypatch):
    _, hook, summaries = system
    file, content = a_file(hook, summaries)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="exports")
        with hook.open_file(file) as stream:
            s3.upload_fileobj(stream, "exports", "f.bin")
        assert s3.get_object(Bucket="exports", Key="f.bin")["Body"].read() == content


@pytest.mark.parametrize("system", ["activiti_demo"], indirect=True)
def test_a_multipart_upload_gets_full_parts_from_read(system, monkeypatch):
    """boto3 cuts a non-seekable stream into parts of what one read(n) returns; S3 refuses a
    part under 5 MiB but the last, so read(n) must return n bytes until the file ends."""
    from boto3.s3.transfer import TransferConfig

    _, hook, summaries = system
    file, content = a_file(hook, summaries, size=BIG)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    config = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="exports")
        with hook.open_file(file) as stream:
            s3.upload_fileobj(stream, "exports", "big.bin", Config=config)
        stored = s3.get_object(Bucket="exports", Key="big.bin")
        assert hashlib.sha256(stored["Body"].read()).digest() == hashlib.sha256(content).digest()
        assert stored["ETag"].strip('"').endswith("-2")  # two parts: 5 MiB and the rest


# ---- releasing a claim ----------------------------------------------------------------------


def _open_task(hook: BpmHook):
    for task in hook.list_tasks():
        if not task.assignee and task.state not in ("SUSPENDED",):
            return task
    raise AssertionError(f"no unclaimed open task visible to {hook.bpm_conn_id}")


def _assignee(hook: BpmHook, task_id: str) -> str | None:
    (task,) = [t for t in hook.list_tasks() if t.id == task_id]
    return task.assignee


@pytest.mark.parametrize("system", CONNECTIONS, indirect=True)
def test_unassign_releases_a_claimed_task(system, caplog):
    _, hook, _ = system
    caplog.set_level(logging.WARNING)
    task = _open_task(hook)
    if hook.conn_type == "questetra":
        # Seed 003: the Workflow API accepts or force-allocates a task, never gives one back.
        with pytest.raises(BpmConfigError, match="not supported by the Questetra API") as info:
            hook.unassign_task(task.id)
        assert info.value.conn_id == hook.bpm_conn_id
        return
    hook.claim_task(task.id)
    assert _assignee(hook, task.id)
    hook.unassign_task(task.id)
    assert _assignee(hook, task.id) is None
    hook.unassign_task(task.id)  # releasing a task no one holds is no error
    assert _assignee(hook, task.id) is None
    hook.claim_task(task.id)  # and it can be claimed again
    assert _assignee(hook, task.id)
    hook.unassign_task(task.id)
