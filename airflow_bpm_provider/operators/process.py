"""Start a business process from a DAG, optionally waiting until it ends."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, BaseOperator

from airflow_bpm_provider import deferral
from airflow_bpm_provider.exceptions import BpmConfigError
from airflow_bpm_provider.links import XCOM_INSTANCE_ID, XCOM_INSTANCE_URL, BpmProcessLink
from airflow_bpm_provider.state_sets import Verdict, describe, judge, parse_state_sets

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_bpm_provider.hooks.base import BpmHook
    from airflow_bpm_provider.models import ProcessInstance


def mapping_or_none(value: Any, *, argument: str) -> dict[str, Any] | None:
    """A rendered template field that must be a dict (a Jinja string renders to ``str``)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    hint = (
        " (a template that renders a whole dict needs render_template_as_native_obj=True on the DAG)"
        if isinstance(value, str)
        else ""
    )
    raise BpmConfigError(f"{argument} must be a mapping, got {type(value).__name__}{hint}")


class BpmStartProcessOperator(BaseOperator):
    """Start one instance of ``process`` on the BPM system behind ``bpm_conn_id``.

    Returns the process instance id. Before any wait it pushes XComs ``process_instance_id`` and
    ``process_instance_url`` (shown as the "BPM process" link).

    Retry-safe with a ``business_key``: an instance of ``process`` with that key, found on the
    system, is reused instead of starting a second one (also across DAG runs: the key is the
    idempotency key). Without a key a retry starts another instance; the log says so.

    :param bpm_conn_id: connection of a BPM connection type (questetra, bonita, activiti, ...)
    :param process: what the system calls a process (model id, process name or definition key)
    :param variables: start values (templated)
    :param business_key: the instance's business key (templated)
    :param start_options: vendor-specific start options, passed to the hook (templated)
    :param wait_for_completion: poll until the instance reaches a target or failure state
    :param target_states: states that end the wait successfully
    :param failure_states: states that fail the task
    :param poll_interval: seconds between polls
    :param timeout: seconds to wait at most. None: the task's ``execution_timeout`` limits a
        polling wait, if set; a deferred wait takes ``execution_timeout``, or else 7 days
        (:data:`~airflow_bpm_provider.deferral.DEFAULT_WAIT`, as a sensor's default timeout)
    :param deferrable: wait in the triggerer instead of a worker slot (default: Airflow's
        ``[operators] default_deferrable``). The process is started on the worker, its id and URL
        pushed, and its state checked once; only a process still running is handed to
        :class:`~airflow_bpm_provider.triggers.process.BpmProcessStateTrigger`.
    :param cancel_on_kill: cancel the started process when the task is killed: on the worker when
        Airflow calls ``on_kill`` (SIGTERM, e.g. a user marks the task failed, or
        ``execution_timeout``), while deferred when a user acts on the task (the trigger's
        ``on_kill``). Not when ``timeout`` ends the wait, nor when a triggerer restarts.
    """

    template_fields: Sequence[str] = ("process", "variables", "business_key", "start_options")
    template_fields_renderers = {"variables": "json", "start_options": "json"}
    operator_extra_links = (BpmProcessLink(),)
    ui_color = "#dbe9f6"

    def __init__(
        self,
        *,
        bpm_conn_id: str,
        process: str,
        variables: Mapping[str, Any] | None = None,
        business_key: str | None = None,
        start_options: Mapping[str, Any] | None = None,
        wait_for_completion: bool = False,
        target_states: Sequence[str] = ("COMPLETED",),
        failure_states: Sequence[str] = ("FAILED", "CANCELLED"),
        poll_interval: float = 30,
        timeout: float | None = None,
        deferrable: bool | None = None,
        cancel_on_kill: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not process:
            raise ValueError("process is required: the process model, name or definition key to start")
        if poll_interval < 0:
            raise ValueError(f"poll_interval must be >= 0 seconds, got {poll_interval}")
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds or None, got {timeout}")
        self.bpm_conn_id = bpm_conn_id
        self.process = process
        self.variables = variables
        self.business_key = business_key
        self.start_options = start_options
        self.wait_for_completion = wait_for_completion
        self.target_states, self.failure_states = parse_state_sets(target_states, failure_states)
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.deferrable = deferral.default_deferrable() if deferrable is None else deferrable
        self.cancel_on_kill = cancel_on_kill
        self._instance_id: str | None = None  # once started: what on_kill cancels

    def get_hook(self) -> BpmHook:
        from airflow_bpm_provider.hooks.registry import get_bpm_hook

        return get_bpm_hook(self.bpm_conn_id)

    def execute(self, context: Context) -> str:
        variables = mapping_or_none(self.variables, argument="variables")
        options = mapping_or_none(self.start_options, argument="start_options") or {}
        with self.get_hook() as hook:
            instance = self._reuse_or_start(hook, context, variables, options)
            self._instance_id = instance.id
            url = instance.url or hook.ui_url(instance.id)
            ti = context["ti"]
            ti.xcom_push(key=XCOM_INSTANCE_ID, value=instance.id)
            ti.xcom_push(key=XCOM_INSTANCE_URL, value=url)
            self.log.info("Process instance %s of %s: %s", instance.id, self.process, url or "(no UI URL)")
            if self.wait_for_completion:
                if self.deferrable:
                    self._check_then_defer(hook, instance.id, url)
                else:
                    self._wait_for_end(hook, instance.id, url)
        return instance.id

    def _reuse_or_start(
        self, hook: BpmHook, context: Context, variables: dict[str, Any] | None, options: dict[str, Any]
    ) -> ProcessInstance:
        business_key = str(self.business_key) if self.business_key not in (None, "") else None
        if business_key is not None:
            existing = self._find_by_business_key(hook, business_key)
            if existing is not None:
                self.log.info(
                    "Reusing process instance %s (%s) with business key %r instead of starting another",
                    existing.id,
                    existing.state.value,
                    business_key,
                )
                return hook.resume_start(existing, variables=variables, **options)
        else:
            try_number = getattr(context.get("ti"), "try_number", 1) or 1
            if try_number > 1:
                self.log.warning(
                    "Try %d starts %s again without a business_key: if an earlier try started it, there "
                    "are now two instances. Set business_key to make the start retry-safe.",
                    try_number,
                    self.process,
                )
        return hook.start_process(self.process, variables=variables, business_key=business_key, **options)

    def _find_by_business_key(self, hook: BpmHook, business_key: str) -> ProcessInstance | None:
        try:
            return hook.find_process_by_business_key(self.process, business_key)
        except NotImplementedError:
            self.log.info(
                "%s cannot search by business key; a retry of this task may start a second instance",
                type(hook).__name__,
            )
            return None

    def _wait_for_end(self, hook: BpmHook, instance_id: str, url: str | None) -> ProcessInstance:
        """Poll until a target state (returned) or a failure state, end or timeout (raised)."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            instance = hook.get_process(instance_id)
            if self.check_state(instance, url):
                return instance
            if deadline is not None and time.monotonic() >= deadline:
                raise AirflowException(
                    f"{describe(instance, url)} after waiting {self.timeout} s for "
                    f"{', '.join(self.target_states)}"
                )
            self.log.info("%s; next check in %s s", describe(instance, url), self.poll_interval)
            self._sleep(self.poll_interval)

    def check_state(self, instance: ProcessInstance, url: str | None) -> bool:
        """True in a target state, False while waiting; raises when the instance failed or ended."""
        verdict = judge(instance, self.target_states, self.failure_states)
        if verdict is Verdict.REACHED:
            self.log.info("%s", describe(instance, url))
            return True
        # A plain AirflowException: the task's retries apply (with a business key a retry finds this
        # same instance again; without one it starts a fresh instance, which is what a retry means).
        if verdict is Verdict.FAILED:
            raise AirflowException(f"{describe(instance, url)}, a failure state")
        if verdict is Verdict.STRANDED:
            raise AirflowException(
                f"{describe(instance, url)}: it ended without reaching {', '.join(self.target_states)}"
            )
        return False

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _wait_budget(self) -> float:
        """Seconds a deferred wait may take: ``timeout``, else ``execution_timeout`` (a deferred
        task's running time does not count towards that in Airflow 3), else DEFAULT_WAIT."""
        if self.timeout is not None:
            return self.timeout
        if isinstance(self.execution_timeout, timedelta):
            return self.execution_timeout.total_seconds()
        return deferral.DEFAULT_WAIT.total_seconds()

    def _check_then_defer(self, hook: BpmHook, instance_id: str, url: str | None) -> None:
        """Returns when the process is already in a target state; otherwise defers (or raises)."""
        if self.check_state(hook.get_process(instance_id), url):
            return
        from airflow_bpm_provider.triggers.process import BpmProcessStateTrigger

        if self.timeout is None and not isinstance(self.execution_timeout, timedelta):
            self.log.info(
                "Neither timeout nor execution_timeout is set: waiting at most %s for %s",
                deferral.DEFAULT_WAIT,
                ", ".join(self.target_states),
            )
        budget = deferral.Budget.starting_now(self._wait_budget())
        self.defer(
            trigger=BpmProcessStateTrigger(
                self.bpm_conn_id,
                instance_id,
                target_states=list(self.target_states),
                failure_states=list(self.failure_states),
                poll_interval=deferral.trigger_poll_interval(self.poll_interval),
                deadline=budget.deadline,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
            timeout=budget.defer_timeout,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Back from the trigger: the instance id, or the failure the polling wait would raise."""
        event = deferral.check_event(event, task_id=self.task_id)
        status = event["status"]
        if status in (deferral.SUCCESS, deferral.FAILED):
            instance = deferral.instance_in(event, task_id=self.task_id)
            self._instance_id = instance.id
            url = event.get("url") or instance.url
            if self.check_state(instance, url):
                return instance.id
            raise AirflowException(f"the trigger reported {status}, but {describe(instance, url)}")
        if status == deferral.TIMEOUT:
            raise AirflowException(
                f"{deferral.event_message(event)} after waiting {self._wait_budget()} s for "
                f"{', '.join(self.target_states)}"
            )
        raise AirflowException(
            f"waiting for process instance {event.get('process_instance_id')} failed: "
            f"{deferral.event_message(event)}"
        )

    def on_kill(self) -> None:
        """A user killed the task while it waited on the worker: cancel the process if asked to."""
        if not (self.cancel_on_kill and self._instance_id):
            return
        self.log.info("Cancelling process instance %s because the task was killed", self._instance_id)
        with self.get_hook() as hook:
            hook.cancel_process(self._instance_id)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The definition in, the started instance out (called only by the OpenLineage provider)."""
        from airflow_bpm_provider.lineage import start_lineage

        instance_id = getattr(self, "_instance_id", None)
        if instance_id is None and task_instance is not None:
            instance_id = task_instance.xcom_pull(task_ids=self.task_id, key=XCOM_INSTANCE_ID)
        return start_lineage(self.bpm_conn_id, str(self.process), instance_id)
