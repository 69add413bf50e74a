"""The example DAGs, run by real Airflow (`airflow dags test`) against the emulator, as `make demo` does.

Against the emulator most waits are already over at the sensors' first check, so the deferrable
run mostly proves the DAGs work with deferral switched on; tests/triggers/test_deferred_dag.py
makes every wait really defer and resume.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from airflow_bpm_provider.testing.demo_run import run_demo
from airflow_bpm_provider.testing.demo_systems import all_dags, seed_all
from airflow_bpm_provider.testing.engine import Engine

LARGE_FILE_MB = 3


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
    results, manifests = run_demo(
        output, deferrable=request.param, large_file_mb=LARGE_FILE_MB, airflow_home=root / "airflow-home"
    )
    return output, results, manifests


def test_every_example_dag_succeeds(demo_run):
    _, results, _ = demo_run
    assert [r.dag_id for r in results] == all_dags()
    failed = {r.dag_id: r.tail() for r in results if not r.ok}
    assert not failed, failed


def test_exported_bytes_match_the_bpm_system(demo_run):
    output, _, manifests = demo_run
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
    output, _, manifests = demo_run
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
