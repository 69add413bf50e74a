"""Wait until a process instance reaches a state (poke or reschedule mode)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseSensorOperator, PokeReturnValue

from airflow_bpm_provider.state_sets import Verdict, describe, judge, parse_state_sets

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_bpm_provider.hooks.base import BpmHook


class BpmProcessStateSensor(BaseSensorOperator):
    """Succeeds when the instance is in a target state; its XCom is the instance as a dict.

    A failure state, or an end outside the target states, fails the task at once without retries
    (``AirflowFailException``), or skips it with ``soft_fail=True``. Each poke reads the state
    afresh, so ``mode="reschedule"`` frees the worker between pokes.

    :param bpm_conn_id: connection of a BPM connection type
    :param process_instance_id: the instance to watch (templated)
    :param target_states: states that end the wait successfully
    :param failure_states: states that fail the task
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bpm_conn_id = bpm_conn_id
        self.process_instance_id = process_instance_id
        self.target_states, self.failure_states = parse_state_sets(target_states, failure_states)

    def get_hook(self) -> BpmHook:
        from airflow_bpm_provider.hooks.registry import get_bpm_hook

        return get_bpm_hook(self.bpm_conn_id)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        with self.get_hook() as hook:
            instance = hook.get_process(str(self.process_instance_id))
            url = instance.url or hook.ui_url(instance.id)
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
