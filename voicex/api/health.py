"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import time

from aiohttp import web

from voicex.context import services
from voicex.http import json_response
from voicex.metrics import CONTENT_TYPE

routes = web.RouteTableDef()


@routes.get("/api/health", allow_head=False)
async def health(request: web.Request) -> web.Response:
    """The process is up and its event loop answers."""
    return json_response({"status": "ok", "timestamp": int(time.time() * 1000)})


@routes.get("/api/ready", allow_head=False)
async def ready(request: web.Request) -> web.Response:
    """Ready to serve calls: every dependency answers. 503 names the failing check."""
    checks = {"database": await services(request).db.check(timeout=2.0)}
    if all(value == "ok" for value in checks.values()):
        return json_response({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, value in checks.items() if value != "ok")
    return json_response({"status": "not ready", "error": f"not ready: {failing}", "checks": checks}, 503)


@routes.get("/metrics", allow_head=False)
async def metrics(request: web.Request) -> web.Response:
    body = services(request).metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response
