"""One start that must happen once although its first answer is lost (test_process_operator_airflow.py)."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_bpm_provider.operators.process import BpmStartProcessOperator

with DAG(
    "bpm_durable_probe", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False
) as dag:
    BpmStartProcessOperator(
        task_id="start",
        bpm_conn_id="durable_bpm",
        process="{{ dag_run.conf['process'] }}",
        business_key="{{ dag_run.conf['business_key'] }}",
        retries=2,
        retry_delay=timedelta(seconds=1),
    )

if __name__ == "__main__":
    # A triggered run without a logical date, as a user's "Trigger" gives it.
    dag.test(logical_date=None, run_conf=json.loads(sys.argv[1]))
