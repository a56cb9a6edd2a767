"""The caller's organization and plan, and the public plans list."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r400, r401, r403
from pydantic import BaseModel, ConfigDict, Field

from voicex.api.openapi import ErrorOut, endpoint
from voicex.api.schemas import OrganizationOut, PlanOut
from voicex.platform.errors import bad_request, hinted
from voicex.platform.fields import NonBlank
from voicex.platform.services import services
from voicex.store import organizations
from voicex.store.organizations import TwilioCredentials
from voicex.web.auth import auth
from voicex.web.http import json_response
from voicex.web.presenters import public_org, public_plan

routes = web.RouteTableDef()


class TwilioCredentialsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accountSid: str = Field(pattern=hinted(r"^AC[0-9a-fA-F]{32}$", "use the Account SID: AC and 32 hex digits"))
    authToken: str = Field(min_length=16, max_length=128)


class OrganizationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: NonBlank[Annotated[str, Field(min_length=1, max_length=120)]] | None = None
    twilio: TwilioCredentialsIn | None = Field(None, description="write-only; read back as authTokenSet")


@routes.get("/api/plans", allow_head=False)
@endpoint
async def list_public_plans(request: web.Request) -> r200[list[PlanOut]]:
    """The plans anyone may sign up for (public, not custom), without their model lists.

    Tags: plans
    Status Codes:
        200: The public plans, cheapest first
    """
    catalog = services(request).catalog
    plans = sorted((p for p in catalog.plans.values() if p.public and not p.custom), key=lambda p: p.tier)
    return json_response([public_plan(plan, catalog, include_models=False) for plan in plans])


@routes.get("/api/dashboard/plan", allow_head=False)
@endpoint
async def get_plan(request: web.Request) -> r200[PlanOut] | r401[ErrorOut] | r403[ErrorOut]:
    """The organization's plan in full, with the models it may use and its features.

    Tags: organization
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The plan
    """
    context = auth(request)
    assert context.plan is not None
    return json_response(public_plan(context.plan, services(request).catalog, include_models=True))


@routes.get("/api/dashboard/organization", allow_head=False)
@endpoint
async def get_organization(request: web.Request) -> r200[OrganizationOut] | r401[ErrorOut] | r403[ErrorOut]:
    """The caller's organization: plan, limits, status and whether Twilio credentials are stored.

    Tags: organization
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The organization
    """
    context = auth(request)
    assert context.org is not None
    return json_response(public_org(context.org, services(request).catalog))


@routes.patch("/api/dashboard/organization")
@endpoint
async def patch_organization(
    request: web.Request, body: OrganizationPatch
) -> r200[OrganizationOut] | r400[ErrorOut] | r401[ErrorOut] | r403[ErrorOut]:
    """Rename the organization and/or store its Twilio credentials (encrypted; never returned).

    Tags: organization
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The updated organization
        400: A field is invalid
    """
    context = auth(request)
    svc = services(request)
    if body.name is None and body.twilio is None:
        raise bad_request("nothing to update: send name and/or twilio")
    twilio: TwilioCredentials | None = None
    if body.twilio is not None:
        box = svc.box
        twilio = {"accountSid": body.twilio.accountSid, "authToken": box.encrypt(body.twilio.authToken)}
    now = dt.datetime.now(dt.UTC)
    org = await organizations.set_name_and_twilio(svc.db, context.org_id, body.name, twilio, now)
    assert org is not None
    return json_response(public_org(org, svc.catalog))
