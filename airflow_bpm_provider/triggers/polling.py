"""The polling loop both triggers share: async requests, bounded errors, one final event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_bpm_provider.deferral import ERROR, FAILED, SUCCESS, TIMEOUT
from airflow_bpm_provider.exceptions import BpmConnectionError, BpmError, BpmRateLimited, BpmServerError

if TYPE_CHECKING:
    from airflow_bpm_provider.hooks.base import BpmHook
    from airflow_bpm_provider.hooks.retry import RetryPolicy
    from airflow_bpm_provider.models import ProcessInstance, Task
    from airflow_bpm_provider.triggers.shared_poll import SharedConnection

# The hook already retried each request with backoff; these count whole polls that still failed.
TRANSIENT_ERRORS = (BpmConnectionError, BpmServerError, BpmRateLimited)

__all__ = ["ERROR", "FAILED", "SUCCESS", "TIMEOUT", "BpmPollingTrigger", "Reading"]

# A poll under way when the deadline passes may finish (its answer may be the one awaited), but
# a poll stuck in retries must not hold the timeout back for long.
DEADLINE_GRACE = 30.0

# Airflow's default [triggerer] on_kill_timeout; on_kill ends this much earlier to log its outcome.
ON_KILL_TIMEOUT = 30.0
ON_KILL_MARGIN = 5.0


def kill_retry_policy() -> RetryPolicy:
    """A kill is a user waiting for the task to end: one quick retry, no long Retry-After waits.

    Built when needed: the retry module brings the HTTP layer, which a triggerer (or a DAG file
    that imports this module) should not pay for until a trigger sends requests.
    """
    from airflow_bpm_provider.hooks.retry import RetryPolicy

    return RetryPolicy(max_attempts=2, initial_delay=0.5, max_delay=1.0, max_retry_after=5.0)


def __getattr__(name: str) -> Any:
    # ``KILL_RETRY_POLICY`` was a module constant; it stays readable, built on first use.
    if name == "KILL_RETRY_POLICY":
        return kill_retry_policy()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Reading:
    """One look at the BPM system: ``status`` is None while waiting goes on."""

    status: str | None
    message: str
    data: dict[str, Any] = field(default_factory=dict)  # "instance" and/or "task", as dicts


class BpmPollingTrigger(BaseTrigger):
    """Poll one process until :meth:`_poll` says the wait is over, the deadline passes, or errors persist.

    The base of :class:`~airflow_bpm_provider.triggers.process.BpmProcessStateTrigger` and
    :class:`~airflow_bpm_provider.triggers.task.BpmTaskTrigger`; the sensors and the start
    operator build those for you when they defer. ``deadline`` is an absolute UNIX time (seconds),
    so a trigger moved to another triggerer keeps the task's real time budget instead of starting
    its clock again. The trigger never starts or changes anything, except cancelling the process
    in :meth:`on_kill` when asked to. It reports exactly one event, whose ``status`` is
    ``success``, ``failed``, ``timeout`` or ``error``.

    :param bpm_conn_id: connection of a BPM connection type (``questetra``, ``bonita``,
        ``activiti``, ``yuuvis_bpm``); it must resolve in the triggerer too
    :param process_instance_id: the instance to poll, e.g. ``"183"`` (Questetra), ``"1001"``
        (Bonita case), ``"2501"`` (Activiti), a UUID (Flowable, yuuvis)
    :param poll_interval: seconds between polls (default 30; must be > 0). Polls fall on a clock
        shared by every trigger with the same interval, so the reads of one tick go out together
        as few batched requests (Activiti / Flowable / WSO2 EI, 500 instances a request; Questetra,
        Bonita, yuuvis, one listing per waited definition), e.g. ``poll_interval=60.0``.
    :param deadline: absolute UNIX time (seconds) when the wait ends with a ``timeout`` event,
        e.g. ``time.time() + 3600``; None waits without end
    :param max_consecutive_errors: polls in a row that may fail with a connection, server or
        rate-limit error (each request already retried by the hook) before an ``error`` event
        (default 5)
    :param cancel_on_kill: cancel the process when a user kills the waiting task (never on a
        triggerer restart)
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
            raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval!r}")
        if max_consecutive_errors < 1:
            raise ValueError(f"max_consecutive_errors must be >= 1, got {max_consecutive_errors!r}")
        self.bpm_conn_id = bpm_conn_id
        self.process_instance_id = str(process_instance_id)
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline) if deadline is not None else None
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.cancel_on_kill = bool(cancel_on_kill)
        self._shared: SharedConnection | None = None  # while run() is under way

    def _own_kwargs(self) -> dict[str, Any]:
        """The subclass's constructor arguments beyond the shared ones."""
        return {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "bpm_conn_id": self.bpm_conn_id,
                "process_instance_id": self.process_instance_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "max_consecutive_errors": self.max_consecutive_errors,
                "cancel_on_kill": self.cancel_on_kill,
                **self._own_kwargs(),
            },
        )

    async def _poll(self, hook: BpmHook) -> Reading:
        raise NotImplementedError

    def _event(self, status: str, message: str, data: dict[str, Any] | None = None) -> TriggerEvent:
        payload = {"status": status, "message": message, "process_instance_id": self.process_instance_id}
        return TriggerEvent({**payload, **(data or {})})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_bpm_provider.triggers.shared_poll import shared_connection

        # The triggers of one connection share one hook (client, session) in this event loop.
        async with shared_connection(self.bpm_conn_id) as shared:
            try:
                hook = await shared.hook()
            except Exception as exc:  # a missing or broken connection ends the wait; looping cannot help
                yield self._event(ERROR, f"cannot use connection '{self.bpm_conn_id}': {exc}")
                return
            self._shared = shared
            try:
                yield await self._wait(hook)
            finally:
                self._shared = None
                shared.forget(self.process_instance_id)

    async def _read_process(self, hook: BpmHook, instance_id: str) -> ProcessInstance:
        """The process, read together with the other triggers' reads of this connection."""
        if self._shared is None:
            return await hook.aget_process(instance_id, with_business_key=False)
        return await self._shared.read_process(instance_id)

    async def _list_tasks(self, hook: BpmHook, instance_id: str, name: str | None) -> list[Task]:
        if self._shared is None:
            return await hook.alist_tasks(process_instance_id=instance_id, name=name)
        return await self._shared.list_tasks(instance_id, name)

    def _next_poll_in(self) -> float:
        """Seconds to the next poll: on the interval's shared clock, so the polls of all triggers
        with this interval fall together and their reads share requests."""
        from airflow_bpm_provider.triggers.shared_poll import aligned_wait

        return aligned_wait(self.poll_interval, asyncio.get_running_loop().time())

    async def _wait(self, hook: BpmHook) -> TriggerEvent:
        errors = 0
        last = Reading(None, "no answer yet")
        while True:
            try:
                reading = await asyncio.wait_for(self._poll(hook), timeout=self._poll_budget())
                errors = 0
            except TimeoutError:
                return self._event(
                    TIMEOUT, f"the deadline passed while polling; last seen: {last.message}", last.data
                )
            except TRANSIENT_ERRORS as exc:
                errors += 1
                if errors >= self.max_consecutive_errors:
                    return self._event(ERROR, f"{errors} polls in a row failed; last error: {exc}", last.data)
                self.log.warning("Poll failed (%d in a row), will try again: %s", errors, exc)
                reading = last
            except BpmError as exc:
                return self._event(ERROR, str(exc), last.data)
            except Exception as exc:  # a bug or an answer no hook expected: report it, do not loop on it
                self.log.exception("Polling process %s failed", self.process_instance_id)
                return self._event(ERROR, f"unexpected {type(exc).__name__}: {exc}", last.data)
            if reading.status is not None:
                return self._event(reading.status, reading.message, reading.data)
            last = reading
            wait = self._next_poll_in()
            if self.deadline is not None:
                remaining = self.deadline - time.time()
                if remaining <= 0:
                    return self._event(TIMEOUT, f"the deadline passed; {last.message}", last.data)
                wait = min(wait, remaining)
            await asyncio.sleep(wait)

    def _poll_budget(self) -> float | None:
        if self.deadline is None:
            return None
        return max(self.deadline - time.time(), 0.0) + DEADLINE_GRACE

    async def on_kill(self) -> None:
        """A user killed the waiting task: cancel the process when the operator asked for that.

        Not in ``cleanup``: that also runs when a triggerer stops or hands the trigger over.
        Airflow waits ``[triggerer] on_kill_timeout`` seconds for this; the cancel uses a short
        retry policy and gives up a little earlier, so what happened is logged here.
        """
        if not self.cancel_on_kill:
            return
        budget = on_kill_budget()
        try:
            await asyncio.wait_for(self._cancel(), timeout=budget)
        except TimeoutError:
            self.log.warning(
                "Cancelling process %s did not finish within %.0f s; it may or may not be cancelled",
                self.process_instance_id,
                budget,
            )
        except BpmError as exc:
            self.log.warning("Could not cancel process %s: %s", self.process_instance_id, exc)
        else:
            self.log.info("Cancelled process %s because its task was killed", self.process_instance_id)

    async def _cancel(self) -> None:
        from airflow_bpm_provider.hooks.registry import aget_bpm_hook

        hook = await aget_bpm_hook(self.bpm_conn_id, retry_policy=kill_retry_policy())

        def cancel() -> None:
            with hook:
                hook.cancel_process(self.process_instance_id)

        # Cancelling is rare and sync-only in the hooks; a thread keeps the event loop free. A
        # cancel still under way when on_kill gives up goes on in its thread; only the wait ends.
        await asyncio.to_thread(cancel)


def on_kill_budget() -> float:
    """Seconds :meth:`BpmPollingTrigger.on_kill` may take: a little less than Airflow allows."""
    from airflow.providers.common.compat.sdk import conf

    limit = conf.getfloat("triggerer", "on_kill_timeout", fallback=ON_KILL_TIMEOUT)
    return max(limit - ON_KILL_MARGIN, limit / 2)
