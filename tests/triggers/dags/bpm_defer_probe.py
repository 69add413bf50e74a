"""Every deferrable wait of the provider, each one really waiting (tests/triggers/test_deferred_dag.py)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_bpm_provider.operators.process import BpmStartProcessOperator
from airflow_bpm_provider.sensors.process import BpmProcessStateSensor
from airflow_bpm_provider.sensors.task import BpmTaskSensor

CONN = "probe_bpm"
SECOND = "{{ ti.xcom_pull(task_ids='start_two_steps') }}"

# No deferrable= anywhere: [operators] default_deferrable decides, as in the example DAGs.
with DAG(
    "bpm_defer_probe", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False
) as dag:
    start_and_wait = BpmStartProcessOperator(
        task_id="start_and_wait",
        bpm_conn_id=CONN,
        process="{{ dag_run.conf['one_step'] }}",
        wait_for_completion=True,
        poll_interval=1,
        timeout=300,
    )
    start_two_steps = BpmStartProcessOperator(
        task_id="start_two_steps", bpm_conn_id=CONN, process="{{ dag_run.conf['two_steps'] }}"
    )
    wait_for_approve = BpmTaskSensor(
        task_id="wait_for_approve",
        bpm_conn_id=CONN,
        process_instance_id=SECOND,
        task_name="Approve",
        poke_interval=1,
        timeout=300,
    )
    wait_until_completed = BpmProcessStateSensor(
        task_id="wait_until_completed",
        bpm_conn_id=CONN,
        process_instance_id=SECOND,
        poke_interval=1,
        timeout=300,
    )
    start_and_wait >> start_two_steps >> wait_for_approve >> wait_until_completed
