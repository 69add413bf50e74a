"""What a benchmark hands ``bench/run.py`` for its closing table: one row per target.

A benchmark run on its own prints its table and exits as before; under ``run.py`` (which sets
``BENCH_SUMMARY`` to a file) each :func:`record` also appends one JSON line there.
"""

from __future__ import annotations

import json
import os

ENV = "BENCH_SUMMARY"


def record(benchmark: str, target: str, figure: str, met: bool) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    row = {"benchmark": benchmark, "target": target, "figure": figure, "met": bool(met)}
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
