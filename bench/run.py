"""Run every benchmark in this folder (``make bench``), each in a fresh interpreter, one after another.

A benchmark is any ``bench/*.py`` other than this file whose name does not start with ``_``;
it runs as a script and prints its own table. The exit code is the first failure's, if any.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks() -> list[Path]:
    return sorted(p for p in HERE.glob("*.py") if p.name != "run.py" and not p.name.startswith("_"))


def main() -> int:
    failed = 0
    for script in benchmarks():
        print(f"==> {script.stem}", flush=True)
        started = time.monotonic()
        code = subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode
        print(f"<== {script.stem}: exit {code} after {time.monotonic() - started:.0f} s\n", flush=True)
        failed = failed or code
    return failed


if __name__ == "__main__":
    sys.exit(main())
