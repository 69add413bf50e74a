"""What the deferrable operator and sensors share: the switch, the time budget and the event check."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException

if TYPE_CHECKING:
    from airflow_bpm_provider.models import ProcessInstance

# The trigger reports a timeout itself at its deadline (a poll already under way may run
# DEADLINE_GRACE seconds longer). Airflow's own deferral timeout comes this much later, so it
# only fires when the trigger is lost, e.g. its triggerer died and no other picked it up.
DEFER_MARGIN = timedelta(minutes=5)

# How long a deferred wait may take when nothing else limits it: the same 7 days as the
# default timeout of Airflow's sensors. Every deferral gets a timeout, so a lost trigger cannot
# leave its task deferred forever.
DEFAULT_WAIT = timedelta(days=7)

# A trigger shares the triggerer with many others: a zero interval would poll in a tight loop.
MIN_POLL_INTERVAL = 1.0

# What a trigger of this provider reports, once, when its wait is over.
SUCCESS, FAILED, TIMEOUT, ERROR = "success", "failed", "timeout", "error"
EVENT_STATUSES = (SUCCESS, FAILED, TIMEOUT, ERROR)


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable``, read when the operator is built."""
    from airflow.providers.common.compat.sdk import conf

    return conf.getboolean("operators", "default_deferrable", fallback=False)


@dataclass(frozen=True)
class Budget:
    """How long a deferred wait may take: an absolute deadline for the trigger, a timeout for Airflow."""

    deadline: float | None  # UNIX seconds, so a trigger that moves to another triggerer keeps it
    defer_timeout: timedelta | None

    @classmethod
    def starting_now(cls, seconds: float | timedelta | None) -> Budget:
        if seconds is None:
            return cls(None, None)
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        return cls(time.time() + seconds, timedelta(seconds=seconds) + DEFER_MARGIN)


def check_event(event: Any, *, task_id: str) -> dict[str, Any]:
    """The trigger's event if it is one this provider sends; an AirflowException naming it otherwise."""
    if not isinstance(event, Mapping):
        raise AirflowException(
            f"task {task_id} resumed with {type(event).__name__} {event!r} instead of a BPM trigger event"
        )
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise AirflowException(
            f"task {task_id} resumed with an event whose status is {status!r} "
            f"(expected one of {', '.join(EVENT_STATUSES)}): {dict(event)!r}"
        )
    return dict(event)


def event_part(event: Mapping[str, Any], key: str, *, task_id: str) -> dict[str, Any]:
    """``event[key]`` (the instance or the task), which a success or failure event must carry."""
    part = event.get(key)
    if not isinstance(part, Mapping) or not part.get("id"):
        raise AirflowException(
            f"task {task_id} got a {event.get('status')} event without the {key} it needs: {dict(event)!r}"
        )
    return dict(part)


def instance_in(event: Mapping[str, Any], *, task_id: str) -> ProcessInstance:
    """The :class:`ProcessInstance` a trigger sent as ``instance.to_dict()`` (``raw`` is not sent)."""
    from airflow_bpm_provider.models import ProcessInstance, ProcessState

    data = event_part(event, "instance", task_id=task_id)

    def when(value: Any) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    try:
        return ProcessInstance(
            id=str(data["id"]),
            state=ProcessState.parse(data.get("state", "")),
            raw_state=data.get("raw_state"),
            definition=data.get("definition"),
            definition_name=data.get("definition_name"),
            business_key=data.get("business_key"),
            title=data.get("title"),
            started_at=when(data.get("started_at")),
            ended_at=when(data.get("ended_at")),
            url=data.get("url"),
        )
    except (TypeError, ValueError) as exc:
        raise AirflowException(f"task {task_id} got an event with an unreadable instance: {exc}") from None


def event_message(event: Mapping[str, Any]) -> str:
    return str(event.get("message") or "(the trigger sent no message)")


def trigger_poll_interval(seconds: float | timedelta) -> float:
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    return max(float(seconds), MIN_POLL_INTERVAL)


def first_poke(sensor: Any, check: Callable[[], Any]) -> tuple[bool, Any]:
    """One check before deferring, with the exception handling of Airflow's own poke loop.

    Returns ``(done, xcom_value)``. ``soft_fail`` and ``never_fail`` skip, ``silent_fail`` logs
    and goes on waiting, exactly as ``BaseSensorOperator.execute`` treats a poke.
    """
    from airflow.providers.common.compat.sdk import (
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        AirflowTaskTimeout,
        PokeReturnValue,
    )

    with soft_failing(sensor):
        try:
            result = check()
        except (AirflowFailException, AirflowSensorTimeout, AirflowTaskTimeout, AirflowSkipException):
            raise  # failures and timeouts are soft_failing's to judge; a skip stays a skip
        except Exception as exc:
            if sensor.silent_fail:
                sensor.log.exception("Sensor check failed; the trigger will try again")
                return False, None
            if sensor.never_fail:
                raise AirflowSkipException(f"Skipping due to never_fail: {exc}") from exc
            raise
    if not result:
        return False, None
    return True, result.xcom_value if isinstance(result, PokeReturnValue) else None


def poke_then_defer(sensor: Any, context: Any, trigger: Callable[[float, float | None], Any]) -> Any:
    """Deferrable ``execute`` of a sensor: one poke, then ``trigger(poll_interval, deadline)``.

    ``poke`` builds the hook inside the check, so a missing connection is judged as in poke mode.
    """
    done, xcom_value = first_poke(sensor, lambda: sensor.poke(context))
    if done:
        return xcom_value
    budget = Budget.starting_now(sensor.timeout)
    sensor.defer(
        trigger=trigger(trigger_poll_interval(sensor.poke_interval), budget.deadline),
        method_name="execute_complete",
        timeout=budget.defer_timeout,
    )


@contextmanager
def soft_failing(sensor: Any) -> Iterator[None]:
    """A failure or timeout skips the task under ``soft_fail`` or ``never_fail``, as in poke mode.

    Airflow's ``BaseSensorOperator.resume_execution`` does this too (for any AirflowException);
    doing it here keeps the sensor's own contract when ``execute_complete`` is called directly.
    """
    from airflow.providers.common.compat.sdk import (
        AirflowFailException,
        AirflowSensorTimeout,
        AirflowSkipException,
        AirflowTaskTimeout,
    )

    try:
        yield
    except (AirflowFailException, AirflowSensorTimeout, AirflowTaskTimeout) as exc:
        if sensor.soft_fail or sensor.never_fail:
            which = "soft_fail" if sensor.soft_fail else "never_fail"
            raise AirflowSkipException(f"Skipping due to {which}: {exc}") from exc
        raise
