"""What the export publishes: an asset event for its destination, and OpenLineage datasets."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import memory_bpm
import pytest
from airflow.sdk import DAG, Asset
from airflow.sdk.execution_time.context import OutletEventAccessors
from airflow_runtime import context_for, run

from airflow_bpm_provider.operators.files import BpmDownloadProcessFilesOperator, destination_uri
from airflow_bpm_provider.operators.process import BpmStartProcessOperator


@pytest.fixture
def instance(bpm):
    bpm.define("expense", "Expense report")
    instance = bpm.start("expense", {}, "INV-1", "Trip")
    bpm.add_file(instance.id, "receipt.pdf", b"%PDF receipt", group="Receipts")
    bpm.add_file(instance.id, "invoice.pdf", b"%PDF the invoice", group="Receipts")
    return instance


def export(**kwargs) -> BpmDownloadProcessFilesOperator:
    with DAG("bpm_export", schedule=None):
        return BpmDownloadProcessFilesOperator(task_id="export", bpm_conn_id=memory_bpm.CONN_ID, **kwargs)


def assets(op) -> list[str]:
    return [outlet.uri for outlet in op.outlets if isinstance(outlet, Asset)]


def test_the_destination_is_the_outlet_asset_unless_templated_or_given(tmp_path):
    # Airflow normalises the URI (no trailing slash); the destination itself is used unchanged.
    assert assets(export(destination="s3://bucket/bpm/", process_instance_ids=["1"])) == ["s3://bucket/bpm"]
    assert assets(export(destination=str(tmp_path), process_instance_ids=["1"])) == [f"file://{tmp_path}"]
    assert assets(export(destination="s3://bucket/{{ ds }}/", process_instance_ids=["1"])) == []
    mine = Asset("s3://bucket/exports/", extra={"team": "finance"})
    given = export(destination="s3://bucket/{{ ds }}/", process_instance_ids=["1"], outlets=[mine])
    assert assets(given) == ["s3://bucket/exports"]
    assert destination_uri("relative/dir").startswith("file:///")


def test_the_asset_event_carries_counts_bytes_and_the_manifest_location(bpm, instance, supervisor, tmp_path):
    op = export(destination=str(tmp_path), process_instance_ids=[instance.id], manifest_name="manifest.json")
    events = OutletEventAccessors()
    manifest = run(op, context_for(op, outlet_events=events))
    (asset,) = [outlet for outlet in op.outlets if isinstance(outlet, Asset)]
    extra = events[asset].extra
    assert extra == {
        "bpm_conn_id": memory_bpm.CONN_ID,
        "destination": str(tmp_path),
        "files": 2,
        "by_status": {"written": 2},
        "bytes": len(b"%PDF receipt") + len(b"%PDF the invoice"),
        "processes": [str(instance.id)],
        "manifest": f"{tmp_path}/manifest.json",
    }
    assert (tmp_path / "manifest.json").exists()
    assert {entry["status"] for entry in manifest} == {"written"}
    json.dumps(extra)  # stored as the event's extra


def test_openlineage_reports_process_instances_in_and_the_destination_out(
    bpm, instance, supervisor, tmp_path
):
    import airflow.providers.openlineage  # noqa: F401  (the test extra installs it)

    op = export(destination="s3://bucket/bpm-files/", process_instance_ids=[instance.id], outlets=[])
    op._lineage = {"destination": "s3://bucket/bpm-files/", "processes": [str(instance.id)]}
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("memory_bpm://bpm.example.test", f"process_instance/{instance.id}")
    ]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("s3://bucket", "bpm-files/")]

    local = export(destination=str(tmp_path), process_instance_ids=[instance.id])
    run(local, context_for(local, outlet_events=OutletEventAccessors()))
    lineage = local.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("file", str(tmp_path))]
    assert [d.name for d in lineage.inputs] == [f"process_instance/{instance.id}"]


def test_openlineage_of_the_start_operator_is_definition_in_instance_out(bpm, supervisor):
    import airflow.providers.openlineage  # noqa: F401  (the test extra installs it)

    bpm.define("expense", "Expense report")
    with DAG("bpm_start", schedule=None):
        op = BpmStartProcessOperator(task_id="start", bpm_conn_id=memory_bpm.CONN_ID, process="expense")
    context = context_for(op)
    instance_id = run(op, context)
    lineage = op.get_openlineage_facets_on_complete(context["ti"])
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("memory_bpm://bpm.example.test", "process_definition/expense")
    ]
    assert [d.name for d in lineage.outputs] == [f"process_instance/{instance_id}"]


BLOCKED = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "openlineage" or name.startswith(("openlineage.", "airflow.providers.openlineage")):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, Block())

# Not installed also means no distribution: Airflow's provider discovery must not see it either.
import importlib.metadata
import importlib_metadata


def hide(distribution_class):
    discover = distribution_class.discover.__func__

    def discover_without_openlineage(cls, **kwargs):
        for dist in discover(cls, **kwargs):
            if "openlineage" not in (dist.metadata["Name"] or "").lower():
                yield dist

    distribution_class.discover = classmethod(discover_without_openlineage)


hide(importlib.metadata.Distribution)
hide(importlib_metadata.Distribution)
"""


def test_without_the_openlineage_provider_nothing_is_imported_and_the_export_is_unchanged(tmp_path):
    script = BLOCKED + textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parents[1])!r})
        import pytest, memory_bpm
        from airflow_runtime import context_for, install, run
        from airflow.sdk import DAG
        from airflow.sdk.execution_time.context import OutletEventAccessors
        from airflow_bpm_provider.operators.files import BpmDownloadProcessFilesOperator

        mp = pytest.MonkeyPatch()
        bpm = memory_bpm.install(mp)
        install(mp)
        bpm.define("expense", "Expense report")
        instance = bpm.start("expense", {{}}, "INV-1", "Trip")
        bpm.add_file(instance.id, "receipt.pdf", b"%PDF receipt")
        with DAG("d", schedule=None):
            op = BpmDownloadProcessFilesOperator(
                task_id="export", bpm_conn_id=memory_bpm.CONN_ID,
                destination={str(tmp_path)!r}, process_instance_ids=[instance.id])
        manifest = run(op, context_for(op, outlet_events=OutletEventAccessors()))
        assert [e["status"] for e in manifest] == ["written"]
        assert op.get_openlineage_facets_on_complete(None) is None
        loaded = [m for m in sys.modules if "openlineage" in m]
        assert not loaded, loaded
        print("OK")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")
