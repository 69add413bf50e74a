"""The example DAGs, run by real Airflow (`airflow dags test`) against the emulator, as `make demo` does.

The emulator holds each step after a completed task back for ADVANCE_AFTER seconds (its
``advance_after`` knob), so a wait that begins right after the DAG completed a task is not over
at its first check: the poke run pokes again, the deferrable run defers and its trigger resumes
it. What deferred is read from Airflow's own log lines, as ``make demo`` reports it.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from airflow_bpm_provider.testing.demo_run import run_demo
from airflow_bpm_provider.testing.demo_systems import all_dags, seed_all
from airflow_bpm_provider.testing.engine import Engine

LARGE_FILE_MB = 3
ADVANCE_AFTER = 2.0
# Each of these waits begins right after the DAG completed a task, so with the delay it defers.
MUST_DEFER = {
    ("bpm_questetra_approval", "wait_for_approval_task"),
    ("bpm_questetra_approval", "wait_for_completion"),
    ("bpm_activiti_order", "wait_until_completed"),
    ("bpm_yuuvis_approval", "wait_until_completed"),
    ("bpm_bonita_expense", "wait_until_completed"),
}


def expected_files() -> dict[tuple[str, str], set[str]]:
    """(process id, server file name) → sha256s (names repeat), from an engine seeded like the demo's."""
    engine = Engine()
    seed_all(engine, large_file_mb=LARGE_FILE_MB)
    expected = {}
    for instance in engine.instances.values():
        for _, stored in instance.files():
            digest = hashlib.sha256(b"".join(stored.chunks())).hexdigest()
            expected.setdefault((str(instance.id), stored.name), set()).add(digest)
    return expected


@pytest.fixture(scope="module", params=[False, True], ids=["poke", "deferrable"])
def demo_run(request, tmp_path_factory):
    """Every example DAG, once waiting on workers and once with AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE."""
    root = tmp_path_factory.mktemp("demo")
    output = root / "output"
    progress: list[tuple[float, str]] = []
    outcome = run_demo(
        output,
        deferrable=request.param,
        advance_after=ADVANCE_AFTER,
        large_file_mb=LARGE_FILE_MB,
        airflow_home=root / "airflow-home",
        progress=lambda line: progress.append((time.monotonic(), line)),
    )
    return output, outcome, request.param, progress


def test_every_example_dag_succeeds(demo_run):
    _, outcome, _, _ = demo_run
    results = outcome.results
    assert [r.dag_id for r in results] == all_dags()
    failed = {r.dag_id: r.tail() for r in results if not r.ok}
    assert not failed, failed


def test_deferrable_waits_really_defer_and_resume_through_their_trigger(demo_run):
    _, outcome, deferrable, _ = demo_run
    deferred = {
        (dag, task): counts for dag, tasks in outcome.deferrals.items() for task, counts in tasks.items()
    }
    if not deferrable:
        assert deferred == {}, "poke mode must not defer"
        return
    assert set(deferred) >= MUST_DEFER, sorted(deferred)
    for (dag, task), counts in deferred.items():
        assert counts.deferred >= 1 and counts.resumed == counts.deferred, (dag, task, counts)


def test_progress_is_printed_while_the_dags_run(demo_run):
    _, _, deferrable, progress = demo_run
    lines = [line for _, line in progress]
    total = len(all_dags())
    for number, dag_id in enumerate(all_dags(), 1):
        running = lines.index(f"[{number}/{total}] {dag_id} running (airflow dags test) ...")
        finished = next(
            i for i, line in enumerate(lines) if line.startswith(f"[{number}/{total}] {dag_id} ok in")
        )
        assert running < finished
    if deferrable:
        # Each deferral is reported when it happens, not once the run is over: seconds before
        # its trigger fires, which the emulator's step delay holds back.
        gaps, deferred_at = [], None
        for at, line in progress:
            if line.endswith("deferred, its trigger waits"):
                deferred_at = at
            elif line.endswith("trigger fired, task resumes"):
                assert deferred_at is not None, line
                gaps.append(at - deferred_at)
                deferred_at = None
        assert gaps and max(gaps) >= ADVANCE_AFTER / 2, gaps


def test_exported_bytes_match_the_bpm_system(demo_run):
    output, outcome, _, _ = demo_run
    manifests = outcome.manifests
    expected = expected_files()
    exported = [entry for files in manifests.values() for entry in files if entry["status"] != "external"]
    assert exported, "the demo exported nothing"
    for manifest, files in manifests.items():
        folder = output / Path(manifest).parent
        for entry in files:
            if entry["status"] == "external":
                continue
            on_disk = folder / entry["path"]
            assert on_disk.is_file(), entry
            assert on_disk.stat().st_size == entry["size"]
            assert hashlib.sha256(on_disk.read_bytes()).hexdigest() == entry["sha256"]
            key = (str(entry["process_id"]), entry["file_name"])
            if key in expected:  # files the DAGs created themselves are not in the fresh seed
                assert entry["sha256"] in expected[key], entry


def test_questetra_export_has_every_file_of_both_apps_with_safe_names(demo_run):
    output, outcome, _, _ = demo_run
    manifests = outcome.manifests
    questetra = [e for name, files in manifests.items() if name.startswith("questetra/") for e in files]
    names = {e["file_name"] for e in questetra}
    assert {"見積書.pdf", "Übersicht ä.txt", "../escape.txt", "CON.txt", "scan-archive.bin"} <= names
    paths = [e["path"] for e in questetra]
    assert all(".." not in Path(p).parts and not Path(p).is_absolute() for p in paths)
    assert any(p.endswith("/_CON.txt") for p in paths)
    assert len(set(paths)) == len(paths), "duplicate names must get distinct paths"
    large = next(e for e in questetra if e["file_name"] == "scan-archive.bin")
    assert large["size"] == LARGE_FILE_MB * 1024 * 1024
    # Nothing half-written is left next to the files.
    leftovers = [p for p in output.rglob("*") if p.is_file() and p.name.startswith(".")]
    assert leftovers == []
