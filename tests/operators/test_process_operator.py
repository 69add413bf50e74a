"""BpmStartProcessOperator: templated start, XCom before waiting, retry safety, waiting."""

from __future__ import annotations

import memory_bpm
import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException
from airflow_runtime import context_for, run

from airflow_bpm_provider.exceptions import BpmConfigError
from airflow_bpm_provider.links import BpmProcessLink
from airflow_bpm_provider.models import ProcessState
from airflow_bpm_provider.operators.process import BpmStartProcessOperator


@pytest.fixture
def expense(bpm):
    bpm.define("expense", "Expense report", ["Review", "Approve"])
    return bpm


def make(**kwargs) -> BpmStartProcessOperator:
    with DAG("bpm_start", schedule=None):
        return BpmStartProcessOperator(
            task_id="start", bpm_conn_id=memory_bpm.CONN_ID, **{"process": "expense", **kwargs}
        )


def finish_open_tasks(bpm):
    for task in bpm.open_tasks():
        bpm.complete(task.id, {"ok": True})


def test_templated_fields_are_rendered_and_the_instance_id_returned_and_pushed(expense, supervisor):
    op = make(
        process="{{ params.process }}",
        variables={"day": "{{ ds }}", "amount": 42},
        business_key="INV-{{ ds }}",
        start_options={"title": "Report of {{ ds }}"},
    )
    context = context_for(op, params={"process": "expense"})

    instance_id = run(op, context)

    assert expense.starts == [
        {
            "process": "expense",
            "variables": {"day": "2024-05-01", "amount": 42},
            "business_key": "INV-2024-05-01",
        }
    ]
    assert expense.instance(instance_id).title == "Report of 2024-05-01"
    ti = context["ti"]
    assert supervisor.xcom(ti, "process_instance_id") == instance_id
    assert supervisor.xcom(ti, "process_instance_url") == f"{memory_bpm.HOST}/process/{instance_id}"
    assert expense.instance(instance_id).state is ProcessState.RUNNING  # no wait asked for


def test_template_fields_and_link_are_declared():
    assert set(BpmStartProcessOperator.template_fields) == {
        "process",
        "variables",
        "business_key",
        "start_options",
    }
    assert [type(link) for link in BpmStartProcessOperator.operator_extra_links] == [BpmProcessLink]


def test_ids_are_pushed_before_the_wait_and_the_wait_ends_on_completion(expense, supervisor, monkeypatch):
    op = make(wait_for_completion=True, poll_interval=5)
    context = context_for(op)
    seen_while_waiting = []

    def sleep(seconds):
        seen_while_waiting.append((seconds, supervisor.xcom(context["ti"], "process_instance_id")))
        finish_open_tasks(expense)  # people work through the tasks while the operator waits

    monkeypatch.setattr(op, "_sleep", sleep)
    instance_id = run(op, context)

    assert seen_while_waiting == [(5, instance_id), (5, instance_id)]  # Review, then Approve
    assert expense.instance(instance_id).state is ProcessState.COMPLETED


@pytest.mark.parametrize("state", [ProcessState.FAILED, ProcessState.CANCELLED])
def test_a_failure_state_fails_the_task_naming_state_and_url(expense, supervisor, monkeypatch, state):
    op = make(wait_for_completion=True, poll_interval=0)
    monkeypatch.setattr(op, "_sleep", lambda seconds: expense.end(next(iter(expense.instances)), state))
    with pytest.raises(AirflowException) as info:
        run(op, context_for(op))
    message = str(info.value)
    instance_id = next(iter(expense.instances))
    assert f"process instance {instance_id} is {state.value}" in message
    assert f"{memory_bpm.HOST}/process/{instance_id}" in message
    assert "vendor state" in message  # the raw state is shown when it differs in spelling


def test_an_end_outside_target_and_failure_states_fails_too(expense, supervisor, monkeypatch):
    op = make(wait_for_completion=True, poll_interval=0, failure_states=["FAILED"])
    monkeypatch.setattr(
        op, "_sleep", lambda s: expense.end(next(iter(expense.instances)), ProcessState.CANCELLED)
    )
    with pytest.raises(AirflowException, match="ended without reaching COMPLETED"):
        run(op, context_for(op))


