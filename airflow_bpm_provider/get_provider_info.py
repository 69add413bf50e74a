"""Provider metadata read by Airflow's ProvidersManager (no hook is imported to build it)."""

from __future__ import annotations

from typing import Any

from airflow_bpm_provider import __version__

_COMMON_FIELDS: dict[str, Any] = {
    "auth_type": {
        "label": "Auth type",
        "description": "basic (login + password) or bearer (token in the password field)",
        "schema": {"type": ["string", "null"], "enum": ["basic", "bearer", None], "default": "basic"},
    },
    "timeout": {
        "label": "Read timeout (s)",
        "schema": {"type": ["number", "null"], "default": 60},
    },
    "connect_timeout": {
        "label": "Connect timeout (s)",
        "schema": {"type": ["number", "null"], "default": 10},
    },
    "response_timeout": {
        "label": "Response timeout (s)",
        "description": "a whole answer (connect, headers, body); file downloads use the stall timeout",
        "schema": {"type": ["number", "null"], "default": 300},
    },
    "stall_timeout": {
        "label": "Download stall timeout (s)",
        "description": "a file download slower than 1 KiB/s over this window is cut",
        "schema": {"type": ["number", "null"], "default": 60},
    },
    "max_response_bytes": {
        "label": "Max answer size (bytes)",
        "description": "decoded size of an API answer (file downloads are not capped)",
        "schema": {"type": ["integer", "null"], "default": 67108864},
    },
    "verify": {
        "label": "TLS verification",
        "description": "true, false, or the path of a CA bundle",
        "schema": {"type": ["string", "null"], "default": "true"},
    },
    "max_retries": {
        "label": "Attempts per request",
        "schema": {"type": ["integer", "null"], "default": 5},
    },
    "retry_delay": {
        "label": "First retry delay (s)",
        "description": "pause before the first retry of a failed request; doubles each time, with jitter",
        "schema": {"type": ["number", "null"], "default": 1},
    },
    "retry_max_delay": {
        "label": "Longest retry delay (s)",
        "description": "cap of the growing pause between retries",
        "schema": {"type": ["number", "null"], "default": 30},
    },
    "scheme": {
        "label": "Scheme",
        "description": "http or https, for a host written without one (default https)",
        "schema": {"type": ["string", "null"], "enum": ["https", "http", None], "default": "https"},
    },
}

# Airflow 3.3.2's "Test" button refuses a connection without a port (an upstream bug), even
# where the URL's default (443/80) is meant.
_PORT_HELP = "e.g. 443 (needed by Airflow 3.3.2's Test button; 443/80 are the defaults)"

_UI_URL_FIELD = {
    "label": "UI page URL",
    "description": "the process page of the system's web UI, {id} for the instance id; "
    "the BPM process link of a started process opens it",
    "schema": {"type": ["string", "null"]},
}

_HOST_BEHAVIOUR = {
    "hidden-fields": ["schema"],
    "relabeling": {"host": "Base URL", "password": "Password / API password / token"},
}


def _connection_type(
    conn_type: str, hook: str, name: str, placeholders: dict[str, str], **extra: Any
) -> dict:
    return {
        "connection-type": conn_type,
        "hook-class-name": hook,
        "hook-name": name,
        "conn-fields": {**_COMMON_FIELDS, **extra},
        "ui-field-behaviour": {**_HOST_BEHAVIOUR, "placeholders": {"port": _PORT_HELP, **placeholders}},
    }


