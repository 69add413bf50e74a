"""Wait until a process instance reaches a state (poke or reschedule mode)."""

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
from airflow_bpm_provider.state_sets import Verdict, describe, judge, parse_state_sets

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_bpm_provider.hooks.base import BpmHook
    from airflow_bpm_provider.models import ProcessInstance


class BpmProcessStateSensor(BaseSensorOperator):
    """Succeeds when the instance is in a target state; its XCom is the instance as a dict.

    A failure state, or an end outside the target states, fails the task at once without retries
    (``AirflowFailException``), or skips it with ``soft_fail=True``. Each poke reads the state
    afresh, so ``mode="reschedule"`` frees the worker between pokes.

    With ``deferrable=True`` (default: Airflow's ``[operators] default_deferrable``) the sensor
    checks once, then hands the wait to :class:`~airflow_bpm_provider.triggers.process.BpmProcessStateTrigger`
    in the triggerer, polling every ``poke_interval`` seconds until ``timeout``; ``mode`` is then
    not used. Results, failures and ``soft_fail`` are the same as in poke mode.

    Example:

        BpmProcessStateSensor(
            task_id="wait_for_end",
            bpm_conn_id="my_bpm",
            process_instance_id="{{ ti.xcom_pull(task_ids='start') }}",
            target_states=["COMPLETED"],
            poke_interval=300,
            timeout=3 * 24 * 3600,
            deferrable=True,
        )

    :param bpm_conn_id: connection of a BPM connection type (``questetra``, ``bonita``,
        ``activiti``, ``yuuvis_bpm``)
    :param process_instance_id: the instance to watch (templated), usually the start task's XCom.
        Questetra's process id (``"183"``), a Bonita case id (``"1001"``), an Activiti / Flowable
        process instance id, a yuuvis process id. An ended instance is found too (Bonita's
        archived cases, the Activiti / Flowable history).
    :param target_states: states that end the wait successfully (default ``("COMPLETED",)``), any
        of ``RUNNING``, ``SUSPENDED``, ``COMPLETED``, ``FAILED``, ``CANCELLED``. Questetra cannot
        suspend a process and ends a stopped one as FAILED, so there CANCELLED is never seen.
    :param failure_states: states that fail the task (default ``("FAILED", "CANCELLED")``); a
        state may not be in both sets
    :param deferrable: wait in the triggerer instead of a worker slot (default Airflow's
        ``[operators] default_deferrable``)
    :param poke_interval: (Airflow's) seconds between checks, also the trigger's poll interval
        (at least 1 s there). One poll costs one request per waited definition on Questetra,
        Bonita and yuuvis (their running instances, 1,000 a page, shared by every wait of that
        definition in the triggerer) and one request per 500 waits on Activiti / Flowable / WSO2
        EI: ``poke_interval=60`` suits human approvals everywhere, ``poke_interval=10`` a short
        automated Flowable process.
    :param timeout: (Airflow's) seconds to wait in all; a deferred wait keeps this absolute
        deadline across triggerer restarts
    """

    template_fields: Sequence[str] = ("process_instance_id",)
    ui_color = "#dbe9f6"

    def __init__(
        self,
        *,
        bpm_conn_id: str,
        process_instance_id: str,
        target_states: Sequence[str] = ("COMPLETED",),
        failure_states: Sequence[str] = ("FAILED", "CANCELLED"),
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bpm_conn_id = bpm_conn_id
        self.process_instance_id = process_instance_id
        self.target_states, self.failure_states = parse_state_sets(target_states, failure_states)
        self.deferrable = deferral.default_deferrable() if deferrable is None else deferrable

    def get_hook(self) -> BpmHook:
        from airflow_bpm_provider.hooks.registry import get_bpm_hook

        return get_bpm_hook(self.bpm_conn_id)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        with self.get_hook() as hook:
            return self._check(hook)

    def _check(self, hook: BpmHook) -> bool | PokeReturnValue:
        instance = hook.get_process(str(self.process_instance_id), with_business_key=False)
        return self._verdict(instance, instance.url or hook.ui_url(instance.id))

    def _verdict(self, instance: ProcessInstance, url: str | None) -> bool | PokeReturnValue:
        verdict = judge(instance, self.target_states, self.failure_states)
        if verdict is Verdict.REACHED:
            self.log.info("%s", describe(instance, url))
            return PokeReturnValue(is_done=True, xcom_value=instance.to_dict())
        if verdict is Verdict.FAILED:
            raise AirflowFailException(f"{describe(instance, url)}, a failure state")
        if verdict is Verdict.STRANDED:
            raise AirflowFailException(
                f"{describe(instance, url)}: it ended and will never reach {', '.join(self.target_states)}"
            )
        self.log.info("%s; waiting for %s", describe(instance, url), ", ".join(self.target_states))
        return False

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_bpm_provider.triggers.process import BpmProcessStateTrigger

        return deferral.poke_then_defer(
            self,
            context,
            lambda poll_interval, deadline: BpmProcessStateTrigger(
                self.bpm_conn_id,
                str(self.process_instance_id),
                target_states=list(self.target_states),
                failure_states=list(self.failure_states),
                poll_interval=poll_interval,
                deadline=deadline,
            ),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Back from the trigger: the same result or failure a poke would have given."""
        event = deferral.check_event(event, task_id=self.task_id)
        status = event["status"]
        with deferral.soft_failing(self):
            if status in (deferral.SUCCESS, deferral.FAILED):
                instance = deferral.instance_in(event, task_id=self.task_id)
                result = self._verdict(instance, event.get("url") or instance.url)
                if isinstance(result, PokeReturnValue):
                    return result.xcom_value
                raise AirflowException(f"the trigger reported {status}, but {describe(instance)}")
            if status == deferral.TIMEOUT:
                raise AirflowSensorTimeout(f"Sensor has timed out: {deferral.event_message(event)}")
        raise AirflowException(
            f"waiting for process instance {event.get('process_instance_id')} failed: "
            f"{deferral.event_message(event)}"
        )