def test_the_wait_times_out_with_a_clear_error(expense, supervisor, monkeypatch):
    op = make(wait_for_completion=True, poll_interval=0, timeout=0)
    with pytest.raises(AirflowException, match=r"is RUNNING .* after waiting 0 s for COMPLETED"):
        run(op, context_for(op))


def test_a_retry_with_a_business_key_reuses_the_instance_it_started(expense, supervisor):
    op = make(business_key="INV-7", wait_for_completion=True, poll_interval=0, timeout=0)
    with pytest.raises(AirflowException, match="after waiting"):
        run(op, context_for(op, try_number=1))
    assert len(expense.starts) == 1
    first_id = next(iter(expense.instances))

    finish_open_tasks(expense)
    finish_open_tasks(expense)
    retry = context_for(
        make(business_key="INV-7", wait_for_completion=True, poll_interval=0, timeout=0), try_number=2
    )
    assert run(retry["task"], retry) == first_id
    assert len(expense.starts) == 1  # the system saw one start only
    assert supervisor.xcom(retry["ti"], "process_instance_id") == first_id


def test_a_business_key_of_another_process_does_not_count(expense, supervisor):
    expense.define("travel", "Travel")
    expense.start("travel", {}, "INV-7", None)
    instance_id = run(make(business_key="INV-7"), context_for(make(business_key="INV-7")))
    assert expense.instance(instance_id).definition == "expense"
    assert len(expense.starts) == 2


def test_without_business_key_search_the_start_goes_ahead(expense, supervisor):
    expense.supports_business_key = False
    expense.start("expense", {}, "INV-7", None)
    op = make(business_key="INV-7")
    run(op, context_for(op, try_number=2))
    assert [start["business_key"] for start in expense.starts] == ["INV-7", "INV-7"]


def test_a_retry_without_business_key_warns_that_it_starts_again(expense, supervisor, capfd):
    # Task logs go through Airflow's structlog setup to the process output, not to stdlib logging.
    op = make()
    run(op, context_for(op, try_number=1))
    assert "without a business_key" not in capfd.readouterr().out
    run(op, context_for(op, try_number=2))
    out = capfd.readouterr().out
    assert "warning" in out
    assert "Try 2 starts expense again without a business_key" in out
    assert len(expense.starts) == 2


def test_a_variables_string_is_a_clear_error(expense, supervisor):
    op = make(variables="{{ params.vars }}")
    with pytest.raises(BpmConfigError, match=r"variables must be a mapping.*render_template_as_native_obj"):
        run(op, context_for(op, params={"vars": {"a": 1}}))
    assert expense.starts == []


def test_vendor_options_reach_the_hook_which_rejects_unknown_ones(expense, supervisor):
    op = make(start_options={"priority": "high"})
    with pytest.raises(BpmConfigError, match="unknown start options: priority"):
        run(op, context_for(op))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_states": ["DONE"]}, "target_states: unknown process state 'DONE'"),
        ({"failure_states": ["BROKEN"]}, "failure_states: unknown process state 'BROKEN'"),
        ({"target_states": ["completed"], "failure_states": ["COMPLETED"]}, "COMPLETED are in both"),
        ({"target_states": []}, "at least one"),
        ({"poll_interval": -1}, "poll_interval"),
        ({"timeout": -5}, "timeout"),
        ({"process": ""}, "process is required"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_states_are_normalised():
    op = make(target_states="completed", failure_states=("failed", "FAILED", "cancelled"))
    assert op.target_states == ("COMPLETED",)
    assert op.failure_states == ("FAILED", "CANCELLED")


def test_a_reused_instance_that_failed_fails_the_task_without_a_new_start(expense, supervisor):
    earlier = expense.start("expense", {}, "INV-9", None)
    expense.end(earlier.id, ProcessState.FAILED)
    op = make(business_key="INV-9", wait_for_completion=True, poll_interval=0)
    with pytest.raises(AirflowException, match=f"process instance {earlier.id} is FAILED"):
        run(op, context_for(op, try_number=2))
    assert len(expense.starts) == 1
