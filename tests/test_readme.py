"""The README's code must work as printed: users copy it."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_quickstart_builds_the_dag_it_describes():
    namespace: dict = {}
    exec(compile(python_blocks()[0], "README quickstart", "exec"), namespace)
    dag = namespace["start"].dag
    assert dag.dag_id == "approval"
    assert set(dag.task_ids) == {"start", "wait_for_task", "approve", "wait_for_end", "export"}
    assert dag.get_task("export").upstream_task_ids == {"wait_for_end"}
    assert dag.get_task("wait_for_end").deferrable is True


def test_the_two_commands_are_the_makefile_targets_ci_runs():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert [line for line in ci.splitlines() if line.startswith("make ")] == ["make test", "make e2e"]