CONNECTION_TYPES = [
    _connection_type(
        "activiti",
        "airflow_bpm_provider.hooks.activiti.ActivitiHook",
        "Activiti / Flowable / WSO2 EI BPMN",
        {
            "host": "https://host:9445/bpmn or http://host:8080/flowable-rest/service",
            "login": "user (WSO2 secondary user store: DOMAIN/user)",
            "tenant_id": "-1234 on WSO2 EI (its super tenant)",
            # An example only (unverified route of the Flowable UI task app); the user knows theirs.
            "ui_url": "http://host:8080/flowable-ui/workflow/#/processes/{id}",
        },
        tenant_id={
            "label": "Tenant id",
            "description": "required on WSO2 EI: -1234 for its super tenant. Sent when starting by key "
            "or message, querying by key and deploying (elsewhere for multi-tenant engines only)",
            "schema": {"type": ["string", "null"]},
        },
        ui_url=_UI_URL_FIELD,
    ),
    _connection_type(
        "bonita",
        "airflow_bpm_provider.hooks.bonita.BonitaHook",
        "Bonita",
        {"host": "https://bonita.example.com:8080/bonita", "login": "Bonita user name"},
        tenant={
            "label": "Tenant",
            "description": "tenant sent at login (multi-tenant Bonita only)",
            "schema": {"type": ["string", "null"]},
        },
        business_key_variable={
            "label": "Business key variable",
            "description": "contract input / case variable that holds the business key (Bonita has none)",
            "schema": {"type": ["string", "null"]},
        },
        business_key_search_index={
            "label": "Business key search index",
            "description": "Bonita 2025.1+: the search index (1-5) that holds the business key variable",
            "schema": {"type": ["integer", "null"], "minimum": 1, "maximum": 5},
        },
        timezone={
            "label": "Server time zone",
            "description": "IANA zone of the Bonita server's clock, for its zone-less dates (default UTC)",
            "schema": {"type": ["string", "null"]},
        },
        document_versions={
            "label": "Document versions",
            "description": "files of a case: latest (default) or all versions of each document",
            "schema": {"type": ["string", "null"], "enum": ["latest", "all", None], "default": "latest"},
        },
    ),
    _connection_type(
        "yuuvis_bpm",
        "airflow_bpm_provider.hooks.yuuvis.YuuvisBpmHook",
        "yuuvis Momentum BPM engine",
        {"host": "https://yuuvis-gateway.example.com", "login": "user name"},
        tenant={
            "label": "Tenant",
            "description": "yuuvis tenant name, sent as X-ID-TENANT-NAME on every call (required)",
            "schema": {"type": ["string", "null"]},
        },
        document_variables={
            "label": "Document variables",
            "description": "process variables holding DMS object ids, comma-separated (default documentId)",
            "schema": {"type": ["string", "null"], "default": "documentId"},
        },
        user_id={
            "label": "User id",
            "description": "yuuvis user id for claims and startedBy (default: the id of GET idm/me)",
            "schema": {"type": ["string", "null"]},
        },
        ui_url=_UI_URL_FIELD,
    ),
    _connection_type(
        "questetra",
        "airflow_bpm_provider.hooks.questetra.QuestetraHook",
        "Questetra BPM Suite / DataSpider BPM",
        {"host": "https://example.questetra.net or https://host:port/userweb", "login": "user e-mail"},
        page_size={
            "label": "Page size",
            "description": "rows per search request (1-1000; default 1000, the API's maximum)",
            "schema": {"type": ["integer", "null"], "default": 1000},
        },
        timezone={
            "label": "Time zone",
            "description": "IANA zone the server's dates are written in, e.g. Asia/Tokyo",
            "schema": {"type": ["string", "null"]},
        },
    ),
]

HOOKS = [
    "airflow_bpm_provider.hooks.base",
    "airflow_bpm_provider.hooks.bonita",
    "airflow_bpm_provider.hooks.yuuvis",
    "airflow_bpm_provider.hooks.questetra",
    "airflow_bpm_provider.hooks.activiti",
]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-bpm-provider",
        "name": "BPM",
        "description": "Drive business processes (Questetra, DataSpider BPM, Bonita, Activiti, Flowable, "
        "WSO2 EI, yuuvis Momentum) from Airflow DAGs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "BPM",
                "external-doc-url": "https://github.com/airflow-bpm-provider/airflow-bpm-provider",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "BPM", "python-modules": HOOKS}],
        "operators": [
            {
                "integration-name": "BPM",
                "python-modules": [
                    "airflow_bpm_provider.operators.process",
                    "airflow_bpm_provider.operators.task",
                    "airflow_bpm_provider.operators.files",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "BPM",
                "python-modules": [
                    "airflow_bpm_provider.sensors.process",
                    "airflow_bpm_provider.sensors.task",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": "BPM",
                "python-modules": [
                    "airflow_bpm_provider.triggers.process",
                    "airflow_bpm_provider.triggers.task",
                    "airflow_bpm_provider.triggers.events",
                ],
            }
        ],
        "connection-types": CONNECTION_TYPES,
        "extra-links": ["airflow_bpm_provider.links.BpmProcessLink"],
    }
