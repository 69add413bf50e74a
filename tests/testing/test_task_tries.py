"""task_tries: an operator's tries in-process; the task state store outlives a try, as on a deployment."""

from __future__ import annotations

import pytest
from airflow.sdk import DAG
from airflow.sdk.bases.operator import BaseOperator

from airflow_bpm_provider.testing import task_tries


class RemembersAcrossTries(BaseOperator):
    template_fields = ("word",)

    def __init__(self, *, word: str, **kwargs):
        super().__init__(**kwargs)
        self.word = word

    def execute(self, context):
        store = context["task_state_store"]
        seen = store.get("seen", [])
        store.set("seen", [*seen, context["ti"].try_number])
        context["ti"].xcom_push(key="word", value=self.word)
        if len(seen) == 0:
            raise RuntimeError("the first try fails")
        return seen


def operator() -> RemembersAcrossTries:
    with DAG("tries", schedule=None):
        return RemembersAcrossTries(task_id="remember", word="{{ run_id }}", retries=2)


@pytest.fixture
def supervisor():
    local = task_tries.LocalSupervisor()
    previous = task_tries.install(local)
    try:
        yield local
    finally:
        task_tries.restore(previous)


def test_the_state_store_is_kept_per_run_across_tries_and_xcoms_are_stored(supervisor):
    first = task_tries.context_for(supervisor, operator(), run_id="run_a", try_number=1)
    with pytest.raises(RuntimeError):
        task_tries.run_try(first["task"], first)
    second = task_tries.context_for(supervisor, operator(), run_id="run_a", try_number=2)

    assert task_tries.run_try(second["task"], second) == [1]
    assert second["ti"].id != first["ti"].id  # a new task instance per try, as Airflow gives
    assert supervisor.state("tries", "run_a", "remember") == {"seen": [1, 2]}
    assert supervisor.xcoms[("tries", "run_a", "remember", -1, "word")] == "run_a"  # rendered

    other_run = task_tries.context_for(supervisor, operator(), run_id="run_b", try_number=1)
    with pytest.raises(RuntimeError):  # another run starts with an empty store
        task_tries.run_try(other_run["task"], other_run)
    assert supervisor.state("tries", "run_b", "remember") == {"seen": [1]}


def test_a_message_the_local_supervisor_does_not_know_is_refused(supervisor):
    from airflow.sdk.execution_time.comms import GetVariable

    with pytest.raises(RuntimeError, match="does not answer GetVariable"):
        supervisor.send(GetVariable(key="x"))


class SubmitsOnce(BaseOperator):
    """A durable job (AIP-103): the id is stored when submitted; a retry reconnects to it."""

    submitted: list[str] = []

    def execute(self, context):
        from airflow.providers.common.compat.sdk import ResumableJobMixin

        job = type(
            "Job",
            (ResumableJobMixin, BaseOperator),
            {
                "submit_job": lambda s, ctx: SubmitsOnce.submitted.append("job-1") or "job-1",
                "get_job_status": lambda s, job_id, ctx: "RUNNING",
                "is_job_active": lambda s, status: status == "RUNNING",
                "is_job_succeeded": lambda s, status: False,
                "poll_until_complete": lambda s, job_id, ctx: _poll(ctx, job_id),
                "get_job_result": lambda s, job_id, ctx: job_id,
            },
        )(task_id="inner")
        return job.execute_resumable(context)


def _poll(context, job_id):
    if context["ti"].try_number == 1:
        raise RuntimeError("the worker died while polling")
    return job_id


def test_a_resumable_job_reconnects_on_the_next_try_instead_of_submitting_again(supervisor):
    SubmitsOnce.submitted.clear()
    for try_number in (1, 2):
        with DAG("durable", schedule=None):
            op = SubmitsOnce(task_id="job", retries=1)
        context = task_tries.context_for(supervisor, op, run_id="run", try_number=try_number)
        if try_number == 1:
            with pytest.raises(RuntimeError):
                task_tries.run_try(op, context)
        else:
            assert task_tries.run_try(op, context) == "job-1"
    assert SubmitsOnce.submitted == ["job-1"]
