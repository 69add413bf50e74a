"""Wait until a task (optionally with a given name) is open on a process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_bpm_provider.state_sets import describe
from airflow_bpm_provider.triggers.polling import FAILED, SUCCESS, BpmPollingTrigger, Reading

if TYPE_CHECKING:
    from airflow_bpm_provider.hooks.base import BpmHook


class BpmTaskTrigger(BpmPollingTrigger):
    """Success once a matching task is open (the first, when several); failed when the process ended.

    What :class:`~airflow_bpm_provider.sensors.task.BpmTaskSensor` defers to. Every event carries
    the process instance as last read (``"instance"``, ``"url"``); success also carries the task
    (``"task"``, with its ``id`` and ``name``).

    Example:

        BpmTaskTrigger("my_bpm", instance_id, task_name="Approve", poll_interval=60.0)

    :param bpm_conn_id: connection of a BPM connection type (``questetra``, ``bonita``,
        ``activiti``, ``yuuvis_bpm``); it must resolve in the triggerer too
    :param process_instance_id: the instance whose tasks to watch
    :param task_name: only a task with this name counts; None, any open task. Questetra the node
        name (``"Approve"``), Bonita the human task name, Activiti / Flowable / WSO2 EI the user
        task's ``name`` (not its BPMN id), yuuvis the task name.
    :param poll_interval: seconds between polls (default 30). The open tasks of each waited
        definition are listed once per tick for all its waits (Questetra ``Workitem/list``, Bonita
        ``humanTask``, Activiti ``runtime/tasks``, yuuvis ``tasks``), e.g. ``poll_interval=60.0``.
    :param deadline: absolute UNIX time (seconds) of a ``timeout`` event; None waits without end
    :param max_consecutive_errors: failed polls in a row before an ``error`` event (default 5)
    :param cancel_on_kill: cancel the process when a user kills the waiting task
    """

    def __init__(
        self, bpm_conn_id: str, process_instance_id: str, *, task_name: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(bpm_conn_id, process_instance_id, **kwargs)
        self.task_name = task_name or None

    def _own_kwargs(self) -> dict[str, Any]:
        return {"task_name": self.task_name}

    async def _poll(self, hook: BpmHook) -> Reading:
        pid = self.process_instance_id
        tasks = await self._list_tasks(hook, pid, self.task_name)
        # Read after the task list: an instance that ended after that read had no open task when it
        # was read, and an ended instance never opens one. On success it is the final instance data.
        instance = await self._read_process(hook, pid)
        # "url" as the sync path shows it: some systems only know the UI address, not the instance
        data = {"instance": instance.to_dict(), "url": instance.url or hook.ui_url(instance.id)}
        if tasks:
            task = tasks[0]
            return Reading(
                SUCCESS,
                f"task {task.id} ({task.name}) is open in process instance {pid}",
                {"task": task.to_dict(), **data},
            )
        what = f"task {self.task_name!r}" if self.task_name else "an open task"
        if instance.ended:
            return Reading(FAILED, f"{describe(instance)}: {what} will never arrive", data)
        return Reading(None, f"no {what.removeprefix('an ')} yet; {describe(instance)}", data)
