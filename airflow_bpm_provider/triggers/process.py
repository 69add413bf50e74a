"""Wait until a process reaches a target or failure state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from airflow_bpm_provider.state_sets import Verdict, describe, judge, parse_state_sets
from airflow_bpm_provider.triggers.polling import FAILED, SUCCESS, BpmPollingTrigger, Reading

if TYPE_CHECKING:
    from airflow_bpm_provider.hooks.base import BpmHook


class BpmProcessStateTrigger(BpmPollingTrigger):
    """Success in a target state; failed in a failure state or at an end outside the targets."""

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
