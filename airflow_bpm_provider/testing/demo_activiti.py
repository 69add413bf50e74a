"""Demo data for the Activiti / Flowable / WSO2 EI dialect, used by the example DAG ``example_activiti``.

The demo plays WSO2 EI (``/bpmn``): the user logs in as ``DEMO/activiti.clerk``, the way a WSO2 user
of a secondary user store does, and the order approval model (in ``testing/models/``, so the
emulator can seed it from a wheel too) is deployed for WSO2's super tenant ``-1234``, as a ``.bar``
in a Carbon application would be. WSO2's REST API cannot deploy, so the seed does what the
management console does there; the connection names the tenant, which WSO2 requires when starting
by key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow_bpm_provider.testing.bpmn import deploy_model
from airflow_bpm_provider.testing.demo_quickstart import deploy_quickstart
from airflow_bpm_provider.testing.engine import Engine

CONN_ID = "activiti_demo"
USER = "DEMO/activiti.clerk"
PASSWORD = "activiti-demo-password"
PROCESS_KEY = "activiti-order-approval"
REVIEW_TASK = "Review order"
TENANT = "-1234"  # WSO2's super tenant
MODEL = Path(__file__).resolve().parent / "models" / "example_activiti_order.bpmn20.xml"
BASE_PATH = "/bpmn"  # WSO2 EI's context root; /activiti-rest/service and /flowable-rest/service work too
# The same engine as Flowable and as Activiti 5 serve it: the Quickstart runs on each of them.
FLAVOUR_CONNECTIONS = {
    "flowable_demo": "/flowable-rest/service",
    "activiti_rest_demo": "/activiti-rest/service",
}


def seed_activiti_demo(engine: Engine) -> dict[str, Any]:
    """Add the demo user and deploy the order approval model for the super tenant once; safe to call again."""
    with engine.lock:
        engine.add_user(USER, PASSWORD)
        definition = next(
            (d for d in engine.definitions.values() if d.key == PROCESS_KEY and d.tenant_id == TENANT), None
        )
        if definition is None:
            _, (definition,) = deploy_model(engine, MODEL.name, MODEL.read_bytes(), tenant_id=TENANT)
        deploy_quickstart(engine)
    return {
        "conn_id": CONN_ID,
        "login": USER,
        "password": PASSWORD,
        "process_key": PROCESS_KEY,
        "review_task": REVIEW_TASK,
        "tenant_id": TENANT,
        "definition_id": f"{definition.key}:{definition.version}:{definition.id}",
    }


def activiti_demo_connections(url: str, summary: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """``activiti_demo`` (WSO2 EI), ``flowable_demo`` and ``activiti_rest_demo`` for an emulator at
    ``url`` (AIRFLOW_CONN_* JSON fields)."""
    paths = {CONN_ID: BASE_PATH, **FLAVOUR_CONNECTIONS}
    return {
        conn_id: {
            "conn_type": "activiti",
            "host": url + path,
            "login": USER,
            "password": PASSWORD,
            "extra": {"tenant_id": TENANT, "retry_delay": 0.2},
        }
        for conn_id, path in paths.items()
    }
