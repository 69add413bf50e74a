"""Which demo data each emulated system gets, which connections reach it, which example DAGs use it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_bpm_provider.testing.engine import Engine

Connections = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class DemoSystem:
    name: str
    seed: Callable[..., Mapping[str, Any]]
    connections: Callable[[str, Mapping[str, Any]], Connections]
    dags: tuple[str, ...]


def _questetra_seed(engine: Engine, *, large_file_mb: int = 24) -> Mapping[str, Any]:
    from airflow_bpm_provider.testing.demo import seed_demo

    return seed_demo(engine, large_file_mb=large_file_mb)


def _questetra_connections(url: str, summary: Mapping[str, Any]) -> Connections:
    fields = {"conn_type": "questetra", "login": summary["user"], "password": summary["password"]}
    return {
        "questetra_demo": {**fields, "host": url},
        # DataSpider BPM serves the same Workflow API under its /userweb context root.
        "dataspider_demo": {**fields, "host": f"{url}/userweb"},
    }


def _yuuvis_seed(engine: Engine) -> Mapping[str, Any]:
    from airflow_bpm_provider.testing.demo_yuuvis import seed_yuuvis_demo

    return seed_yuuvis_demo(engine)


def _yuuvis_connections(url: str, summary: Mapping[str, Any]) -> Connections:
    from airflow_bpm_provider.testing.demo_yuuvis import CONN_ID, yuuvis_demo_connection

    return {CONN_ID: yuuvis_demo_connection(url)}


def _bonita_seed(engine: Engine) -> Mapping[str, Any]:
    from airflow_bpm_provider.testing.demo_bonita import seed_bonita_demo

    return seed_bonita_demo(engine)


def _bonita_connections(url: str, summary: Mapping[str, Any]) -> Connections:
    from airflow_bpm_provider.testing.demo_bonita import CONN_ID, bonita_demo_connection

    return {CONN_ID: bonita_demo_connection(url)}


def _activiti_seed(engine: Engine) -> Mapping[str, Any]:
    from airflow_bpm_provider.testing.demo_activiti import seed_activiti_demo

    return seed_activiti_demo(engine)


def _activiti_connections(url: str, summary: Mapping[str, Any]) -> Connections:
    from airflow_bpm_provider.testing.demo_activiti import activiti_demo_connections

    return activiti_demo_connections(url, dict(summary))


SYSTEMS: list[DemoSystem] = [
    DemoSystem(
        "Questetra / DataSpider BPM",
        _questetra_seed,
        _questetra_connections,
        ("bpm_questetra_file_export", "bpm_questetra_approval"),
    ),
    DemoSystem(
        "Activiti / Flowable / WSO2 EI", _activiti_seed, _activiti_connections, ("bpm_activiti_order",)
    ),
    DemoSystem("yuuvis Momentum", _yuuvis_seed, _yuuvis_connections, ("bpm_yuuvis_approval",)),
    DemoSystem("Bonita", _bonita_seed, _bonita_connections, ("bpm_bonita_expense",)),
]


def seed_all(engine: Engine, *, large_file_mb: int = 24) -> dict[str, Mapping[str, Any]]:
    summaries = {}
    for system in SYSTEMS:
        if system.name.startswith("Questetra"):
            summaries[system.name] = system.seed(engine, large_file_mb=large_file_mb)
        else:
            summaries[system.name] = system.seed(engine)
    return summaries


def all_connections(url: str, summaries: Mapping[str, Mapping[str, Any]]) -> Connections:
    connections: Connections = {}
    for system in SYSTEMS:
        connections.update(system.connections(url, summaries[system.name]))
    return connections


def all_dags() -> list[str]:
    return [dag for system in SYSTEMS for dag in system.dags]
