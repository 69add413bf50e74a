"""The FastAPI application: shared middleware (latency, injected faults, request log) + dialects."""

from __future__ import annotations

import asyncio
from typing import Any

from airflow_bpm_provider.testing.engine import Engine
from airflow_bpm_provider.testing.faults import FaultPlan

# (module, mount points). Each dialect module exposes ``router(engine, faults) -> APIRouter``.
DIALECTS: list[tuple[str, tuple[str, ...]]] = [
    ("airflow_bpm_provider.testing.dialects.yuuvis", ("",)),
    ("airflow_bpm_provider.testing.dialects.bonita", ("/bonita",)),
    ("airflow_bpm_provider.testing.dialects.questetra", ("", "/userweb")),
    (
        "airflow_bpm_provider.testing.dialects.activiti",
        ("/bpmn", "/activiti-rest/service", "/flowable-rest/service"),
    ),
]


def create_app(engine: Engine, faults: FaultPlan) -> Any:
    from importlib import import_module

    from fastapi import FastAPI, Request
    from fastapi.responses import PlainTextResponse

    app = FastAPI(title="airflow-bpm-provider emulator", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def knobs(request: Request, call_next: Any) -> Any:
        engine.requests.append((request.method, request.url.path))
        if faults.latency:
            await asyncio.sleep(faults.latency)
        fault = faults.take(request.method, request.url.path)
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return PlainTextResponse(fault.body, status_code=fault.status, headers=headers)
        return await call_next(request)

    for module_name, mounts in DIALECTS:
        module = import_module(module_name)
        for prefix in mounts:
            app.include_router(module.router(engine, faults), prefix=prefix)

    @app.get("/_emulator/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "instances": len(engine.instances)}

    return app
