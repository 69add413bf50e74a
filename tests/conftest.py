"""Shared fixtures. Its presence also puts tests/ on sys.path, so the test doubles there import."""

from __future__ import annotations

import logging
from collections.abc import Callable

import airflow_runtime
import memory_bpm
import pytest


@pytest.fixture
def bpm(monkeypatch):
    """An in-memory BPM system behind connection ``memory_bpm.CONN_ID``, found via get_bpm_hook."""
    return memory_bpm.install(monkeypatch)


@pytest.fixture
def supervisor(monkeypatch):
    """Airflow's task-runner supervisor answered in memory (XComs, reschedule dates)."""
    return airflow_runtime.install(monkeypatch)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Callable[[], str]:
    """Everything logged so far: std logging records and Airflow's structured log on stdout."""
    caplog.set_level(logging.DEBUG)
    return lambda: caplog.text + capsys.readouterr().out
