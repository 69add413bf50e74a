"""Wait until a process reaches a target or failure state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from airflow_bpm_provider.models import ProcessState
from airflow_bpm_provider.triggers.polling import FAILED, SUCCESS, BpmPollingTrigger

if TYPE_CHECKING:
    from airflow_bpm_provider.hooks.base import BpmHook


class BpmProcessStateTrigger(BpmPollingTrigger):
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
        self.target_states = [ProcessState.parse(s).value for s in target_states]
        self.failure_states = [ProcessState.parse(s).value for s in failure_states]

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                **self._common_kwargs(),
                "target_states": self.target_states,
                "failure_states": self.failure_states,
            },
        )

    async def _poll(self, hook: BpmHook) -> dict[str, Any] | None:
        instance = await hook.aget_process(self.process_instance_id)
        state = instance.state.value
        if state in self.target_states:
            return {"status": SUCCESS, "message": f"process reached {state}", "instance": instance.to_dict()}
        if state in self.failure_states:
            return {"status": FAILED, "message": f"process ended in {state}", "instance": instance.to_dict()}
        return None
