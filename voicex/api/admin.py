"""Platform administration: list organizations, activate or suspend them, change their plan."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r400, r401, r403, r404
from pydantic import BaseModel, ConfigDict, Field

from voicex.api.openapi import ErrorOut, endpoint
from voicex.api.schemas import MAX_SKIP, OrganizationOut, Page
from voicex.platform.errors import bad_request, not_found
from voicex.platform.ids import path_id
from voicex.platform.services import services
from voicex.web.http import json_response
from voicex.web.presenters import public_org

routes = web.RouteTableDef()


class OrganizationAdminPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["active", "suspended", "pending"] | None = None
    planSlug: str | None = None


class OrganizationsPage(Page):
    items: list[OrganizationOut]


@routes.get("/api/admin/organizations", allow_head=False)
@endpoint
async def list_organizations(
    request: web.Request,
    status: Literal["pending", "active", "suspended"] | None = None,
    skip: Annotated[int, Field(ge=0, le=MAX_SKIP)] = 0,
    limit: Annotated[int, Field(ge=1, le=100)] = 50,
) -> r200[OrganizationsPage] | r401[ErrorOut] | r403[ErrorOut]:
    """Every organization, newest first; platform admins only.

    Tags: admin
    Security: bearerAuth
    Status Codes:
        200: A page of organizations
        403: Not a platform admin
    """
    svc = services(request)
    query: dict[str, Any] = {} if status is None else {"status": status}
    total = await svc.db.organizations.count_documents(query)
    cursor = svc.db.organizations.find(query).sort("createdAt", -1).skip(skip).limit(limit)
    items = [public_org(org, svc.catalog) async for org in cursor]
    return json_response({"items": items, "total": total, "skip": skip, "limit": limit})


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
    update: dict[str, Any] = {}
    if body.status is not None:
        update["status"] = body.status
    if body.planSlug is not None:
        if body.planSlug not in svc.catalog.plans:
            raise bad_request(f"planSlug: unknown plan {body.planSlug!r}")
        update["planSlug"] = body.planSlug
    if not update:
        raise bad_request("nothing to update: send status and/or planSlug")
    update["updatedAt"] = dt.datetime.now(dt.UTC)
    result = await svc.db.organizations.update_one({"_id": org_id}, {"$set": update})
    if result.matched_count == 0:
        raise not_found("organization")
    org = await svc.db.organizations.find_one({"_id": org_id})
    assert org is not None
    return json_response(public_org(org, svc.catalog))
