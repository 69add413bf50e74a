"""The polling loop both triggers share: async requests, bounded errors, one final event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_bpm_provider.exceptions import BpmConnectionError, BpmError, BpmRateLimited, BpmServerError

if TYPE_CHECKING:
    from airflow_bpm_provider.hooks.base import BpmHook

# The hook already retried each request with backoff; these count whole polls that still failed.
TRANSIENT_ERRORS = (BpmConnectionError, BpmServerError, BpmRateLimited)

SUCCESS, FAILED, TIMEOUT, ERROR = "success", "failed", "timeout", "error"
EVENT_STATUSES = frozenset({SUCCESS, FAILED, TIMEOUT, ERROR})


class BpmPollingTrigger(BaseTrigger):
    """Poll one process until :meth:`_poll` returns an event, the deadline passes, or errors persist.

    ``deadline`` is an absolute UNIX time (seconds), so a trigger moved to another triggerer keeps
    the task's real time budget instead of starting its clock again.
    """

    def __init__(
        self,
        bpm_conn_id: str,
        process_instance_id: str,
        *,
        poll_interval: float = 30.0,
        deadline: float | None = None,
        max_consecutive_errors: int = 5,
        cancel_on_kill: bool = False,
    ) -> None:
        super().__init__()
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0, got {poll_interval!r}")
        self.bpm_conn_id = bpm_conn_id
        self.process_instance_id = str(process_instance_id)
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline) if deadline is not None else None
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.cancel_on_kill = bool(cancel_on_kill)

    def _common_kwargs(self) -> dict[str, Any]:
        return {
            "bpm_conn_id": self.bpm_conn_id,
            "process_instance_id": self.process_instance_id,
            "poll_interval": self.poll_interval,
            "deadline": self.deadline,
            "max_consecutive_errors": self.max_consecutive_errors,
            "cancel_on_kill": self.cancel_on_kill,
        }

    async def _poll(self, hook: BpmHook) -> dict[str, Any] | None:
        """One look at the BPM system: an event payload when waiting is over, else None."""
        raise NotImplementedError

    def _event(self, status: str, message: str, **payload: Any) -> TriggerEvent:
        return TriggerEvent(
            {"status": status, "message": message, "process_instance_id": self.process_instance_id, **payload}
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_bpm_provider.hooks.registry import aget_bpm_hook

        try:
            hook = await aget_bpm_hook(self.bpm_conn_id)
        except Exception as exc:  # a missing or broken connection must end the wait, not loop
            yield self._event(ERROR, f"cannot build the hook for connection '{self.bpm_conn_id}': {exc}")
            return
        errors = 0
        try:
            while True:
                try:
                    payload = await self._poll(hook)
                    errors = 0
                except TRANSIENT_ERRORS as exc:
                    errors += 1
                    if errors >= self.max_consecutive_errors:
                        yield self._event(ERROR, f"{errors} polls in a row failed; last error: {exc}")
                        return
                    self.log.warning("Poll %d failed, will try again: %s", errors, exc)
                    payload = None
                except BpmError as exc:
                    yield self._event(ERROR, str(exc))
                    return
                if payload is not None:
                    yield TriggerEvent({"process_instance_id": self.process_instance_id, **payload})
                    return
                wait = self.poll_interval
                if self.deadline is not None:
                    remaining = self.deadline - time.time()
                    if remaining <= 0:
                        yield self._event(TIMEOUT, "the deadline passed before the process got there")
                        return
                    wait = min(wait, remaining)
                await asyncio.sleep(wait)
        finally:
            await hook.aclose()

    async def on_kill(self) -> None:
        """A user killed the waiting task: cancel the process when the operator asked for that."""
        if not self.cancel_on_kill:
            return
        from airflow_bpm_provider.hooks.registry import aget_bpm_hook

        hook = await aget_bpm_hook(self.bpm_conn_id)
        try:
            # Cancelling is rare and sync-only in the hooks; a thread keeps the event loop free.
            await asyncio.to_thread(hook.cancel_process, self.process_instance_id)
            self.log.info("Cancelled process %s after the task was killed", self.process_instance_id)
        finally:
            await asyncio.to_thread(hook.close)
