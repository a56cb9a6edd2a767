"""Sign-up, sign-in, sign-out, password change and the current user (``/api/auth/*``).

Password hashes are computed and checked off the event loop (voicex.platform.passwords.off_loop); the per-client
limits of these endpoints are in voicex/web/ratelimit.py, the per email-and-client delays in
voicex/web/signin_guard.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r201, r400, r401, r403, r409, r429, r503
from pydantic import BaseModel, Field, field_validator

from voicex.api.openapi import ErrorOut, endpoint
from voicex.api.schemas import OrganizationOut, Out, UserOut
from voicex.platform.errors import conflict, forbidden, unauthorized
from voicex.platform.fields import NonBlank
from voicex.platform.passwords import MIN_PASSWORD_LENGTH, hash_password, normalize_email, off_loop, verify_password
from voicex.platform.services import services
from voicex.store import organizations, users
from voicex.store.organizations import Organization
from voicex.store.users import User
from voicex.web import signin_guard
from voicex.web.auth import auth, session_token
from voicex.web.http import json_response
from voicex.web.presenters import public_org, public_user

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


class PasswordChangeIn(BaseModel):
    currentPassword: str = Field(min_length=1, max_length=1024)
    newPassword: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=1024)


class TokenOut(Out):
    token: str = Field(description="a new session token; every other session of the user has ended")


class LoggedOutOut(Out):
    loggedOut: bool


class MeOut(Out):
    user: UserOut | None = Field(description="null when the caller used an API key")
    organization: OrganizationOut | None


@routes.post("/api/auth/signup")
@endpoint
async def signup(
    request: web.Request, body: SignupIn
) -> r201[SessionOut] | r400[ErrorOut] | r409[ErrorOut] | r429[ErrorOut] | r503[ErrorOut]:
    """Create an organization (pending until a platform admin activates it) and its first user, an admin.

    Tags: auth
    Status Codes:
        201: The new user, organization and a session token
        400: A field is invalid
        409: The email is already registered
        429: Too many sign-ups from this address
        503: The database does not answer
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
        "passwordHash": await off_loop(hash_password, body.password),
        "createdAt": now,
    }
    created = await organizations.create_with_admin(db, org, admin)
    if created is None:  # lost a race with another sign-up for the same email
        raise conflict("email already registered")
    org, user = created
    body_out = {
        "user": public_user(user),
        "organization": public_org(org, svc.catalog),
        "token": session_token(request, user),
    }
    return json_response(body_out, status=201)


@routes.post("/api/auth/signin")
@endpoint
async def signin(
    request: web.Request, body: SigninIn
) -> r200[SessionOut] | r401[ErrorOut] | r429[ErrorOut] | r503[ErrorOut]:
    """Exchange email and password for a session token. Unknown email and wrong password look the same.

    After repeated failures for one email from one address, that address waits a growing delay for that email;
    signing in from elsewhere is not affected.

    Tags: auth
    Status Codes:
        200: The user, their organization (with its status) and a session token
        401: Wrong email or password
        429: Too many attempts for this email from this address, or from this address
        503: The database does not answer
    """
    svc = services(request)
    email = body.email.strip().lower()
    await signin_guard.check(request, email)
    user = await users.find_by_email(svc.db, email)
    if user is None:
        await off_loop(verify_password, _DUMMY_HASH, body.password)  # as slow as a wrong password
        await signin_guard.failed(request, email)
        raise unauthorized("invalid email or password")
    if not await off_loop(verify_password, user["passwordHash"], body.password):
        await signin_guard.failed(request, email)
        raise unauthorized("invalid email or password")
    await signin_guard.succeeded(request, email)
    org_id = user.get("orgId")
    org = await organizations.find_by_id(svc.db, org_id) if org_id else None
    if org is None and not user.get("platformAdmin"):
        raise unauthorized("invalid email or password")
    await users.touch_last_login(svc.db, user["_id"], dt.datetime.now(dt.UTC))
    return json_response(
        {
            "user": public_user(user),
            "organization": public_org(org, svc.catalog) if org else None,
            "token": session_token(request, user),
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


@routes.post("/api/auth/logout")
@endpoint
async def logout(request: web.Request) -> r200[LoggedOutOut] | r401[ErrorOut] | r403[ErrorOut]:
    """Sign out everywhere: every session token of the user stops working, this one included.

    Tags: auth
    Security: bearerAuth
    Status Codes:
        200: Every session of the user has ended
        401: Not signed in
        403: Called with an API key, which belongs to no user
    """
    user = auth(request).signed_in_user()
    if not await users.revoke_sessions(services(request).db, user["_id"]):
        raise unauthorized("invalid or expired token")
    return json_response({"loggedOut": True})


@routes.post("/api/auth/password")
@endpoint
async def change_password(
    request: web.Request, body: PasswordChangeIn
) -> r200[TokenOut] | r400[ErrorOut] | r401[ErrorOut] | r403[ErrorOut] | r429[ErrorOut] | r503[ErrorOut]:
    """Change the signed-in user's password. Every other session ends; the answer carries a new token for this one.

    A wrong current password counts as a failed sign-in for this email from this address.

    Tags: auth
    Security: bearerAuth
    Status Codes:
        200: The password is changed; use the new token from now on
        400: The new password is too short
        401: Not signed in
        403: The current password is wrong, or called with an API key
        429: Too many wrong current passwords from this address
        503: The database does not answer
    """
    svc = services(request)
    user = auth(request).signed_in_user()
    await signin_guard.check(request, user["email"])
    if not await off_loop(verify_password, user.get("passwordHash", ""), body.currentPassword):
        await signin_guard.failed(request, user["email"])
        raise forbidden("current password is incorrect")
    new_hash = await off_loop(hash_password, body.newPassword)
    changed = await users.change_password(svc.db, user["_id"], new_hash, dt.datetime.now(dt.UTC))
    if changed is None:
        raise unauthorized("invalid or expired token")
    await signin_guard.succeeded(request, user["email"])
    return json_response({"token": session_token(request, changed)})
