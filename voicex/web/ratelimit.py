"""Rate limits with their counters in MongoDB, so every server process shares them.

Fixed windows: one counter per (bucket, key, window), incremented atomically and expired by a TTL index
(voicex/store/rate_limits.py). A refused request gets 429 ``{"error": ...}`` with ``Retry-After``.
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
from voicex.web.middleware import Handler

log = logging.getLogger(__name__)

# Not rate limited per IP: probes and metrics scrapes, and Twilio (all calls come from Twilio's addresses;
# its requests are signed instead).
_EXEMPT_PREFIXES = ("/api/health", "/api/ready", "/metrics", "/api/twilio/")


@dataclass(frozen=True)
class Limit:
    bucket: str
    max_hits: int
    window_sec: int


def too_many(limit: Limit, retry_after: float, what: str = "too many requests") -> ApiError:
    error = ApiError(429, f"{what}: try again in {max(1, int(retry_after + 0.999))} s")
    error.headers["Retry-After"] = str(max(1, int(retry_after + 0.999)))
    return error


async def hit(db: Database, limit: Limit, key: str, now: float | None = None) -> float | None:
    """Count one hit; returns seconds to wait when over the limit, else None. Fails open on DB errors."""
    now = time.time() if now is None else now
    window = int(now // limit.window_sec)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # keys may hold emails/IPs: don't store them raw
    counter_id = f"{limit.bucket}:{digest}:{window}"
    expires = dt.datetime.fromtimestamp((window + 1) * limit.window_sec, dt.UTC)
    try:
        count = await rate_limits.count_hit(db, counter_id, expires)
    except PyMongoError as exc:
        log.warning("rate limit check skipped: database error", extra={"error": type(exc).__name__})
        return None
    if count is not None and count > limit.max_hits:
        return (window + 1) * limit.window_sec - now
    return None


@web.middleware
async def ip_rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Per client IP on every API path; runs before authentication so failed guesses count too."""
    if request.path.startswith(_EXEMPT_PREFIXES) or request.method == "OPTIONS":
        return await handler(request)
    svc = services(request)
    limit = Limit("ip", svc.settings.rate_limit_ip_per_minute, 60)
    wait = await hit(svc.db, limit, request.remote or "unknown")
    if wait is not None:
        raise too_many(limit, wait)
    return await handler(request)


@web.middleware
async def principal_rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Per API key or user, once the auth middleware has said who is calling."""
    context = request.get(AUTH_KEY)
    if context is not None and request.method != "OPTIONS":
        svc = services(request)
        limit = Limit("principal", svc.settings.rate_limit_per_minute, 60)
        wait = await hit(svc.db, limit, context.principal)
        if wait is not None:
            raise too_many(limit, wait)
    return await handler(request)


def signin_limit(attempts: int) -> Limit:
    """Sign-in attempts per email and IP: tight, to slow password guessing."""
    return Limit("signin", attempts, 15 * 60)
