"""Run an operator's ``execute`` with Airflow's real task instance and XCom code, minus the server.

In a worker, ``RuntimeTaskInstance.xcom_push``, ``XCom.get_value`` and the reschedule bookkeeping
talk to the supervisor process over ``SUPERVISOR_COMMS``. Here an in-memory supervisor answers
those messages from dicts, so the task SDK's own serialisation and lookup code runs unchanged.
"""

from __future__ import annotations

import contextvars
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from airflow.sdk.bases.operator import ExecutorSafeguard
from airflow.sdk.execution_time import comms, task_runner
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

from airflow_bpm_provider.testing import task_tries


class InMemorySupervisor:
    """Stores XComs and the first reschedule date as the supervisor would."""

    def __init__(self) -> None:
        self.xcoms: dict[tuple[str, str, str, int | None, str], Any] = {}
        self.first_reschedule_date: datetime | None = None

    def send(self, msg: Any) -> Any:
        if isinstance(msg, comms.SetXCom):
            self.xcoms[(msg.dag_id, msg.run_id, msg.task_id, msg.map_index, msg.key)] = msg.value
            return None
        if isinstance(msg, comms.GetXCom):
            value = self.xcoms.get((msg.dag_id, msg.run_id, msg.task_id, msg.map_index, msg.key))
            return comms.XComResult(key=msg.key, value=value)
        if isinstance(msg, comms.GetXComSequenceSlice):  # what ti.xcom_pull in a template asks
            values = [
                value
                for (dag_id, run_id, task_id, _, key), value in self.xcoms.items()
                if (dag_id, run_id, task_id, key) == (msg.dag_id, msg.run_id, msg.task_id, msg.key)
            ]
            return comms.XComSequenceSliceResult(root=values)
        if isinstance(msg, comms.GetTaskRescheduleStartDate):
            return comms.TaskRescheduleStartDate(start_date=self.first_reschedule_date)
        raise AssertionError(f"the test supervisor does not answer {type(msg).__name__}")

    def xcom(self, ti: RuntimeTaskInstance, key: str) -> Any:
        """The stored XCom, deserialised the way a downstream task would read it."""
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti, key=key)


def install(monkeypatch: Any) -> InMemorySupervisor:
    supervisor = InMemorySupervisor()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", supervisor, raising=False)
    return supervisor


def task_instance(
    operator: Any, *, try_number: int = 1, run_id: str = "manual__2024-05-01"
) -> RuntimeTaskInstance:
    return task_tries.task_instance(
        operator, run_id=run_id, try_number=try_number, max_tries=operator.retries + try_number
    )


def context_for(operator: Any, *, try_number: int = 1, reschedule_count: int = 0, **extra: Any) -> dict:
    """A context as the task runner builds it, with the values templates here use."""
    ti = task_instance(operator, try_number=try_number)
    return {
        "ti": ti,
        "task_instance": ti,
        "task": operator,
        "run_id": ti.run_id,
        "ds": "2024-05-01",
        # What templates for runs without a logical date use: {{ dag_run.run_after | ds }}.
        "dag_run": SimpleNamespace(run_id=ti.run_id, run_after=datetime(2024, 5, 1, tzinfo=UTC)),
        "params": {},
        "task_reschedule_count": reschedule_count,
        **extra,
    }


def run(operator: Any, context: dict) -> Any:
    """Render the templated fields and call ``execute`` the way the task runner does."""
    operator.render_template_fields(context)
    # The runner marks the operator as the one it runs, so execute's call-site safeguard passes.
    ctx = contextvars.copy_context()
    ctx.run(ExecutorSafeguard.tracker.set, operator)
    return ctx.run(operator.execute, context)


def run_and_push(operator: Any) -> Any:
    """Run like :func:`run`, then push the return value as the task runner does for downstream pulls."""
    context = context_for(operator)
    result = run(operator, context)
    if result is not None:
        context["ti"].xcom_push("return_value", result)
    return result
