"""A lost start answer under real Airflow (``airflow dags test``): the task's second try finds the
first try's "start sent" mark in Airflow's own task state store and adopts the process the server
did start, so exactly one exists."""

from __future__ import annotations

from pathlib import Path

from test_process_operator_durable import READ_TIMEOUT, LosingEmulator, _questetra

from airflow_bpm_provider.testing.dag_runner import airflow_env, migrate, run_dag

DAGS = Path(__file__).parent / "dags"


def test_a_lost_start_answer_is_adopted_by_the_next_try_under_airflow(tmp_path):
    emu = LosingEmulator.start()
    try:
        conn, system = _questetra(emu)
        emu.lose.append(system.start)
        conn = {**conn, "extra": {"timeout": READ_TIMEOUT, "retry_delay": 0.05}}
        env = airflow_env(tmp_path / "home", connections={"durable_bpm": conn}, dags_folder=DAGS)
        migrate(env)
        result = run_dag(
            "bpm_durable_probe",
            env,
            log_dir=tmp_path / "logs",
            conf={"process": system.process, "business_key": "K-airflow-1"},
            timeout=600,
        )
    finally:
        emu.stop()

    log = result.log_path.read_text(errors="replace")
    assert result.ok, result.tail(80)
    assert emu.lost == 1
    (instance,) = system.instances()
    assert instance.title == "K-airflow-1"  # the adopting try finished the start
    assert "but got no answer; adopting process instance" in log, result.tail(80)
    assert "task_state_store not available" not in log
    assert "durable-password-7781" not in log
