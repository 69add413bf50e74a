"""Wait until a process instance has an open task (optionally with a given name)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseSensorOperator, PokeReturnValue

from airflow_bpm_provider.state_sets import describe

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_bpm_provider.hooks.base import BpmHook


class BpmTaskSensor(BaseSensorOperator):
    """Succeeds once an open task exists; its XCom is the task id (the first, when several).

    Fails at once (``AirflowFailException``; skipped with ``soft_fail=True``) when the process
    has ended meanwhile: no task will ever arrive.

    :param bpm_conn_id: connection of a BPM connection type
    :param process_instance_id: the instance whose tasks to watch (templated)
    :param task_name: only a task with this name counts (templated)
    """

    template_fields: Sequence[str] = ("process_instance_id", "task_name")
    ui_color = "#dbe9f6"

    def __init__(
        self,
        *,
        bpm_conn_id: str,
        process_instance_id: str,
        task_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bpm_conn_id = bpm_conn_id
        self.process_instance_id = process_instance_id
        self.task_name = task_name

    def get_hook(self) -> BpmHook:
        from airflow_bpm_provider.hooks.registry import get_bpm_hook

        return get_bpm_hook(self.bpm_conn_id)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        pid = str(self.process_instance_id)
        name = self.task_name or None
        what = f"task {name!r}" if name else "an open task"
        with self.get_hook() as hook:
            tasks = list(hook.list_tasks(process_instance_id=pid, name=name))
            if tasks:
                if len(tasks) > 1:
                    self.log.info("%d open tasks match; taking %s", len(tasks), tasks[0].id)
                self.log.info("Task %s (%s) is open in process instance %s", tasks[0].id, tasks[0].name, pid)
                return PokeReturnValue(is_done=True, xcom_value=tasks[0].id)
            # Checked after the task list: an instance that ended after that read had no open task
            # when it was read, and an ended instance never opens one.
            instance = hook.get_process(pid)
            if instance.ended:
                url = instance.url or hook.ui_url(instance.id)
                raise AirflowFailException(f"{describe(instance, url)}: {what} will never arrive")
        self.log.info("No %s in process instance %s yet", what if name else "open task", pid)
        return False
