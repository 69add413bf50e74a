"""The "BPM process" button on a task: opens the process instance the task started in the BPM UI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, TaskInstanceKey

XCOM_INSTANCE_ID = "process_instance_id"
XCOM_INSTANCE_URL = "process_instance_url"

# What the operator knows in the process that runs it: the task runner asks every link once the
# try ends (finalize), on the same operator object. Not there (a try resumed after a deferral):
# only XCom knows.
_KNOWN_URL = "_bpm_process_link_url"
_NOTHING_PUSHED = ""


def forget_url(operator: Any) -> None:
    """A try starts: until it pushes a URL the link has none, and need not ask XCom for one."""
    setattr(operator, _KNOWN_URL, _NOTHING_PUSHED)


def remember_url(operator: Any, url: str | None) -> None:
    """The URL this try pushed (None: the system has no UI address for it)."""
    setattr(operator, _KNOWN_URL, url or _NOTHING_PUSHED)


class BpmProcessLink(BaseOperatorLink):
    """Reads the URL the operator pushed to XCom (``process_instance_url``) before it waited.

    ``""`` when there is none (the start failed, or the system has no UI address and the
    connection has no ``ui_url``): Airflow then shows no button rather than one to nowhere.
    """

    name = "BPM process"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        known = getattr(operator, _KNOWN_URL, None)
        if isinstance(known, str):
            # A failed start pushed nothing; asking XCom would log "XCom not found" in its task log.
            return known
        from airflow.providers.common.compat.sdk import XCom

        url = XCom.get_value(ti_key=ti_key, key=XCOM_INSTANCE_URL)
        return url if isinstance(url, str) else ""
