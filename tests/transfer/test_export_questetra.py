"""The export job end to end: the real Questetra hook against the emulator, faults included."""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest
from airflow.models.connection import Connection

from airflow_bpm_provider.exceptions import BpmTransferError
from airflow_bpm_provider.hooks.questetra import QuestetraHook
from airflow_bpm_provider.hooks.retry import RetryPolicy
from airflow_bpm_provider.testing import Emulator
from airflow_bpm_provider.transfer.export import export_process_files

LARGE_MB = 24
EXPENSES, CONTRACTS = 11, 12


@pytest.fixture
def emu():
    emulator = Emulator.start()
    emulator.summary = emulator.seed_demo(large_file_mb=LARGE_MB)
    yield emulator
    emulator.stop()


@pytest.fixture
def hook(emu):
    conn = Connection(
        conn_id="questetra_e2e",
        conn_type="questetra",
        host=emu.url,
        login=emu.summary["user"],
        password=emu.summary["password"],
    )
    with QuestetraHook("questetra_e2e", connection=conn, retry_policy=RetryPolicy(initial_delay=0.0)) as h:
        yield h


def expected_digests(emu, model_id: int) -> dict[str, str]:
    out = {}
    for instance in emu.engine.instances.values():
        if instance.definition.id == model_id:
            for _, stored in instance.files():
                out.setdefault(stored.name, hashlib.sha256(stored.read()).hexdigest())
    return out


def large_file(emu) -> tuple[str, str]:
    """(name, sha256) of the demo's large generated file."""
    for instance in emu.engine.instances.values():
        for _, stored in instance.files():
            if stored.name == "scan-archive.bin":
                return stored.name, hashlib.sha256(stored.read()).hexdigest()
    raise AssertionError("the demo has no large file")


def test_a_truncated_download_is_resumed_with_a_range_request(emu, hook, tmp_path):
    emu.faults.truncate("File/download", times=1)
    signed = emu.summary["instances"]["contract_signed"]  # its first file is the large one
    manifest = export_process_files(hook, tmp_path, process_instance_ids=signed, max_concurrency=1)
    name, digest = large_file(emu)
    large = next(entry for entry in manifest if entry["file_name"] == name)
    assert large["sha256"] == digest == hashlib.sha256((tmp_path / large["path"]).read_bytes()).hexdigest()
    # The first try broke off halfway; the second asked only for the rest (whole chunks kept).
    assert [path for path, _ in emu.faults.served_ranges] == ["/API/OR/ProcessInstance/File/download"]
    assert 0 < emu.faults.served_ranges[0][1] <= large["size"] // 2
    assert [p for p in tmp_path.rglob(".*")] == [], "no temporary file may stay behind"


def test_a_server_that_ignores_ranges_gets_the_file_again_from_zero(emu, hook, tmp_path):
    emu.faults.ranges = False
    emu.faults.truncate("File/download", times=2)
    signed = emu.summary["instances"]["contract_signed"]
    manifest = export_process_files(hook, tmp_path, process_instance_ids=signed, max_concurrency=1)
    name, digest = large_file(emu)
    large = next(entry for entry in manifest if entry["file_name"] == name)
    assert large["size"] == LARGE_MB * 1024 * 1024
    assert large["sha256"] == digest == hashlib.sha256((tmp_path / large["path"]).read_bytes()).hexdigest()
    assert emu.faults.served_ranges == []


