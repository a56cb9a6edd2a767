"""Rate limits with their counters in MongoDB, so every server process shares them.

Fixed windows: one counter per (bucket, key, window), incremented atomically and expired by a TTL index
(voicex/store/rate_limits.py). A refused request gets 429 ``{"error": ...}`` with ``Retry-After``.

- Per client (its address through the trusted proxies, IPv6 by /64: voicex/web/client_ip.py) on every API path,
  and a much tighter per-client limit on each endpoint that runs argon2 (sign-up, sign-in, password change).
- Per organization once the caller is known: all its API keys and users share one bucket (an org may hold many
  keys); a platform admin without an organization has their own. Provider tests have their own, smaller one.

The limits of the password endpoints fail closed (503) when the database does not answer: guessing must not get
faster during an outage. The others fail open, so a database blip is not also a wall of 429s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass

from aiohttp import web
from pymongo.errors import PyMongoError

from voicex.platform.errors import ApiError
from voicex.platform.services import services
from voicex.store import rate_limits
from voicex.store.db import Database
from voicex.web.auth import AUTH_KEY
from voicex.web.client_ip import client_key
from voicex.web.middleware import Handler

log = logging.getLogger(__name__)

# Not rate limited per IP: probes and metrics scrapes, and Twilio (all calls come from Twilio's addresses;
# its requests are signed instead).
_EXEMPT_PREFIXES = ("/api/health", "/api/ready", "/metrics", "/api/twilio/")
# The endpoints that run argon2 on a password: what a refusal there says.
AUTH_PATHS = {
    "/api/auth/signup": "too many sign-ups from this address",
    "/api/auth/signin": "too many sign-in attempts from this address",
    "/api/auth/password": "too many password changes from this address",
}
PROVIDER_TEST_ROUTE = "/api/dashboard/providers/{id}/test"
STORE_RETRY_AFTER_SEC = 5


@dataclass(frozen=True)
class Limit:
    bucket: str
    max_hits: int
    window_sec: int


def retry_later(seconds: float, what: str = "too many requests") -> ApiError:
    """429 saying how long to wait, in the message and in ``Retry-After``."""
    wait = max(1, int(seconds + 0.999))
    error = ApiError(429, f"{what}: try again in {wait} s")
    error.headers["Retry-After"] = str(wait)
    return error


def too_many(limit: Limit, retry_after: float, what: str = "too many requests") -> ApiError:
    return retry_later(retry_after, what)


def store_unavailable(exc: PyMongoError) -> ApiError:
    """503 for a limit that fails closed and could not be checked."""
    log.warning("rate limit unavailable: database error, refusing", extra={"error": type(exc).__name__})
    error = ApiError(503, "temporarily unavailable: the database does not answer, try again shortly")
    error.headers["Retry-After"] = str(STORE_RETRY_AFTER_SEC)
    return error


async def hit(
    db: Database, limit: Limit, key: str, now: float | None = None, *, fail_closed: bool = False
) -> float | None:
    """Count one hit; returns seconds to wait when over the limit, else None.

    On a database error: None (fail open), or with ``fail_closed`` a 503 ApiError raised.
    """
    now = time.time() if now is None else now
    window = int(now // limit.window_sec)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # keys may hold emails/IPs: don't store them raw
    counter_id = f"{limit.bucket}:{digest}:{window}"
    expires = dt.datetime.fromtimestamp((window + 1) * limit.window_sec, dt.UTC)
    try:
        count = await rate_limits.count_hit(db, counter_id, expires)
    except PyMongoError as exc:
        if fail_closed:
            raise store_unavailable(exc) from None
        log.warning("rate limit check skipped: database error", extra={"error": type(exc).__name__})
        return None
    if count is not None and count > limit.max_hits:
        return (window + 1) * limit.window_sec - now
    return None


@web.middleware
async def ip_rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Per client on every API path; runs before authentication so failed guesses count too."""
    if request.path.startswith(_EXEMPT_PREFIXES) or request.method == "OPTIONS":
        return await handler(request)
    svc = services(request)
    client = client_key(request)
    refusal = AUTH_PATHS.get(request.path)
    limit = Limit("ip", svc.settings.rate_limit_ip_per_minute, 60)
    wait = await hit(svc.db, limit, client, fail_closed=refusal is not None)
    if wait is not None:
        raise too_many(limit, wait)
    if refusal is not None and request.method == "POST":
        auth_limit = Limit(f"auth-ip:{request.path}", svc.settings.auth_ip_per_minute, 60)
        wait = await hit(svc.db, auth_limit, client, fail_closed=True)
        if wait is not None:
            raise too_many(auth_limit, wait, refusal)
    return await handler(request)


def _route(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


@web.middleware
async def principal_rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Per organization (or org-less user), once the auth middleware has said who is calling."""
    context = request.get(AUTH_KEY)
    if context is not None and request.method != "OPTIONS":
        svc = services(request)
        limit = Limit("org", svc.settings.rate_limit_per_minute, 60)
        wait = await hit(svc.db, limit, context.limit_key)
        if wait is not None:
            raise too_many(limit, wait)
        if request.method == "POST" and _route(request) == PROVIDER_TEST_ROUTE:
            tests = Limit("provider-test", svc.settings.provider_tests_per_minute, 60)
            wait = await hit(svc.db, tests, context.limit_key)
            if wait is not None:
                raise too_many(tests, wait, "too many provider tests for this organization")
    return await handler(request)
