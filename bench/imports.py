"""What importing every operator, sensor and trigger module costs beyond ``airflow.sdk`` (target <= 20 ms).

A DAG file imports operators and sensors on every parse; a triggerer imports the trigger modules.
Each round is a fresh interpreter that first imports ``airflow.sdk`` (and the base classes the
provider builds on, which any DAG file pays for anyway) and times that (the anchor), then times
importing every module of the provider's ``operators``, ``sensors`` and ``triggers`` packages.
Rounds alternate which package comes first, so no order is favoured. Prints medians with min-max
and exits 1 when the provider's median passes the target.

Both sides import from cached bytecode, as an installed wheel does (pip compiles it at install time,
and an editable checkout writes it on its first import). Airflow's wheel ships compiled ``.pyc``
files, so a shell that sets ``PYTHONDONTWRITEBYTECODE`` (this machine's does) would otherwise time
compiling the provider's source against loading Airflow's bytecode. The rounds use a private
bytecode cache (``PYTHONPYCACHEPREFIX``, a temporary folder) filled by one untimed warm-up round,
so nothing is written into the checkout or the virtualenv.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _summary import record

ROUNDS = 11
TARGET_MS = 20.0
PACKAGES = ("operators", "sensors", "triggers")

PROBE = """
import importlib, json, pkgutil, sys, time
t0 = time.perf_counter()
import airflow.sdk
import airflow.providers.common.compat.sdk as s
s.BaseOperator, s.BaseSensorOperator
import airflow.triggers.base
t1 = time.perf_counter()
import airflow_bpm_provider
names = []
for package in sys.argv[1].split(","):
    path = [f"{airflow_bpm_provider.__path__[0]}/{package}"]
    names += [f"airflow_bpm_provider.{package}.{m.name}" for m in pkgutil.iter_modules(path)]
t2 = time.perf_counter()
for name in names:
    importlib.import_module(name)
t3 = time.perf_counter()
print(json.dumps({"sdk_ms": (t1 - t0) * 1000, "provider_ms": (t3 - t2) * 1000, "modules": names}))
"""


def one_round(order: tuple[str, ...], env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(order)], capture_output=True, text=True, check=True, env=env
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} ms ({min(values):.1f}-{max(values):.1f})"


def bytecode_env(cache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    return env


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-imports-pyc-") as cache:
        return measure(bytecode_env(cache))


def measure(env: dict[str, str]) -> int:
    sdk, provider = [], []
    modules: list[str] = []
    one_round(PACKAGES, env)  # warm-up: writes the bytecode of both sides into the private cache
    for number in range(ROUNDS):
        order = PACKAGES if number % 2 == 0 else tuple(reversed(PACKAGES))
        result = one_round(order, env)
        sdk.append(result["sdk_ms"])
        provider.append(result["provider_ms"])
        modules = sorted(result["modules"])
    print(
        f"\nImport time, {ROUNDS} fresh interpreters each, median (min-max); "
        f"Python {sys.version.split()[0]}, bytecode cached on both sides\n"
    )
    print(f"  anchor: airflow.sdk + base classes      {spread(sdk)}")
    print(f"  provider: {len(modules)} modules beyond that    {spread(provider)}")
    share = statistics.median(provider) / statistics.median(sdk)
    print(f"  provider / anchor                       {share:.3f}x")
    print(f"\n  modules: {', '.join(m.removeprefix('airflow_bpm_provider.') for m in modules)}\n")
    met = statistics.median(provider) <= TARGET_MS
    record(
        "imports",
        f"P4: {len(modules)} operator/sensor/trigger modules <= {TARGET_MS:.0f} ms beyond airflow.sdk",
        f"{spread(provider).strip()} (anchor {spread(sdk).strip()})",
        met,
    )
    if not met:
        print(f"TARGET MISSED: {statistics.median(provider):.1f} ms > {TARGET_MS:.0f} ms beyond airflow.sdk")
        return 1
    print(f"target met: <= {TARGET_MS:.0f} ms beyond airflow.sdk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
