"""Wait until a process reaches a target or failure state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from airflow_bpm_provider.state_sets import Verdict, describe, judge, parse_state_sets
from airflow_bpm_provider.triggers.polling import FAILED, SUCCESS, BpmPollingTrigger, Reading

if TYPE_CHECKING:
    from airflow_bpm_provider.hooks.base import BpmHook


class BpmProcessStateTrigger(BpmPollingTrigger):
    """Success in a target state; failed in a failure state or at an end outside the targets.

    What :class:`~airflow_bpm_provider.sensors.process.BpmProcessStateSensor` and
    :class:`~airflow_bpm_provider.operators.process.BpmStartProcessOperator` defer to. Every event
    carries the instance as last read (``"instance"``, ``"url"``) besides ``status``,
    ``message`` and ``process_instance_id``.

    Example (in a custom deferrable operator):

        self.defer(
            trigger=BpmProcessStateTrigger(
                "my_bpm",
                instance_id,
                target_states=["COMPLETED"],
                poll_interval=60.0,
                deadline=time.time() + 24 * 3600,
            ),
            method_name="execute_complete",
        )

    :param bpm_conn_id: connection of a BPM connection type (``questetra``, ``bonita``,
        ``activiti``, ``yuuvis_bpm``); it must resolve in the triggerer too
    :param process_instance_id: the instance to watch, e.g. ``"183"`` (Questetra), ``"1001"``
        (Bonita case), ``"2501"`` (Activiti), a UUID (Flowable, yuuvis)
    :param target_states: states that end the wait with ``success`` (default ``("COMPLETED",)``),
        any of ``RUNNING``, ``SUSPENDED``, ``COMPLETED``, ``FAILED``, ``CANCELLED`` (Questetra
        never reports SUSPENDED or CANCELLED; it ends a stopped process as FAILED)
    :param failure_states: states that end it with ``failed`` (default ``("FAILED", "CANCELLED")``)
    :param poll_interval: seconds between polls (default 30). One tick costs one request per 500
        waits on Activiti / Flowable / WSO2 EI and one listing per waited definition on Questetra,
        Bonita and yuuvis, e.g. ``poll_interval=10.0`` for an automated Flowable process,
        ``poll_interval=300.0`` for a Questetra approval that takes a day.
    :param deadline: absolute UNIX time (seconds) of a ``timeout`` event; None waits without end
    :param max_consecutive_errors: failed polls in a row before an ``error`` event (default 5)
    :param cancel_on_kill: cancel the process when a user kills the waiting task
    """

    def __init__(
        self,
        bpm_conn_id: str,
        process_instance_id: str,
        *,
        target_states: Iterable[str] = ("COMPLETED",),
        failure_states: Iterable[str] = ("FAILED", "CANCELLED"),
        **kwargs: Any,
    ) -> None:
        super().__init__(bpm_conn_id, process_instance_id, **kwargs)
        target, failure = parse_state_sets(target_states, failure_states)
        self.target_states, self.failure_states = list(target), list(failure)

    def _own_kwargs(self) -> dict[str, Any]:
        return {"target_states": self.target_states, "failure_states": self.failure_states}

    async def _poll(self, hook: BpmHook) -> Reading:
        instance = await self._read_process(hook, self.process_instance_id)
        # "url" as the sync path shows it: some systems only know the UI address, not the instance
        data = {"instance": instance.to_dict(), "url": instance.url or hook.ui_url(instance.id)}
        verdict = judge(instance, self.target_states, self.failure_states)
        if verdict is Verdict.REACHED:
            return Reading(SUCCESS, describe(instance), data)
        if verdict is Verdict.FAILED:
            return Reading(FAILED, f"{describe(instance)}, a failure state", data)
        if verdict is Verdict.STRANDED:
            targets = ", ".join(self.target_states)
            return Reading(FAILED, f"{describe(instance)}: it ended without reaching {targets}", data)
        return Reading(None, describe(instance), data)
