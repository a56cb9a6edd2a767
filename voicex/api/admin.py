"""Platform administration: list organizations, activate or suspend them, change their plan; drain a server."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Literal

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r202, r400, r401, r403, r404
from pydantic import BaseModel, ConfigDict, Field

from voicex.api.openapi import ErrorOut, endpoint
from voicex.api.schemas import Limit, OrganizationOut, Page, Skip, page
from voicex.platform.errors import bad_request, not_found
from voicex.platform.ids import path_id
from voicex.platform.services import services
from voicex.store import organizations
from voicex.store.organizations import Status
from voicex.web.http import json_response
from voicex.web.presenters import public_org

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


class OrganizationAdminPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status | None = None
    planSlug: str | None = None


class OrganizationsPage(Page):
    items: list[OrganizationOut]


@routes.get("/api/admin/organizations", allow_head=False)
@endpoint
async def list_organizations(
    request: web.Request,
    status: Status | None = None,
    skip: Skip = 0,
    limit: Limit = 50,
) -> r200[OrganizationsPage] | r401[ErrorOut] | r403[ErrorOut]:
    """Every organization, newest first; platform admins only.

    Tags: admin
    Security: bearerAuth
    Status Codes:
        200: A page of organizations
        403: Not a platform admin
    """
    svc = services(request)
    total, orgs = await organizations.list_page(svc.db, status, skip, limit)
    items = [public_org(org, svc.catalog) for org in orgs]
    return json_response(page(items, total, skip, limit))


@routes.patch("/api/admin/organizations/{id}")
@endpoint
async def patch_organization(
    request: web.Request, id: str, /, body: OrganizationAdminPatch
) -> r200[OrganizationOut] | r400[ErrorOut] | r401[ErrorOut] | r403[ErrorOut] | r404[ErrorOut]:
    """Activate, suspend or re-plan an organization; platform admins only.

    Tags: admin
    Security: bearerAuth
    Status Codes:
        200: The updated organization
        400: Unknown plan or nothing to change
        403: Not a platform admin
        404: No such organization
    """
    svc = services(request)
    org_id = path_id(id, "organization")
    if body.planSlug is not None and body.planSlug not in svc.catalog.plans:
        raise bad_request(f"planSlug: unknown plan {body.planSlug!r}")
    if body.status is None and body.planSlug is None:
        raise bad_request("nothing to update: send status and/or planSlug")
    now = dt.datetime.now(dt.UTC)
    org = await organizations.set_status_and_plan(svc.db, org_id, body.status, body.planSlug, now)
    if org is None:
        raise not_found("organization")
    return json_response(public_org(org, svc.catalog))


class DrainOut(BaseModel):
    status: Literal["draining"]
    activeCalls: int = Field(description="calls still running on this server process")
    timeoutSec: float = Field(description="how long they may run before the agent ends them politely")


@routes.post("/api/admin/drain")
@endpoint
async def begin_drain(request: web.Request) -> r202[DrainOut] | r401[ErrorOut] | r403[ErrorOut]:
    """Drain this server process: it admits no new call from now on (``/api/ready`` answers 503), lets the running
    ones finish, ends those left after ``VOICEX_DRAIN_TIMEOUT_SEC`` politely, and exits. Idempotent; platform
    admins only. With several processes or machines, each is drained on its own (a load balancer reaches one).

    Tags: admin
    Security: bearerAuth
    Status Codes:
        202: Draining (or already draining)
        403: Not a platform admin
    """
    svc = services(request)
    if svc.live.begin_drain():
        log.warning("drain requested over HTTP", extra={"calls": len(svc.live)})
    body = {"status": "draining", "activeCalls": len(svc.live), "timeoutSec": svc.settings.drain_timeout_sec}
    return json_response(body, 202)
