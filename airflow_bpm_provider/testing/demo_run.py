"""``make demo``: the example DAGs with real Airflow against the emulator, then a summary."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from airflow_bpm_provider.testing.dag_runner import DagRunResult, airflow_env, migrate, run_dag
from airflow_bpm_provider.testing.demo_systems import all_connections, all_dags, seed_all


def run_demo(
    output: Path,
    *,
    deferrable: bool = False,
    dag_ids: Sequence[str] | None = None,
    large_file_mb: int = 24,
    airflow_home: Path | None = None,
    then: Callable[[Any, dict[str, str]], None] | None = None,
) -> tuple[list[DagRunResult], dict[str, list[dict[str, Any]]]]:
    """Run the DAGs; returns their results and every manifest entry written under ``output``.

    ``then(engine, env)`` runs afterwards while the emulator still serves (the event demo).
    """
    from airflow_bpm_provider.testing.server import Emulator

    output = output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    home = (airflow_home or output.parent / "airflow-home").resolve()
    emulator = Emulator.start()
    try:
        summaries = seed_all(emulator.engine, large_file_mb=large_file_mb)
        env = airflow_env(
            home,
            connections=all_connections(emulator.url, summaries),
            extra={
                "AIRFLOW_VAR_BPM_DEMO_OUTPUT": str(output),
                "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "true" if deferrable else "false",
            },
        )
        migrate(env)
        results = [run_dag(dag_id, env, log_dir=home / "dag-logs") for dag_id in (dag_ids or all_dags())]
        if then is not None:
            then(emulator.engine, env)
    finally:
        emulator.stop()
    return results, read_manifests(output)


def read_manifests(output: Path) -> dict[str, list[dict[str, Any]]]:
    """Manifest path (relative to ``output``) → its entries."""
    return {
        str(manifest.relative_to(output)): json.loads(manifest.read_text())["files"]
        for manifest in sorted(output.rglob("manifest.json"))
    }


def print_summary(
    results: Sequence[DagRunResult], manifests: dict[str, list[dict[str, Any]]], output: Path
) -> None:
    print("\nDAG runs (real Airflow, `airflow dags test`, against the emulator):")
    for result in results:
        status = "ok    " if result.ok else "FAILED"
        print(f"  {status} {result.dag_id:<34} {result.seconds:6.1f} s   log: {result.log_path}")
    print(f"\nFiles exported under {output}:")
    for manifest, files in manifests.items():
        size = sum(f.get("size") or 0 for f in files)
        counts = _count(f["status"] for f in files)
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing to export"
        print(f"  {manifest}: {len(files)} files, {size / 1e6:.1f} MB ({statuses})")
        for f in files[:12]:
            print(f"      {f.get('path') or '(external) ' + str(f.get('file_name'))}")
        if len(files) > 12:
            print(f"      ... and {len(files) - 12} more")
    failed = [r for r in results if not r.ok]
    if failed:
        print("\nFailed DAG logs (last lines):")
        for result in failed:
            print(f"--- {result.dag_id} ---\n{result.tail()}")


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
