"""Every templated field of every example DAG renders for a run without a logical date.

That is what `airflow dags trigger` and a REST trigger with ``"logical_date": null`` create; such a
run has no ``ds``, ``ts`` or ``data_interval_*`` in its context (``airflow dags test`` always sets a
logical date, so the DAG tests cannot see this). The context is built by the task SDK itself.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
from airflow.sdk import DAG
from airflow.sdk.api.datamodels._generated import DagRun, TIRunContext
from airflow.sdk.bases.operator import BaseOperator
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
from jinja2 import UndefinedError

from airflow_bpm_provider.testing.dag_runner import EXAMPLE_DAGS
from airflow_bpm_provider.testing.demo_systems import all_dags


def _example_dags() -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))
    assert not bag.import_errors, bag.import_errors
    return bag.dags


def _without_logical_date(task: BaseOperator, dag_id: str) -> RuntimeTaskInstance:
    now = datetime.now(UTC)
    run = DagRun.model_construct(
        dag_id=dag_id,
        run_id=f"manual__{now.isoformat()}",
        logical_date=None,
        data_interval_start=None,
        data_interval_end=None,
        run_after=now,
        start_date=now,
        end_date=None,
        run_type="manual",
        state="running",
        conf={},
        consumed_asset_events=[],
        partition_key=None,
        partition_date=None,
    )
    ti = RuntimeTaskInstance.model_construct(
        id=uuid.uuid4(),
        task_id=task.task_id,
        dag_id=dag_id,
        run_id=run.run_id,
        try_number=1,
        map_index=-1,
        dag_version_id=uuid.uuid4(),
        task=task,
        start_date=now,
        max_tries=task.retries,
    )
    ti._ti_context_from_server = TIRunContext.model_construct(dag_run=run, max_tries=task.retries)
    ti._cached_template_context = None
    return ti


def _render(task: BaseOperator, dag_id: str) -> dict:
    ti = _without_logical_date(task, dag_id)
    context = ti.get_template_context()
    assert "ds" not in context and "logical_date" not in context  # what such a run really lacks
    task.render_template_fields(context)
    return {field: getattr(task, field) for field in task.template_fields}


def _dag_ids_in_folder() -> list[str]:
    """The dag_ids the example files declare, read from their text (collection must stay cheap)."""
    pattern = re.compile(r"""dag_id\s*=\s*["']([\w.-]+)["']""")
    return sorted({i for path in EXAMPLE_DAGS.glob("*.py") for i in pattern.findall(path.read_text())})


def test_every_example_dag_is_checked():
    # Every DAG Airflow finds in the folder is parametrized below, the demo's and any other.
    assert set(_dag_ids_in_folder()) == set(_example_dags())
    assert set(all_dags()) <= set(_example_dags())


@pytest.mark.parametrize("dag_id", _dag_ids_in_folder())
def test_example_dag_renders_without_a_logical_date(dag_id, supervisor, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_BPM_DEMO_OUTPUT", "s3://bucket/prefix")
    dag = _example_dags()[dag_id]
    for task in dag.tasks:
        rendered = _render(task, dag_id)
        assert all("{{" not in str(value) for value in rendered.values()), (task.task_id, rendered)


def test_a_template_that_needs_a_logical_date_fails_here(supervisor):
    # The check above can fail: the same rendering refuses {{ ds }} for such a run.
    with DAG("needs_ds", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        task = BaseOperator(task_id="t")
        task.template_fields = ("doc_md",)
        task.doc_md = "due {{ ds }}"
    with pytest.raises(UndefinedError, match="ds"):
        _render(task, dag.dag_id)