def test_a_download_that_keeps_breaking_fails_named_leaves_nothing_and_a_rerun_completes(emu, hook, tmp_path):
    emu.faults.truncate("File/download", times=3)  # the first file's first try and both retries
    query = {"process_model_info_id": EXPENSES}
    with pytest.raises(BpmTransferError) as info:
        export_process_files(
            hook, tmp_path, query=query, manifest_name="manifest.json", retries=2, max_concurrency=1
        )
    assert len(info.value.details) == 1, info.value.details
    detail = info.value.details[0]
    for part in (
        "Questetra connection 'questetra_e2e'",
        "process ",
        "file ",
        "GET /API/OR/ProcessInstance/File/download",
    ):
        assert part in detail, detail
    assert "gave up after 3 tries" in detail
    assert "[Questetra, connection 'questetra_e2e']" in str(info.value).splitlines()[0]
    failed_path = detail.split("-> ", 1)[1].split(":", 1)[0]
    assert not (tmp_path / failed_path).exists()
    assert not (tmp_path / "manifest.json").exists(), "a manifest means complete: none after a failure"
    assert [p for p in tmp_path.rglob(".*")] == [], "no temporary file may stay behind"

    manifest = export_process_files(hook, tmp_path, query=query, manifest_name="manifest.json")
    statuses = {entry["path"]: entry["status"] for entry in manifest}
    assert statuses.pop(failed_path) == "written"
    assert set(statuses.values()) == {"unchanged"}
    assert (tmp_path / "manifest.json").is_file()
    digests = expected_digests(emu, EXPENSES)
    for entry in manifest:
        on_disk = (tmp_path / entry["path"]).read_bytes()
        assert hashlib.sha256(on_disk).hexdigest() == entry["sha256"] == digests[entry["file_name"]]


def test_faults_on_many_requests_still_finish_in_one_try_with_every_file_intact(emu, hook, tmp_path):
    # Cut short, refused and rate-limited answers spread over the run, more than the hook alone absorbs.
    emu.faults.truncate("File/download", times=4)
    emu.faults.add("File/download", 503, times=6)
    emu.faults.add("File/download", 429, times=2, retry_after="0")
    ids = list(emu.summary["instances"].values())
    manifest = export_process_files(hook, tmp_path, process_instance_ids=ids, max_concurrency=4)
    assert len(manifest) == emu.summary["file_count"], "no file may be missing"
    for entry in manifest:
        on_disk = (tmp_path / entry["path"]).read_bytes()
        assert hashlib.sha256(on_disk).hexdigest() == entry["sha256"], entry["path"]
    stored = {stored.id: stored for _, _, stored in emu.engine.files.values()}
    expected = sorted(hashlib.sha256(f.read()).hexdigest() for f in stored.values())
    assert sorted(entry["sha256"] for entry in manifest) == expected, "no file may be corrupt"
    assert {entry["status"] for entry in manifest} == {"written"}


def test_downloads_are_retried_through_server_errors(emu, hook, tmp_path):
    emu.faults.add("File/download", 503, times=2, retry_after="0")
    manifest = export_process_files(hook, tmp_path, query={"process_model_info_id": EXPENSES})
    assert {entry["status"] for entry in manifest} == {"written"}
    downloads = [path for method, path in emu.engine.requests if path.endswith("File/download")]
    assert len(downloads) == len(manifest) + 2


def test_the_large_file_streams_with_bounded_memory(emu, hook, tmp_path):
    # Warm up first: lazy imports (lxml, fsspec) on the first export are not per-byte memory.
    export_process_files(hook, tmp_path / "warm-up", query={"process_model_info_id": EXPENSES})
    tracemalloc.start()
    try:
        manifest = export_process_files(hook, tmp_path / "out", query={"process_model_info_id": CONTRACTS})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    large = next(entry for entry in manifest if entry["file_name"] == "scan-archive.bin")
    assert large["size"] == LARGE_MB * 1024 * 1024
    # Emulator and client share this process: the peak covers both (a few 1 MiB chunks in flight
    # on each side, whatever the size), within the 16 MiB the export may grow by.
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes for a {large['size']} byte file"


def test_a_failed_rerun_removes_the_previous_runs_manifest(emu, hook, tmp_path):
    query = {"process_model_info_id": EXPENSES}
    export_process_files(hook, tmp_path, query=query, manifest_name="manifest.json")
    assert (tmp_path / "manifest.json").is_file()
    emu.faults.truncate("File/download", times=1)
    with pytest.raises(BpmTransferError):
        export_process_files(hook, tmp_path, query=query, manifest_name="manifest.json", retries=0)
    assert not (tmp_path / "manifest.json").exists()
