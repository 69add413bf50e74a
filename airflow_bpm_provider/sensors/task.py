"""Wait until a process instance has an open task (optionally with a given name)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
)

from airflow_bpm_provider import deferral
from airflow_bpm_provider.state_sets import describe

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_bpm_provider.hooks.base import BpmHook
    from airflow_bpm_provider.models import ProcessInstance


class BpmTaskSensor(BaseSensorOperator):
    """Succeeds once an open task exists; its XCom is the task id (the first, when several).

    Fails at once (``AirflowFailException``; skipped with ``soft_fail=True``) when the process
    has ended meanwhile: no task will ever arrive.

    With ``deferrable=True`` (default: Airflow's ``[operators] default_deferrable``) the sensor
    checks once, then hands the wait to :class:`~airflow_bpm_provider.triggers.task.BpmTaskTrigger`
    in the triggerer, polling every ``poke_interval`` seconds until ``timeout``; ``mode`` is then
    not used. Results, failures and ``soft_fail`` are the same as in poke mode.

    Example:

        BpmTaskSensor(
            task_id="wait_for_task",
            bpm_conn_id="my_bpm",
            process_instance_id="{{ ti.xcom_pull(task_ids='start') }}",
            task_name="Approve",
            poke_interval=60,
            deferrable=True,
        )

    :param bpm_conn_id: connection of a BPM connection type (``questetra``, ``bonita``,
        ``activiti``, ``yuuvis_bpm``)
    :param process_instance_id: the instance whose tasks to watch (templated), usually the start
        task's XCom
    :param task_name: only a task with this name counts (templated); None, any open task. The name
        as the model shows it, for example

        - Questetra / DataSpider: the node name of a human task, ``"Approve"``;
        - Bonita: the human task's name, ``"Approve expense"``;
        - Activiti / Flowable / WSO2 EI: the user task's ``name`` attribute (not its ``id``);
        - yuuvis: the task's name, ``"Review invoice"``.
    :param deferrable: wait in the triggerer instead of a worker slot (default Airflow's
        ``[operators] default_deferrable``)
    :param poke_interval: (Airflow's) seconds between checks, also the trigger's poll interval
        (at least 1 s there). In the triggerer the open tasks of each waited definition are listed
        once per tick for all its waits (Questetra ``Workitem/list``, Bonita ``humanTask``,
        Activiti ``runtime/tasks``, yuuvis ``tasks``), so ``poke_interval=60`` costs one request a
        minute per definition however many runs wait.
    :param timeout: (Airflow's) seconds to wait in all; a deferred wait keeps this absolute
        deadline across triggerer restarts
    """

    template_fields: Sequence[str] = ("process_instance_id", "task_name")
    ui_color = "#dbe9f6"

    def __init__(
        self,
        *,
        bpm_conn_id: str,
        process_instance_id: str,
        task_name: str | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bpm_conn_id = bpm_conn_id
        self.process_instance_id = process_instance_id
        self.task_name = task_name
        self.deferrable = deferral.default_deferrable() if deferrable is None else deferrable

    def get_hook(self) -> BpmHook:
        from airflow_bpm_provider.hooks.registry import get_bpm_hook

        return get_bpm_hook(self.bpm_conn_id)

    def _what(self) -> str:
        return f"task {self.task_name!r}" if self.task_name else "an open task"

    def _never_arrives(self, instance: ProcessInstance, url: str | None) -> AirflowFailException:
        return AirflowFailException(f"{describe(instance, url)}: {self._what()} will never arrive")

    def poke(self, context: Context) -> bool | PokeReturnValue:
        with self.get_hook() as hook:
            return self._check(hook)

    def _check(self, hook: BpmHook) -> bool | PokeReturnValue:
        pid = str(self.process_instance_id)
        name = self.task_name or None
        tasks = list(hook.list_tasks(process_instance_id=pid, name=name))
        if tasks:
            if len(tasks) > 1:
                self.log.info("%d open tasks match; taking %s", len(tasks), tasks[0].id)
            self.log.info("Task %s (%s) is open in process instance %s", tasks[0].id, tasks[0].name, pid)
            return PokeReturnValue(is_done=True, xcom_value=tasks[0].id)
        # Checked after the task list: an instance that ended after that read had no open task
        # when it was read, and an ended instance never opens one.
        instance = hook.get_process(pid, with_business_key=False)
        if instance.ended:
            raise self._never_arrives(instance, instance.url or hook.ui_url(instance.id))
        self.log.info("No %s in process instance %s yet", self._what() if name else "open task", pid)
        return False

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_bpm_provider.triggers.task import BpmTaskTrigger

        return deferral.poke_then_defer(
            self,
            context,
            lambda poll_interval, deadline: BpmTaskTrigger(
                self.bpm_conn_id,
                str(self.process_instance_id),
                task_name=self.task_name or None,
                poll_interval=poll_interval,
                deadline=deadline,
            ),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Back from the trigger: the task id, or the failure a poke would have raised."""
        event = deferral.check_event(event, task_id=self.task_id)
        status = event["status"]
        with deferral.soft_failing(self):
            if status == deferral.SUCCESS:
                task = deferral.event_part(event, "task", task_id=self.task_id)
                self.log.info("Task %s (%s) is open", task["id"], task.get("name"))
                return str(task["id"])
            if status == deferral.FAILED:
                instance = deferral.instance_in(event, task_id=self.task_id)
                if not instance.ended:
                    raise AirflowException(f"the trigger reported failed, but {describe(instance)}")
                raise self._never_arrives(instance, event.get("url") or instance.url)
            if status == deferral.TIMEOUT:
                raise AirflowSensorTimeout(f"Sensor has timed out: {deferral.event_message(event)}")
        raise AirflowException(
            f"waiting for {self._what()} in process instance {event.get('process_instance_id')} "
            f"failed: {deferral.event_message(event)}"
        )
