"""Liveness, readiness and Prometheus metrics (behind a bearer token when VOICEX_METRICS_TOKEN is set)."""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Literal

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r503
from pydantic import BaseModel, Field

from voicex.api.openapi import endpoint
from voicex.platform.errors import ApiError
from voicex.platform.metrics import CONTENT_TYPE
from voicex.platform.metrics_share import gather
from voicex.platform.services import services
from voicex.web.http import json_response

routes = web.RouteTableDef()


class HealthOut(BaseModel):
    status: Literal["ok"]
    timestamp: int = Field(description="server time, epoch milliseconds")


class ReadyOut(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str] = Field(description='each dependency\'s check: "ok" or what failed')


class NotReadyOut(BaseModel):
    status: Literal["not ready"]
    error: str = Field(description="names the failing checks")
    checks: dict[str, str]


@routes.get("/api/health", allow_head=False)
@endpoint
async def health(request: web.Request) -> r200[HealthOut]:
    """The process is up and its event loop answers (a liveness probe).

    Tags: health
    Status Codes:
        200: The process is up
    """
    return json_response({"status": "ok", "timestamp": int(time.time() * 1000)})


@routes.get("/api/ready", allow_head=False)
@endpoint
async def ready(request: web.Request) -> r200[ReadyOut] | r503[NotReadyOut]:
    """Ready to serve calls: every dependency answers and the server is not draining (a readiness probe).
    503 names the failing check: ``calls: draining`` while the server shuts down (voicex/server/drain.py).

    Tags: health
    Status Codes:
        200: Every check passed
        503: A dependency does not answer, or the server is draining
    """
    svc = services(request)
    checks = {"database": await svc.db.check(timeout=2.0), "calls": "draining" if svc.live.draining else "ok"}
    if all(value == "ok" for value in checks.values()):
        return json_response({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, value in checks.items() if value != "ok")
    return json_response({"status": "not ready", "error": f"not ready: {failing}", "checks": checks}, 503)


def bearer_matches(authorization: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time (the scheme is case-insensitive)."""
    scheme, _, presented = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


@routes.get("/metrics", allow_head=False)
async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition (documented in voicex/api/openapi_paths.py); with several workers, all of theirs."""
    svc = services(request)
    token = svc.settings.metrics_token
    if token is not None and not bearer_matches(request.headers.get("Authorization"), token):
        error = ApiError(401, "metrics require 'Authorization: Bearer <VOICEX_METRICS_TOKEN>'")
        error.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        raise error
    own = svc.metrics.render()
    folder, worker = svc.settings.metrics_dir, svc.settings.worker_id
    body = own if folder is None or worker is None else await asyncio.to_thread(gather, folder, worker, own)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response
