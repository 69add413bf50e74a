"""Run an operator's ``execute`` try after try in this process, the way Airflow's task runner would.

A worker's task instance talks to its supervisor (XComs, the task state store of AIP-103) over
``SUPERVISOR_COMMS``. :class:`LocalSupervisor` answers those messages from dicts, so Airflow's own
accessors run unchanged, and the task state store outlives a try as it does on a real deployment
(it is scoped to dag, run, task and map index, not to one try). Used by the fault campaign
(``bench/chaos.py``) to retry a failed try as Airflow would.
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Scope = tuple[str, str, str, int]


@dataclass
class LocalSupervisor:
    """XComs and task state stores kept in memory, keyed as the API server keys them."""

    xcoms: dict[tuple[str, str, str, int | None, str], Any] = field(default_factory=dict)
    states: dict[Scope, dict[str, Any]] = field(default_factory=dict)
    scopes: dict[uuid.UUID, Scope] = field(default_factory=dict)

    def send(self, msg: Any) -> Any:
        from airflow.sdk.exceptions import ErrorType
        from airflow.sdk.execution_time import comms

        kind = type(msg).__name__
        if isinstance(msg, comms.SetXCom):
            self.xcoms[(msg.dag_id, msg.run_id, msg.task_id, msg.map_index, msg.key)] = msg.value
            return None
        if isinstance(msg, comms.GetXCom):
            value = self.xcoms.get((msg.dag_id, msg.run_id, msg.task_id, msg.map_index, msg.key))
            return comms.XComResult(key=msg.key, value=value)
        if kind == "GetTaskRescheduleStartDate":
            return comms.TaskRescheduleStartDate(start_date=None)
        if kind in ("GetTaskStateStore", "SetTaskStateStore", "DeleteTaskStateStore", "ClearTaskStateStore"):
            store = self.states.setdefault(self.scopes[msg.ti_id], {})
            if kind == "GetTaskStateStore":
                if msg.key not in store:
                    return comms.ErrorResponse(error=ErrorType.TASK_STORE_NOT_FOUND)
                return comms.TaskStateStoreResult(value=store[msg.key])
            if kind == "SetTaskStateStore":
                store[msg.key] = msg.value
            elif kind == "DeleteTaskStateStore":
                store.pop(msg.key, None)
            else:
                store.clear()
            return comms.OKResponse(ok=True) if hasattr(comms, "OKResponse") else None
        raise RuntimeError(f"the local supervisor does not answer {kind}")

    def state(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        return dict(self.states.get((dag_id, run_id, task_id, map_index), {}))


def install(supervisor: LocalSupervisor) -> Any:
    """Make ``supervisor`` the one the task SDK talks to; returns what was there before."""
    from airflow.sdk.execution_time import task_runner

    previous = getattr(task_runner, "SUPERVISOR_COMMS", None)
    task_runner.SUPERVISOR_COMMS = supervisor
    return previous


def restore(previous: Any) -> None:
    from airflow.sdk.execution_time import task_runner

    if previous is None:
        if hasattr(task_runner, "SUPERVISOR_COMMS"):
            del task_runner.SUPERVISOR_COMMS
    else:
        task_runner.SUPERVISOR_COMMS = previous


def task_instance(operator: Any, *, run_id: str, try_number: int, max_tries: int) -> Any:
    """A RuntimeTaskInstance of ``operator`` as the task runner builds one: a new id per try."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    return RuntimeTaskInstance.model_construct(
        id=uuid.uuid4(),
        task_id=operator.task_id,
        dag_id=operator.dag_id if operator.has_dag() else "adhoc",
        run_id=run_id,
        try_number=try_number,
        map_index=-1,
        dag_version_id=uuid.uuid4(),
        task=operator,
        start_date=datetime.now(UTC),
        max_tries=max_tries,
    )


def context_for(
    supervisor: LocalSupervisor, operator: Any, *, run_id: str, try_number: int, **extra: Any
) -> dict[str, Any]:
    """A fresh task instance (a new id per try, as Airflow gives) and the context a try gets."""
    from airflow.sdk.execution_time.context import TaskStateStoreAccessor

    ti = task_instance(operator, run_id=run_id, try_number=try_number, max_tries=operator.retries + 1)
    dag_id = ti.dag_id
    scope: Scope = (dag_id, run_id, operator.task_id, -1)
    supervisor.scopes[ti.id] = scope
    context: dict[str, Any] = {
        "ti": ti,
        "task_instance": ti,
        "task": operator,
        "run_id": run_id,
        "params": {},
        "task_reschedule_count": 0,
        **extra,
    }
    context["task_state_store"] = _state_accessor(TaskStateStoreAccessor, ti.id, scope)
    return context


def _state_accessor(accessor: Any, ti_id: uuid.UUID, scope: Scope) -> Any:
    from airflow.sdk.state import TaskScope

    dag_id, run_id, task_id, map_index = scope
    return accessor(
        ti_id=ti_id, scope=TaskScope(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index)
    )


def run_try(operator: Any, context: dict[str, Any]) -> Any:
    """Render the templated fields and call ``execute``, as the task runner does for one try."""
    from airflow.sdk.bases.operator import ExecutorSafeguard

    operator.render_template_fields(context)
    ctx = contextvars.copy_context()
    ctx.run(ExecutorSafeguard.tracker.set, operator)
    return ctx.run(operator.execute, context)
