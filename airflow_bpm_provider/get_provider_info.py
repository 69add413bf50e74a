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
    "verify": {
        "label": "TLS verification",
        "description": "true, false, or the path of a CA bundle",
        "schema": {"type": ["string", "null"], "default": "true"},
    },
    "max_retries": {
        "label": "Attempts per request",
        "schema": {"type": ["integer", "null"], "default": 5},
    },
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
        "ui-field-behaviour": {**_HOST_BEHAVIOUR, "placeholders": placeholders},
    }


CONNECTION_TYPES = [
    _connection_type(
        "questetra",
        "airflow_bpm_provider.hooks.questetra.QuestetraHook",
        "Questetra BPM Suite / DataSpider BPM",
        {"host": "https://example.questetra.net or https://host:port/userweb", "login": "user e-mail"},
    ),
]

HOOKS = ["airflow_bpm_provider.hooks.base", "airflow_bpm_provider.hooks.questetra"]


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
        "triggers": [],
        "connection-types": CONNECTION_TYPES,
        "extra-links": ["airflow_bpm_provider.links.BpmProcessLink"],
    }
