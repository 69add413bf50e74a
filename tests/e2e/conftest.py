"""Fixtures of the e2e tier: one distributed cluster per session, figures at the end.

Run with `make e2e` (which installs Redis, PostgreSQL, Azurite and the e2e extras first). This
folder is not part of `make test`: pyproject's addopts ignore it, the Makefile target overrides that.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from e2e_cluster import FIGURES, Cluster, start_cluster

_FAILED: list[bool] = []


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    # Logs of a failed session stay behind for a look; a green session removes everything.
    with start_cluster(keep_logs=lambda: bool(_FAILED)) as started:
        yield started


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        _FAILED.append(True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("e2e figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
