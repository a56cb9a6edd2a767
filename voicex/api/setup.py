"""Initial setup state: whether a platform admin exists (``voicex admin create`` makes one)."""

from __future__ import annotations

from aiohttp import web

from voicex.context import services
from voicex.http import json_response

routes = web.RouteTableDef()


@routes.get("/api/setup/status", allow_head=False)
async def setup_status(request: web.Request) -> web.Response:
    admin = await services(request).db.users.find_one({"platformAdmin": True}, projection={"_id": 1})
    return json_response({"setupComplete": admin is not None, "platformAdminExists": admin is not None})
