"""Which demo data each emulated system gets, which connections reach it, which example DAGs use it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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

    @property
    def names(self) -> tuple[str, ...]:
        """What ``serve --system`` accepts for it: the first word of each product in its name."""
        return tuple(product.split()[0].lower() for product in self.name.split("/"))


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


def find_systems(names: Iterable[str]) -> list[DemoSystem]:
    """The systems called ``names`` (any of each one's ``names``), in SYSTEMS order.

    Raises KeyError naming the names no system has.
    """
    wanted = {name.strip().lower() for name in names}
    unknown = wanted - {name for system in SYSTEMS for name in system.names}
    if unknown:
        raise KeyError(", ".join(sorted(unknown)))
    return [system for system in SYSTEMS if wanted & set(system.names)]


def seed_all(
    engine: Engine, *, large_file_mb: int = 24, systems: Iterable[DemoSystem] | None = None
) -> dict[str, Mapping[str, Any]]:
    """Seed every system (or ``systems``); returns each one's demo summary by system name.

    The seeds' own task completions take effect at once, whatever ``engine.advance_after`` is.
    """
    advance_after, engine.advance_after = engine.advance_after, 0.0
    summaries = {}
    for system in SYSTEMS if systems is None else systems:
        if system.name.startswith("Questetra"):
            summaries[system.name] = system.seed(engine, large_file_mb=large_file_mb)
        else:
            summaries[system.name] = system.seed(engine)
    engine.advance_after = advance_after
    return summaries


def all_connections(url: str, summaries: Mapping[str, Mapping[str, Any]]) -> Connections:
    """The connections of every system that ``summaries`` (from seed_all) has seeded."""
    connections: Connections = {}
    for system in SYSTEMS:
        if system.name in summaries:
            connections.update(system.connections(url, summaries[system.name]))
    return connections


def all_dags() -> list[str]:
    return [dag for system in SYSTEMS for dag in system.dags]
