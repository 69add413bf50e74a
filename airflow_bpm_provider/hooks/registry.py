"""Which hook serves a connection: the connection type decides, as in common-sql."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from airflow_bpm_provider.exceptions import BpmConfigError

if TYPE_CHECKING:
    from airflow_bpm_provider.hooks.base import BpmHook

HOOK_CLASSES: dict[str, str] = {
    "bonita": "airflow_bpm_provider.hooks.bonita.BonitaHook",
    "yuuvis_bpm": "airflow_bpm_provider.hooks.yuuvis.YuuvisBpmHook",
    "questetra": "airflow_bpm_provider.hooks.questetra.QuestetraHook",
    "activiti": "airflow_bpm_provider.hooks.activiti.ActivitiHook",
}


def hook_class(conn_type: str, *, conn_id: str) -> type[BpmHook]:
    path = HOOK_CLASSES.get((conn_type or "").lower())
    if path is None:
        known = ", ".join(sorted(HOOK_CLASSES))
        raise BpmConfigError(
            f"connection type {conn_type!r} is not a BPM connection type; use one of: {known}",
            conn_id=conn_id,
        )
    module, _, name = path.rpartition(".")
    return getattr(import_module(module), name)


def get_bpm_hook(conn_id: str) -> BpmHook:
    """The hook for ``conn_id``, chosen by its connection type; the connection is read once."""
    from airflow.providers.common.compat.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return hook_class(conn.conn_type, conn_id=conn_id)(conn_id, connection=conn)


async def aget_bpm_hook(conn_id: str) -> BpmHook:
    """The same, reading the connection the async way (for triggers)."""
    from airflow.providers.common.compat.sdk import BaseHook

    conn = await BaseHook.aget_connection(conn_id)
    return hook_class(conn.conn_type, conn_id=conn_id)(conn_id, connection=conn)
