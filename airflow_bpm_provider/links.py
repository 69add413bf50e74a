"""The "BPM process" button on a task: opens the process instance the task started in the BPM UI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, TaskInstanceKey

XCOM_INSTANCE_ID = "process_instance_id"
XCOM_INSTANCE_URL = "process_instance_url"


class BpmProcessLink(BaseOperatorLink):
    """Reads the URL the operator pushed to XCom (``process_instance_url``) before it waited."""

    name = "BPM process"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.providers.common.compat.sdk import XCom

        url = XCom.get_value(ti_key=ti_key, key=XCOM_INSTANCE_URL)
        return url if isinstance(url, str) else ""
