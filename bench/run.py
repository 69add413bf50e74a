"""Run every benchmark in this folder (``make bench``), each in a fresh interpreter, one after another.

A benchmark is any ``bench/*.py`` other than this file whose name does not start with ``_``;
it runs as a script at its default settings and prints its own table, which passes through here
as it comes. Each benchmark exits 1 when it misses a target. The closing table has one row per
target: what the benchmark recorded through ``bench/_summary.py``, else its ``target ...: met``
/ ``MISSED`` lines, else its exit code alone. Exits 1 when any target was missed or any benchmark
failed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _summary import ENV  # noqa: E402

# "  target export to local >= 0.9x curl and <= 16 MiB: met", "target >= 8x the seed loop: MISSED"
TARGET_LINE = re.compile(r"^\s*target\b(?P<target>.*?):\s*(?P<verdict>met|MISSED)\b", re.IGNORECASE)


def benchmarks(names: list[str]) -> list[Path]:
    """Every benchmark, or those named (``python bench/run.py imports paging``)."""
    found = sorted(p for p in HERE.glob("*.py") if p.name != "run.py" and not p.name.startswith("_"))
    unknown = set(names) - {p.stem for p in found}
    if unknown:
        there = ", ".join(p.stem for p in found)
        raise SystemExit(f"no benchmark named {', '.join(sorted(unknown))}; there are: {there}")
    return [p for p in found if not names or p.stem in names]


def run_one(script: Path, summary: Path) -> tuple[int, list[str]]:
    """Run ``script``, echoing its output; its exit code and its output lines."""
    env = {**os.environ, ENV: str(summary), "PYTHONUNBUFFERED": "1"}
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, str(script)], cwd=HERE.parent, env=env, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line.rstrip("\n"))
    return proc.returncode, lines


def rows_of(name: str, code: int, summary: Path, lines: list[str]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    if summary.exists():
        rows = [json.loads(line) for line in summary.read_text(encoding="utf-8").splitlines() if line]
    if not rows:
        for line in lines:
            match = TARGET_LINE.match(line)
            if match:
                target = match["target"].strip() or "(its target)"
                met = match["verdict"].lower() == "met"
                rows.append({"benchmark": name, "target": target, "figure": "(its table above)", "met": met})
    if not rows:
        rows.append({"benchmark": name, "target": "(its table above)", "figure": "-", "met": code == 0})
    if code != 0 and all(row["met"] for row in rows):
        # Every target it reported was met, yet it failed: it crashed or missed one it did not report.
        rows.append({"benchmark": name, "target": "runs to the end", "figure": f"exit {code}", "met": False})
    return rows


def table(rows: list[dict[str, object]], seconds: dict[str, float]) -> str:
    head = ("benchmark", "target", "figure", "verdict")
    body = [
        (str(r["benchmark"]), str(r["target"]), str(r["figure"]), "met" if r["met"] else "MISSED")
        for r in rows
    ]
    widths = [max(len(cell) for cell in column) for column in zip(head, *body, strict=False)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in body]
    total = sum(seconds.values())
    times = ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
    out.append(f"\n{len(seconds)} benchmarks in {total / 60:.1f} min ({times})")
    return "\n".join(out)


def main() -> int:
    rows: list[dict[str, object]] = []
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-summary-") as folder:
        for script in benchmarks(sys.argv[1:]):
            print(f"==> {script.stem}", flush=True)
            started = time.monotonic()
            summary = Path(folder) / f"{script.stem}.jsonl"
            code, lines = run_one(script, summary)
            seconds[script.stem] = time.monotonic() - started
            print(f"<== {script.stem}: exit {code} after {seconds[script.stem]:.0f} s\n", flush=True)
            rows += rows_of(script.stem, code, summary, lines)
    print("Summary (every target of every benchmark, at default settings):\n")
    print(table(rows, seconds))
    missed = [row for row in rows if not row["met"]]
    print(f"\n{'every target met' if not missed else f'{len(missed)} target(s) MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
