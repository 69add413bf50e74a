"""Which hook serves a connection: the connection type decides, as in common-sql."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from airflow_bpm_provider.exceptions import BpmConfigError

if TYPE_CHECKING:
    from airflow_bpm_provider.hooks.base import BpmHook
    from airflow_bpm_provider.hooks.retry import RetryPolicy

HOOK_CLASSES: dict[str, str] = {
    "bonita": "airflow_bpm_provider.hooks.bonita.BonitaHook",
    "yuuvis_bpm": "airflow_bpm_provider.hooks.yuuvis.YuuvisBpmHook",
    "questetra": "airflow_bpm_provider.hooks.questetra.QuestetraHook",
    "activiti": "airflow_bpm_provider.hooks.activiti.ActivitiHook",
}

# Libraries a hook's async calls import on first use (Questetra builds its task search in XML).
# A trigger imports them in a worker thread first, so the triggerer's event loop never does.
ASYNC_FIRST_IMPORTS: dict[str, tuple[str, ...]] = {"questetra": ("lxml.etree",)}


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


def get_bpm_hook(conn_id: str, *, retry_policy: RetryPolicy | None = None) -> BpmHook:
    """The hook for ``conn_id``, chosen by its connection type; the connection is read once.

    ``retry_policy`` replaces the one the connection's extras describe (e.g. a short one when
    time is limited).
    """
    from airflow.providers.common.compat.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return hook_class(conn.conn_type, conn_id=conn_id)(conn_id, connection=conn, retry_policy=retry_policy)


async def aget_bpm_hook(conn_id: str, *, retry_policy: RetryPolicy | None = None) -> BpmHook:
    """The same for triggers: nothing that blocks or imports runs on the event loop.

    The connection is read the async way. Importing the hook's module, parsing the settings and
    registering its secrets with the log masker happen in a worker thread: Airflow's sync
    ``mask_secret`` reaches the triggerer's supervisor from a thread as it should, but from the
    event loop's own thread only through a greenback portal (and not at all without one).
    """
    import asyncio

    from airflow.providers.common.compat.sdk import BaseHook

    conn = await BaseHook.aget_connection(conn_id)
    return await asyncio.to_thread(_ready_hook, conn, conn_id, retry_policy)


def _ready_hook(conn: Any, conn_id: str, retry_policy: RetryPolicy | None) -> BpmHook:
    """A hook whose settings are parsed and masked and whose first-use imports are done."""
    from airflow_bpm_provider.hooks.http import shared_ssl_context

    conn_type = (conn.conn_type or "").lower()
    hook = hook_class(conn_type, conn_id=conn_id)(conn_id, connection=conn, retry_policy=retry_policy)
    settings = hook.settings  # cached on the hook: the event loop never parses or masks again
    shared_ssl_context(settings.verify)  # imports httpx and loads the CA bundle once per process
    for module in ASYNC_FIRST_IMPORTS.get(conn_type, ()):
        import_module(module)
    return hook
