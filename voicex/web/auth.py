"""Who is calling: JWT sessions and API keys, resolved once per request by one middleware.

Dashboard endpoints accept ``Authorization: Bearer <jwt>`` or ``x-api-key: vx_<48 hex>``. The middleware
puts an :class:`AuthContext` (org, plan, user) on the request; handlers never parse credentials.

A session token carries its user's ``tokenVersion``; every request compares it with the stored one (the user is
read anyway), so bumping the version (sign-out, password change or reset) ends every session at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass

import jwt
from aiohttp import web
from bson import ObjectId
from bson.errors import InvalidId

from voicex.catalog.config import Plan
from voicex.platform.errors import forbidden, unauthorized
from voicex.platform.services import services
from voicex.store import api_keys, organizations, users
from voicex.store.organizations import Organization
from voicex.store.users import User
from voicex.web.middleware import Handler

log = logging.getLogger(__name__)

JWT_ALGORITHM = "HS256"
API_KEY_PREFIX = "vx_"
API_KEY_PATTERN = re.compile(r"^vx_[0-9a-f]{48}$")
API_KEY_TOUCH_INTERVAL = dt.timedelta(minutes=1)

# Paths that need a signed-in principal, and which of them also need an active organization.
_AUTHENTICATED_PREFIXES = ("/api/dashboard/", "/api/admin/")
_AUTHENTICATED_PATHS = frozenset({"/api/auth/me", "/api/auth/logout", "/api/auth/password", "/api/dashboard"})


@dataclass
class AuthContext:
    """The caller of a request: always an org member or a platform admin, never both unknown."""

    via: str  # "jwt" | "api_key"
    user: User | None
    org: Organization | None
    plan: Plan | None
    api_key_id: ObjectId | None = None

    @property
    def user_id(self) -> ObjectId | None:
        return self.user["_id"] if self.user else None

    @property
    def org_id(self) -> ObjectId:
        if self.org is None:
            raise forbidden("this endpoint needs an organization account")
        return self.org["_id"]

    @property
    def platform_admin(self) -> bool:
        return bool(self.user and self.user.get("platformAdmin"))

    @property
    def limit_key(self) -> str:
        """What per-caller rate limits count on: the organization (all its keys and users), else the user."""
        return f"org:{self.org['_id']}" if self.org is not None else f"user:{self.user_id}"

    def signed_in_user(self) -> User:
        """The user of a session token; 403 for an API key, which belongs to no user."""
        if self.user is None:
            raise forbidden("this endpoint needs a signed-in user, not an API key")
        return self.user


AUTH_KEY = web.RequestKey("auth", AuthContext)


def auth(request: web.Request) -> AuthContext:
    """The authenticated caller (the middleware guarantees one on protected paths)."""
    context: AuthContext | None = request.get(AUTH_KEY)
    if context is None:
        raise unauthorized()
    return context


# --- tokens -----------------------------------------------------------------------------------------


def issue_jwt(secret: str, user: User, lifetime: dt.timedelta, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    claims = {
        "sub": str(user["_id"]),
        "ver": user.get("tokenVersion", 0),
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def session_lifetime(request: web.Request) -> dt.timedelta:
    return dt.timedelta(hours=services(request).settings.session_lifetime_hours)


def session_token(request: web.Request, user: User) -> str:
    """A new session token for ``user``, valid ``VOICEX_SESSION_LIFETIME_HOURS``."""
    return issue_jwt(services(request).jwt_secret, user, session_lifetime(request))


def decode_jwt(secret: str, token: str, max_age: dt.timedelta) -> tuple[ObjectId, int]:
    """The user id and token version in a valid token; 401 for anything else (bad signature, alg, expiry, shape).

    A token older than ``max_age`` is expired whatever its ``exp`` says, so a shorter session lifetime applies to
    tokens already issued (the 7-day ones of earlier versions included). A token without a version (issued before
    versions existed) is version 0, as is a user without one."""
    try:
        claims = jwt.decode(token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "iat", "sub"]})
        version, issued_at = claims.get("ver", 0), claims["iat"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise TypeError("token version")
        if issued_at + max_age.total_seconds() < dt.datetime.now(dt.UTC).timestamp():
            raise jwt.ExpiredSignatureError("older than the session lifetime")
        return ObjectId(claims["sub"]), version
    except (jwt.PyJWTError, InvalidId, TypeError):
        raise unauthorized("invalid or expired token") from None


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_hex(24)


def hash_api_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_key_prefix(raw: str) -> str:
    """What the dashboard shows to tell keys apart: ``vx_`` and the first 8 hex digits."""
    return raw[: len(API_KEY_PREFIX) + 8]


# --- resolution -------------------------------------------------------------------------------------


async def _load_org(request: web.Request, org_id: ObjectId | None) -> tuple[Organization | None, Plan | None]:
    if org_id is None:
        return None, None
    svc = services(request)
    org = await organizations.find_by_id(svc.db, org_id)
    if org is None:
        return None, None
    plan = svc.catalog.plan_for(org.get("planSlug"))
    return org, plan


async def resolve_api_key(request: web.Request, raw: str) -> AuthContext:
    if not API_KEY_PATTERN.match(raw):
        raise unauthorized("invalid API key")
    db = services(request).db
    key = await api_keys.find_by_hash(db, hash_api_key(raw))
    if key is None or not hmac.compare_digest(key["keyHash"], hash_api_key(raw)):
        raise unauthorized("invalid API key")
    if not api_keys.allows_dashboard(key):
        raise forbidden("this API key is scoped to Twilio webhooks (scopes: twilio): use a full key or a session")
    org, plan = await _load_org(request, key["orgId"])
    if org is None:
        raise unauthorized("invalid API key")
    now = dt.datetime.now(dt.UTC)
    last_used = key.get("lastUsedAt")
    if last_used is None or now - last_used >= API_KEY_TOUCH_INTERVAL:
        await api_keys.touch_last_used(db, key["_id"], now)
    return AuthContext(via="api_key", user=None, org=org, plan=plan, api_key_id=key["_id"])


async def resolve_jwt(request: web.Request, token: str) -> AuthContext:
    svc = services(request)
    user_id, version = decode_jwt(svc.jwt_secret, token, session_lifetime(request))
    user = await users.find_by_id(svc.db, user_id)
    if user is None:
        raise unauthorized("invalid or expired token")
    if version != user.get("tokenVersion", 0):
        raise unauthorized("session ended: sign in again")
    org, plan = await _load_org(request, user.get("orgId"))
    if org is None and not user.get("platformAdmin"):
        raise unauthorized("invalid or expired token")
    return AuthContext(via="jwt", user=user, org=org, plan=plan)


async def authenticate(request: web.Request) -> AuthContext | None:
    """The caller named by the request's credentials; None when it carries none; 401 when they are bad."""
    raw_key = request.headers.get("x-api-key")
    if raw_key is not None:
        return await resolve_api_key(request, raw_key.strip())
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("Authorization must be 'Bearer <token>'")
        return await resolve_jwt(request, token.strip())
    return None


def _needs_auth(path: str) -> bool:
    return path in _AUTHENTICATED_PATHS or path.startswith(_AUTHENTICATED_PREFIXES)


def require_active_org(context: AuthContext) -> None:
    """Dashboard data is only for organizations an admin has activated."""
    if context.org is None:
        raise forbidden("this endpoint needs an organization account")
    status = context.org.get("status", "pending")
    if status != "active":
        raise forbidden(f"organization {status}")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if not _needs_auth(path) or request.method == "OPTIONS":
        return await handler(request)
    context = await authenticate(request)
    if context is None:
        raise unauthorized("authentication required: send 'Authorization: Bearer <token>' or 'x-api-key'")
    request[AUTH_KEY] = context
    if path.startswith("/api/admin/"):
        if not context.platform_admin:
            raise forbidden("platform admin only")
    elif path.startswith("/api/dashboard"):
        require_active_org(context)
    return await handler(request)
