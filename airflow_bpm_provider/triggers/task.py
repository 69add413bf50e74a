"""Wait until a task (optionally with a given name) is open on a process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_bpm_provider.triggers.polling import FAILED, SUCCESS, BpmPollingTrigger

if TYPE_CHECKING:
    from airflow_bpm_provider.hooks.base import BpmHook


class BpmTaskTrigger(BpmPollingTrigger):
    def __init__(
        self, bpm_conn_id: str, process_instance_id: str, *, task_name: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(bpm_conn_id, process_instance_id, **kwargs)
        self.task_name = task_name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {**self._common_kwargs(), "task_name": self.task_name},
        )

    async def _poll(self, hook: BpmHook) -> dict[str, Any] | None:
        tasks = await hook.alist_tasks(process_instance_id=self.process_instance_id, name=self.task_name)
        if tasks:
            return {"status": SUCCESS, "message": f"task {tasks[0].id} is open", "task": tasks[0].to_dict()}
        # No task yet: it can still come unless the process has ended.
        instance = await hook.aget_process(self.process_instance_id)
        if instance.ended:
            what = f"a task named {self.task_name!r}" if self.task_name else "an open task"
            return {
                "status": FAILED,
                "message": f"the process ended ({instance.state.value}) without {what}",
                "instance": instance.to_dict(),
            }
        return None
