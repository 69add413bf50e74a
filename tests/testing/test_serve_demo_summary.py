"""How ``make demo`` reads deferrals from an ``airflow dags test`` log (lines as Airflow 3.3 writes them)."""

from __future__ import annotations

from airflow_bpm_provider.testing.demo_run import Deferrals, print_deferrals, read_deferrals

RUN = "manual__2026-12-02T00:05:07.583699+00:00"


def start(task: str) -> str:
    return (
        f"2026-12-02T00:05:18.041922Z [info     ] [DAG TEST] starting task_id={task} map_index=-1 "
        "[airflow.sdk.definitions.dag] loc=dag.py:1501"
    )


def deferred(task: str) -> str:
    return (
        "2026-12-02T00:05:18.125060Z [info     ] Pausing task as DEFERRED.      [task] "
        f"dag_id=bpm_bonita_expense loc=task_runner.py:1466 run_id={RUN} task_id={task}"
    )


TRIGGER_RUNS = (
    "2026-12-02T00:05:18.183827Z [info     ] [DAG TEST] running trigger in line "
    "[airflow.sdk.definitions.dag] loc=dag.py:1534"
)
TRIGGER_FIRED = (
    "2026-12-02T00:05:22.472097Z [info     ] [DAG TEST] Trigger completed   "
    "[airflow.sdk.definitions.dag] loc=dag.py:1546"
)


def end(task: str) -> str:
    return (
        f"2026-12-02T00:05:23.572377Z [info     ] [DAG TEST] end task task_id={task} map_index=-1 "
        "[airflow.sdk.definitions.dag] loc=dag.py:1563"
    )


def test_a_deferral_counts_once_its_trigger_fired():
    log = [
        start("approve"),
        end("approve"),
        start("wait_until_completed"),
        deferred("wait_until_completed"),
        TRIGGER_RUNS,
        TRIGGER_FIRED,
        deferred("wait_until_completed"),  # deferred again after resuming
        TRIGGER_RUNS,
        TRIGGER_FIRED,
        end("wait_until_completed"),
        start("export"),
        deferred("export"),
        TRIGGER_RUNS,  # the run ended before this trigger fired
    ]
    assert read_deferrals(log) == {
        "wait_until_completed": Deferrals(deferred=2, resumed=2),
        "export": Deferrals(deferred=1, resumed=0),
    }


def test_tasks_that_never_deferred_are_not_listed():
    assert read_deferrals([start("a"), TRIGGER_FIRED, end("a")]) == {}


def test_the_summary_names_each_deferred_task_and_one_not_resumed(capsys):
    print_deferrals(
        {"dag_a": {"wait": Deferrals(1, 1)}, "dag_b": {"hang": Deferrals(1, 0)}, "dag_c": {}}, deferrable=True
    )
    out = capsys.readouterr().out
    assert "2 task(s) deferred 2 time(s), their triggers resumed them 1 time(s)" in out
    assert "  dag_a.wait: deferred 1, resumed by its trigger 1\n" in out
    assert "  dag_b.hang: deferred 1, resumed by its trigger 0, 1 NOT resumed\n" in out


def test_the_summary_says_when_nothing_deferred(capsys):
    print_deferrals({"dag_a": {}}, deferrable=True)
    assert "Deferred tasks: none (every wait was over at its first check)" in capsys.readouterr().out
