"""A start the server refuses, under real Airflow (test_links_airflow.py)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_bpm_provider.operators.process import BpmStartProcessOperator

with DAG(
    "bpm_failed_start", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False
) as dag:
    BpmStartProcessOperator(task_id="start", bpm_conn_id="refusing_bpm", process="no-such-model")

if __name__ == "__main__":
    dag.test(logical_date=None)
