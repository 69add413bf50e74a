"""An emulator of the BPM APIs this provider speaks, for tests, the demo and offline DAG tests.

from airflow_bpm_provider.testing import Emulator

with Emulator.start() as emu:
    emu.seed_demo()
    print(emu.url)          # http://127.0.0.1:PORT; Questetra also under /userweb
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_bpm_provider.testing.server import Emulator

__all__ = ["Emulator"]


def __getattr__(name: str) -> Any:
    # FastAPI and uvicorn load only when the emulator is really used.
    if name == "Emulator":
        from airflow_bpm_provider.testing.server import Emulator

        return Emulator
    raise AttributeError(name)
