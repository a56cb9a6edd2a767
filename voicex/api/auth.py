"""Sign-up, sign-in and the current user (``/api/auth/*``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r201, r400, r401, r409, r429
from pydantic import BaseModel, Field, field_validator

from voicex.api.openapi import ErrorOut, endpoint
from voicex.api.schemas import OrganizationOut, Out, UserOut
from voicex.platform.errors import conflict, unauthorized
from voicex.platform.fields import NonBlank
from voicex.platform.passwords import MIN_PASSWORD_LENGTH, hash_password, normalize_email, verify_password
from voicex.platform.services import services
from voicex.store import organizations, users
from voicex.store.organizations import Organization
from voicex.store.users import User
from voicex.web.auth import auth, issue_jwt
from voicex.web.http import json_response
from voicex.web.presenters import public_org, public_user
from voicex.web.ratelimit import hit, signin_limit, too_many

routes = web.RouteTableDef()

# Verifying against this keeps sign-in for an unknown email as slow as for a wrong password.
_DUMMY_HASH = hash_password("voicex-timing-equalizer")

Email = Annotated[str, Field(min_length=3, max_length=254)]
Name = NonBlank[Annotated[str, Field(min_length=1, max_length=120)]]


class SignupIn(BaseModel):
    name: Name
    email: Email
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=1024)
    orgName: Name

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normalize_email(value)


class SigninIn(BaseModel):
    email: Email
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(Out):
    user: UserOut
    organization: OrganizationOut | None
    token: str


class MeOut(Out):
    user: UserOut | None = Field(description="null when the caller used an API key")
    organization: OrganizationOut | None


@routes.post("/api/auth/signup")
@endpoint
async def signup(request: web.Request, body: SignupIn) -> r201[SessionOut] | r400[ErrorOut] | r409[ErrorOut]:
    """Create an organization (pending until a platform admin activates it) and its first user, an admin.

    Tags: auth
    Status Codes:
        201: The new user, organization and a session token
        400: A field is invalid
        409: The email is already registered
    """
    svc = services(request)
    db = svc.db
    now = dt.datetime.now(dt.UTC)
    if await users.email_taken(db, body.email):
        raise conflict("email already registered")
    org: Organization = {
        "name": body.orgName,
        "status": "pending",
        "planSlug": svc.catalog.default_plan.slug,
        "twilio": None,
        "createdAt": now,
        "updatedAt": now,
    }
    admin: User = {
        "email": body.email,
        "name": body.name,
        "role": "admin",
        "platformAdmin": False,
        "passwordHash": hash_password(body.password),
        "createdAt": now,
    }
    created = await organizations.create_with_admin(db, org, admin)
    if created is None:  # lost a race with another sign-up for the same email
        raise conflict("email already registered")
    org, user = created
    body_out = {
        "user": public_user(user),
        "organization": public_org(org, svc.catalog),
        "token": issue_jwt(svc.jwt_secret, user),
    }
    return json_response(body_out, status=201)


@routes.post("/api/auth/signin")
@endpoint
async def signin(request: web.Request, body: SigninIn) -> r200[SessionOut] | r401[ErrorOut] | r429[ErrorOut]:
    """Exchange email and password for a session token. Unknown email and wrong password look the same.

    Tags: auth
    Status Codes:
        200: The user, their organization (with its status) and a session token
        401: Wrong email or password
        429: Too many attempts for this email from this address
    """
    svc = services(request)
    email = body.email.strip().lower()
    limit = signin_limit(svc.settings.signin_attempts_per_15min)
    wait = await hit(svc.db, limit, f"{email}|{request.remote}")
    if wait is not None:
        raise too_many(limit, wait, "too many sign-in attempts")
    user = await users.find_by_email(svc.db, email)
    if user is None:
        verify_password(_DUMMY_HASH, body.password)
        raise unauthorized("invalid email or password")
    if not verify_password(user["passwordHash"], body.password):
        raise unauthorized("invalid email or password")
    org_id = user.get("orgId")
    org = await organizations.find_by_id(svc.db, org_id) if org_id else None
    if org is None and not user.get("platformAdmin"):
        raise unauthorized("invalid email or password")
    await users.touch_last_login(svc.db, user["_id"], dt.datetime.now(dt.UTC))
    return json_response(
        {
            "user": public_user(user),
            "organization": public_org(org, svc.catalog) if org else None,
            "token": issue_jwt(svc.jwt_secret, user),
        }
    )


@routes.get("/api/auth/me", allow_head=False)
@endpoint
async def me(request: web.Request) -> r200[MeOut] | r401[ErrorOut]:
    """The signed-in user and their organization; works while the organization is pending or suspended.

    Tags: auth
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The user and organization
        401: Not signed in
    """
    context = auth(request)
    org = public_org(context.org, services(request).catalog) if context.org else None
    user = public_user(context.user) if context.user else None
    return json_response({"user": user, "organization": org})
