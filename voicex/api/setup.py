"""Initial setup state: whether a platform admin exists (``voicex admin create`` makes one)."""

from __future__ import annotations

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200
from pydantic import BaseModel

from voicex.api.openapi import endpoint
from voicex.platform.services import services
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
    admin = await services(request).db.users.find_one({"platformAdmin": True}, projection={"_id": 1})
    return json_response({"setupComplete": admin is not None, "platformAdminExists": admin is not None})
