"""Azure paths Airflow cannot attach a connection to are refused before any BPM call."""

from __future__ import annotations

import memory_bpm
import pytest
from airflow.models.connection import Connection
from airflow.sdk import DAG
from airflow_runtime import context_for, run

from airflow_bpm_provider.exceptions import BpmConfigError
from airflow_bpm_provider.hooks.questetra import QuestetraHook
from airflow_bpm_provider.operators.files import BpmDownloadProcessFilesOperator
from airflow_bpm_provider.transfer.export import as_destination, export_process_files

AZURE_ALIASES = [
    "az://exports/bpm/",
    "wasb://exports@acct.blob.core.windows.net/bpm",
    "wasbs://exports@acct.blob.core.windows.net/bpm",
    "AZ://exports/bpm",
]


def unreachable_hook() -> QuestetraHook:
    """A hook whose first BPM call would fail with a connection error (nothing listens there)."""
    conn = Connection(conn_id="q", conn_type="questetra", host="http://127.0.0.1:9", login="u", password="p")
    return QuestetraHook("q", connection=conn)


@pytest.mark.parametrize("destination", AZURE_ALIASES)
def test_az_and_wasb_are_refused_up_front_with_use_abfs(destination):
    with pytest.raises(BpmConfigError, match=r"use abfs://<container>@<account>\.dfs\.core\.windows\.net"):
        export_process_files(
            unreachable_hook(), destination, dest_conn_id="azure_default", process_instance_ids=["1"]
        )


def test_abfs_is_taken():
    assert as_destination("abfs://exports@acct.dfs.core.windows.net/bpm", "azure_default").protocol == "abfs"


def test_an_unknown_scheme_is_a_config_error_not_a_value_error():
    with pytest.raises(BpmConfigError, match="Unsupported filesystem"):
        as_destination("nosuchfs://bucket/key")


def test_the_operator_refuses_wasb_before_starting_anything(bpm, supervisor):
    bpm.define("expense", "Expense report")
    instance = bpm.start("expense", {}, None, "Trip")
    bpm.add_file(instance.id, "a.pdf", b"%PDF")
    opened = bpm.streams_opened
    with DAG("bpm_export_azure", schedule=None):
        op = BpmDownloadProcessFilesOperator(
            task_id="export",
            bpm_conn_id=memory_bpm.CONN_ID,
            destination="wasb://exports@acct.blob.core.windows.net/{{ run_id }}",
            dest_conn_id="azure_default",
            process_instance_ids=[instance.id],
        )
    with pytest.raises(BpmConfigError, match="wasb:// is not served by Airflow's Azure filesystem"):
        run(op, context_for(op))
    assert bpm.streams_opened == opened
