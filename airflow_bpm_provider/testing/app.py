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


class Knobs:
    """Latency, injected faults, the request log and due process steps, in front of every dialect.

    Taking the steps that ``Engine.advance_after`` held back here, before any dialect reads the
    engine, makes every API see a process move on at the same moment, without a timer thread.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware runs each
    response through an extra task and memory stream, a cost per request that made the emulator,
    not the client, the bottleneck of benchmarks with many small requests.
    """

    def __init__(self, app: Any, *, engine: Engine, faults: FaultPlan) -> None:
        self.app = app
        self.engine = engine
        self.faults = faults

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        self.engine.requests.append((method, path))
        self.engine.advance_due()
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        fault = self.faults.take(method, path)
        if fault is None:
            await self.app(scope, receive, send)
            return
        from fastapi.responses import PlainTextResponse

        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        await PlainTextResponse(fault.body, status_code=fault.status, headers=headers)(scope, receive, send)


def create_app(engine: Engine, faults: FaultPlan) -> Any:
    from importlib import import_module

    from fastapi import FastAPI

    app = FastAPI(title="airflow-bpm-provider emulator", docs_url=None, redoc_url=None, openapi_url=None)

    app.add_middleware(Knobs, engine=engine, faults=faults)

    for module_name, mounts in DIALECTS:
        module = import_module(module_name)
        for prefix in mounts:
            app.include_router(module.router(engine, faults), prefix=prefix)

    @app.get("/_emulator/health")
    def health() -> dict[str, Any]:
        return {
            "ok": True,
            "instances": len(engine.instances),
            "advance_after": engine.advance_after,
            "pending_steps": len(engine.pending),
        }

    return app
