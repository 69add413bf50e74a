"""Start a business process from a DAG, optionally waiting until it ends."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, BaseOperator, ResumableJobMixin

from airflow_bpm_provider import deferral, links
from airflow_bpm_provider.exceptions import (
    BpmConfigError,
    BpmConflict,
    BpmConnectionError,
    BpmError,
    BpmNotFound,
)
from airflow_bpm_provider.links import XCOM_INSTANCE_ID, XCOM_INSTANCE_URL, BpmProcessLink
from airflow_bpm_provider.start_journal import INSTANCE_ID_KEY, SentMark, StartJournal, start_never_acted
from airflow_bpm_provider.state_sets import Verdict, describe, judge, parse_state_sets

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_bpm_provider.hooks.base import BpmHook
    from airflow_bpm_provider.models import ProcessInstance

#: Seconds the BPM server's clock may lag the worker's: an instance started "before" the worker's
#: "start sent" time by up to this much still counts as the lost start's. Five minutes is the
#: tolerance Kerberos allows by default; clocks kept by NTP are far closer.
DEFAULT_CLOCK_SKEW = 300.0
#: What get_job_status reports for a stored instance the system no longer knows.
NOT_FOUND = "NOT_FOUND"


class _Run:
    """One execute(): the open hook, the rendered start input, and what the job methods learnt."""

    def __init__(
        self,
        hook: BpmHook,
        variables: dict[str, Any] | None,
        options: dict[str, Any],
        business_key: str | None,
    ) -> None:
        self.hook = hook
        self.variables = variables
        self.options = options
        self.business_key = business_key
        self.started: ProcessInstance | None = None  # started by this try
        self.found: ProcessInstance | None = None  # reattached, adopted or reused
        self.attached: str | None = None  # id whose XComs this try pushed


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


class BpmStartProcessOperator(ResumableJobMixin, BaseOperator):
    """Start one instance of ``process`` on the BPM system behind ``bpm_conn_id``.

    Returns the process instance id. Before any wait it pushes XComs ``process_instance_id`` and
    ``process_instance_url`` (shown as the "BPM process" link).

    A resumable job (AIP-103): with Airflow's task state store (3.3+) the instance id is stored
    the moment the start answers, before any further call, and a retry or a new worker after a
    crash reattaches to that instance (finishing a start that was left half-done) instead of
    starting another. Before the start is sent, "start sent at T" is stored too; a retry that
    finds that mark but no id looks for an instance of ``process`` started by the connection's
    user since T (less ``start_clock_skew``) that carries no key yet, adopts it when exactly one
    matches, fails with :class:`~airflow_bpm_provider.exceptions.BpmConflict` when several do,
    and starts again only when none does. A start that provably started nothing (refused with a
    4xx answer other than 408, or never sent) drops the mark, so the next try starts at once.

    A ``business_key`` is the idempotency key across tries and DAG runs and the fallback without
    a task state store: an instance of ``process`` with that key is reused instead of starting
    another. Without a key and without a task state store a retry starts another instance; the
    log says so.

    Example (the same task on every system; only ``process`` and the options differ):

        BpmStartProcessOperator(
            task_id="start",
            bpm_conn_id="my_bpm",
            process="expense-approval",
            business_key="expense-{{ run_id }}",
            variables={"amount": 1234.5, "purpose": "Cloud costs {{ dag_run.run_after | ds }}"},
            wait_for_completion=True,
            deferrable=True,
        )

    :param bpm_conn_id: connection of a BPM connection type, ``questetra`` (Questetra BPM Suite,
        DataSpider BPM), ``bonita``, ``activiti`` (Activiti, Flowable, WSO2 EI) or ``yuuvis_bpm``.
    :param process: what the system calls a process (templated), for example

        - Questetra / DataSpider: the app's ``processModelInfoId``, ``"12"``, or ``"12/3"`` to name
          start event node 3 when the app has several;
        - Bonita: the process name ``"Expense Report"`` (its enabled version),
          ``"Expense Report@1.2"``, or the numeric process definition id ``"8356012789"``;
        - Activiti / Flowable / WSO2 EI: the ``processDefinitionKey`` ``"expenseApproval"``,
          ``"id:expenseApproval:3:42"`` for one definition id, or ``"message:expenseFiled"`` to
          start by message;
        - yuuvis: the ``processDefinitionKey`` ``"invoiceApproval"`` (its latest version).
    :param variables: start values (templated; a dict, or a template rendering one with
        ``render_template_as_native_obj=True``), for example

        - Questetra: data items by name or number, ``{"Amount": 1234.5, 4: "Cloud costs"}``;
          the values fill the first task's form, typed from the form (dates, selects, users);
        - Bonita: the process contract's inputs, ``{"expenseId": "E-42", "amount": 1234.5}``
          (with ``start_options={"via": "case"}``: process variables);
        - Activiti / Flowable / WSO2 EI: process variables, typed from the Python values,
          ``{"amount": 1234.5, "approved": False, "due": date(2024, 6, 1)}``;
        - yuuvis: process variables, ``{"documentId": "{{ ti.xcom_pull(task_ids='pick') }}"}``, or
          a list of ready ``{"name", "type", "value"}`` dicts.
    :param business_key: the instance's business key (templated), e.g. ``"expense-{{ run_id }}"``;
        where it goes

        - Questetra: saved as the process title (``start_options["title"]`` wins);
        - Bonita: stored in the contract input named by the connection's
          ``business_key_variable`` extra (required for a key);
        - Activiti / Flowable / WSO2 EI and yuuvis: the instance's ``businessKey``.
    :param start_options: vendor-specific start options, passed to the hook (templated); a hook
        refuses options it does not know

        - Questetra: ``{"title": "Trip to Osaka", "flow": "Submit", "qgroup_id": 3}``: the
          title, the button (flow id or label) that submits the first task, the organization to
          act for; ``{"save_only": True}`` saves the first task without submitting it;
        - Bonita: ``{"via": "case"}`` starts through ``POST /API/bpm/case`` with process
          variables, for processes without a contract (default ``"instantiation"``);
        - Activiti / Flowable / WSO2 EI: ``{"by": "message"}`` (``"key"``, ``"id"`` or
          ``"message"``; the same as the ``id:``/``message:`` prefixes) and
          ``{"tenant_id": "-1234"}`` to override the connection's tenant;
        - yuuvis: ``{"name": "Invoice 4711"}`` names the instance.
    :param wait_for_completion: poll until the instance reaches a target or failure state
        (default False: the task ends once the process is started)
    :param target_states: states that end the wait successfully (default ``("COMPLETED",)``); any
        of ``RUNNING``, ``SUSPENDED``, ``COMPLETED``, ``FAILED``, ``CANCELLED``. Questetra cannot
        suspend a process and ends a stopped one as FAILED, so there CANCELLED is never seen.
    :param failure_states: states that fail the task (default ``("FAILED", "CANCELLED")``)
    :param poll_interval: seconds between polls (default 30; at least 1 s in the triggerer).
        What one poll costs: Activiti / Flowable / WSO2 EI read up to 500 waited instances in one
        request, so ``poll_interval=10`` is cheap even for many runs; Questetra, Bonita and
        yuuvis list the running instances of each waited definition (1,000 a page), so for
        human approvals that take hours ``poll_interval=300`` is plenty.
    :param timeout: seconds to wait at most. With None the task's ``execution_timeout`` limits
        a polling wait, if set; a deferred wait takes ``execution_timeout``, or else 7 days
        (:data:`~airflow_bpm_provider.deferral.DEFAULT_WAIT`, as a sensor's default timeout)
    :param deferrable: wait in the triggerer instead of a worker slot (default Airflow's
        ``[operators] default_deferrable``). The process is started on the worker, its id and URL
        pushed, and its state checked once; only a process still running is handed to
        :class:`~airflow_bpm_provider.triggers.process.BpmProcessStateTrigger`.
    :param cancel_on_kill: cancel the started process when the task is killed. On the worker
        that is Airflow's ``on_kill`` (SIGTERM: a user marks the task failed, or
        ``execution_timeout``); while deferred, a user acting on the task (the trigger's
        ``on_kill``). Not when ``timeout`` ends the wait, nor when a triggerer restarts.
    :param start_clock_skew: seconds the BPM server's clock may lag the worker's, for finding a
        start whose answer was lost (default :data:`DEFAULT_CLOCK_SKEW`, 300)
    :param durable: keep the start in the task state store (default True; Airflow 3.3+)
    """

    external_id_key = INSTANCE_ID_KEY

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
        start_clock_skew: float = DEFAULT_CLOCK_SKEW,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not process:
            raise ValueError("process is required: the process model, name or definition key to start")
        if poll_interval < 0:
            raise ValueError(f"poll_interval must be >= 0 seconds, got {poll_interval}")
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds or None, got {timeout}")
        if start_clock_skew < 0:
            raise ValueError(f"start_clock_skew must be >= 0 seconds, got {start_clock_skew}")
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
        self.start_clock_skew = start_clock_skew
        self._instance_id: str | None = None  # once started: what on_kill cancels
        self._run: _Run | None = None

    def get_hook(self) -> BpmHook:
        from airflow_bpm_provider.hooks.registry import get_bpm_hook

        return get_bpm_hook(self.bpm_conn_id)

    def execute(self, context: Context) -> str:
        links.forget_url(self)  # until this try pushes one: the link need not ask XCom
        business_key = str(self.business_key) if self.business_key not in (None, "") else None
        variables = mapping_or_none(self.variables, argument="variables")
        options = mapping_or_none(self.start_options, argument="start_options") or {}
        with self.get_hook() as hook:
            self._run = _Run(hook, variables, options, business_key)
            try:
                return self.execute_resumable(context)
            finally:
                self._run = None

    # ---- the resumable job (ResumableJobMixin) -------------------------------------------------

    def submit_job(self, context: Context) -> str:
        """Reuse what an earlier try started, or start; the id is stored as the answer arrives."""
        run = self._current_run()
        journal = StartJournal.of(context) if self.durable else StartJournal(None)
        if run.business_key is not None:
            existing = self._find_by_business_key(run.hook, run.business_key)
            if existing is not None:
                self.log.info(
                    "Reusing process instance %s (%s) with business key %r instead of starting another",
                    existing.id,
                    existing.state.value,
                    run.business_key,
                )
                journal.record_started(existing.id)
                run.found = existing
                return existing.id
        try_number = getattr(context.get("ti"), "try_number", 1) or 1
        mark = journal.sent_mark()
        if mark is not None:
            adopted = self._adopt_unanswered_start(run, mark, exclude=journal.instance_id())
            if adopted is not None:
                journal.record_started(adopted.id)
                run.found = adopted
                return adopted.id
        elif not journal.durable:
            self._say_what_is_guaranteed(run, try_number)
        journal.mark_sent(try_number)
        try:
            with journal.listening():  # a start of several calls reports its id between them
                instance = run.hook.start_process(
                    self.process, variables=run.variables, business_key=run.business_key, **run.options
                )
        except BpmError as exc:
            if journal.reported is None and start_never_acted(exc):
                self._forget_sent_mark(journal, exc)
            raise
        journal.record_started(instance.id)
        run.started = instance
        return instance.id

    def get_job_status(self, external_id: Any, context: Context) -> str:
        run = self._current_run()
        try:
            run.found = run.hook.get_process(str(external_id))
        except BpmNotFound:
            self.log.warning("Process instance %s, stored by an earlier try, no longer exists", external_id)
            run.found = None
            return NOT_FOUND
        self.log.info(
            "An earlier try started process instance %s of %s; it is %s",
            external_id,
            self.process,
            run.found.state.value,
        )
        return run.found.state.value

    def is_job_succeeded(self, status: str) -> bool:
        found = self._current_run().found
        if found is None:
            return False
        # Without a wait the job is the start itself, done once the instance exists.
        return not self.wait_for_completion or judge(found, self.target_states, self.failure_states) is (
            Verdict.REACHED
        )

    def is_job_active(self, status: str) -> bool:
        found = self._current_run().found
        if found is None or self.is_job_succeeded(status):
            return False
        # An instance that failed or ended elsewhere is "terminal": the mixin then calls submit_job,
        # where a business key still finds (and judges) that same instance.
        return judge(found, self.target_states, self.failure_states) is Verdict.WAITING

    def poll_until_complete(self, external_id: Any, context: Context) -> str:
        """Attach, then wait (or defer). Returns the id: on a reconnect to a stored instance still
        running, the mixin returns what this returns, without calling get_job_result."""
        run = self._current_run()
        instance, url = self._attach(run, str(external_id), context)
        if self.wait_for_completion:
            if self.deferrable:
                self._check_then_defer(run.hook, instance.id, url)
            else:
                self._wait_for_end(run.hook, instance.id, url)
        return str(external_id)

    def get_job_result(self, external_id: Any, context: Context) -> str:
        run = self._current_run()
        if run.attached != str(external_id):
            self._attach(run, str(external_id), context)
        return str(external_id)

    # ---- helpers ------------------------------------------------------------------------------

    def _current_run(self) -> _Run:
        if self._run is None:
            raise RuntimeError("BpmStartProcessOperator's job methods run only inside execute()")
        return self._run

    def _attach(self, run: _Run, instance_id: str, context: Context) -> tuple[ProcessInstance, str | None]:
        """Finish a start an earlier try left half-done, then push the id and URL."""
        if run.started is not None and run.started.id == instance_id:
            instance = run.started  # started by this try: nothing left to finish
        else:
            found = run.found if run.found is not None and run.found.id == instance_id else None
            instance = found or run.hook.get_process(instance_id)
            instance = run.hook.resume_start(
                instance, variables=run.variables, business_key=run.business_key, **run.options
            )
        run.attached = instance.id
        self._instance_id = instance.id
        url = instance.url or run.hook.ui_url(instance.id)
        ti = context["ti"]
        ti.xcom_push(key=XCOM_INSTANCE_ID, value=instance.id)
        ti.xcom_push(key=XCOM_INSTANCE_URL, value=url)
        links.remember_url(self, url)
        self.log.info("Process instance %s of %s: %s", instance.id, self.process, url or "(no UI URL)")
        return instance, url

    def _forget_sent_mark(self, journal: StartJournal, exc: BpmError) -> None:
        """The start was refused or never sent: no instance exists for a retry to look for."""
        self.log.info(
            "The start of %s was %s, so it started nothing: the next try starts without looking for it",
            self.process,
            "never sent" if isinstance(exc, BpmConnectionError) else f"refused (HTTP {exc.status})",
        )
        try:
            journal.clear_sent()
        except Exception as store_exc:  # the start's own error is the one to raise
            self.log.warning(
                "Could not drop the start-sent mark (%s: %s); the next try looks for an instance first",
                type(store_exc).__name__,
                store_exc,
            )

    def _adopt_unanswered_start(
        self, run: _Run, mark: SentMark, *, exclude: str | None
    ) -> ProcessInstance | None:
        """An earlier try sent a start at ``mark.at`` and never heard back: find what it started."""
        if run.business_key is not None and not getattr(run.hook, "business_key_after_start", False):
            # The key travels with the start here: the lookup by key above already had the say.
            self.log.info(
                "Try %d sent a start at %s but got no answer; no instance carries business key %r, "
                "so it never started: starting now",
                mark.try_number,
                mark.at.isoformat(),
                run.business_key,
            )
            return None
        finder = getattr(run.hook, "find_unclaimed_starts", None)
        if finder is None:
            self.log.warning(
                "Try %d sent a start at %s but got no answer, and %s cannot look for the instance it may "
                "have started: starting again may leave two instances",
                mark.try_number,
                mark.at.isoformat(),
                type(run.hook).__name__,
            )
            return None
        since = mark.at - timedelta(seconds=self.start_clock_skew)
        candidates = [c for c in finder(self.process, since) if c.id != exclude]
        if len(candidates) == 1:
            self.log.warning(
                "Try %d sent a start at %s but got no answer; adopting process instance %s of %s, the one "
                "instance started by this user since %s that carries no key yet",
                mark.try_number,
                mark.at.isoformat(),
                candidates[0].id,
                self.process,
                since.isoformat(),
            )
            return candidates[0]
        if candidates:
            shown = ", ".join(
                f"{c.id} (started {c.started_at.isoformat() if c.started_at else 'at an unknown time'})"
                for c in candidates[:10]
            )
            raise BpmConflict(
                f"try {mark.try_number} sent a start of {self.process} at {mark.at.isoformat()} and got "
                f"no answer; {len(candidates)} instances started by this user since {since.isoformat()} "
                f"carry no key, so which one it started is unclear: {shown}. Cancel the ones that are "
                f"not this task's, or set a business_key, then clear the task",
                system=getattr(run.hook, "system", None),
                conn_id=self.bpm_conn_id,
            )
        self.log.info(
            "Try %d sent a start at %s but got no answer, and no instance of %s was started by this user "
            "since %s: it never started; starting now",
            mark.try_number,
            mark.at.isoformat(),
            self.process,
            since.isoformat(),
        )
        return None

    def _say_what_is_guaranteed(self, run: _Run, try_number: int) -> None:
        """Without a task state store only the business key protects a retry."""
        if run.business_key is None:
            if try_number > 1:
                self.log.warning(
                    "Try %d starts %s again without a business_key and without a task state store: if an "
                    "earlier try started it, there are now two instances. Set business_key to make the "
                    "start retry-safe.",
                    try_number,
                    self.process,
                )
            return
        self.log.info(
            "No task state store (Airflow below 3.3, or durable=False): a retry finds this try's instance "
            "only by business key %r%s",
            run.business_key,
            " once its title is saved" if getattr(run.hook, "business_key_after_start", False) else "",
        )

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
            instance = hook.get_process(instance_id, with_business_key=False)
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
        if self.check_state(hook.get_process(instance_id, with_business_key=False), url):
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
