"""Initial setup state: whether a platform admin exists (``voicex admin create`` makes one)."""

from __future__ import annotations

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200
from pydantic import BaseModel

from voicex.api.openapi import endpoint
from voicex.platform.services import services
from voicex.store import users
from voicex.web.http import json_response

routes = web.RouteTableDef()


class SetupStatusOut(BaseModel):
    setupComplete: bool
    platformAdminExists: bool


@routes.get("/api/setup/status", allow_head=False)
@endpoint
async def setup_status(request: web.Request) -> r200[SetupStatusOut]:
    """Whether a platform admin exists yet; create one with ``voicex admin create``.

    Tags: setup
    Status Codes:
        200: Whether a platform admin exists
    """
    exists = await users.platform_admin_exists(services(request).db)
    return json_response({"setupComplete": exists, "platformAdminExists": exists})
