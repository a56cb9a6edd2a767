"""Growing delays for failed sign-ins, per email and client address, instead of locking the email.

A lock on the email alone lets anyone lock its owner out with a few wrong guesses. Here only the pair that keeps
failing is slowed: after ``VOICEX_SIGNIN_ATTEMPTS_PER_15MIN`` failures, each further failure refuses that email
from that client (429 with ``Retry-After``) for 30 s, then 60 s, … up to 15 min; the owner signing in from
anywhere else is not affected. A success clears the pair; so does 15 min without a failure after the last delay.
A wrong current password on a password change counts the same. The records live in the ``rate_limits``
collection; when the database cannot be asked the guard refuses (503): it fails closed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

from aiohttp import web
from pymongo.errors import PyMongoError

from voicex.platform.services import services
from voicex.store import rate_limits
from voicex.web.client_ip import client_key
from voicex.web.ratelimit import retry_later, store_unavailable

log = logging.getLogger(__name__)

FIRST_DELAY_SEC = 30.0
MAX_DELAY_SEC = 15 * 60.0
FORGET_AFTER = dt.timedelta(minutes=15)


def delay_after(failures: int, free: int) -> float:
    """Seconds the pair is refused after its ``failures``-th failure: none before ``free``, then doubling."""
    if failures < free:
        return 0.0
    return min(MAX_DELAY_SEC, FIRST_DELAY_SEC * float(2 ** min(failures - free, 16)))


def _record_id(request: web.Request, email: str) -> str:
    digest = hashlib.sha256(f"{email}|{client_key(request)}".encode()).hexdigest()[:32]  # no raw emails stored
    return f"signin:{digest}"


async def check(request: web.Request, email: str) -> None:
    """429 while this email is refused from this client; 503 when the database cannot say."""
    db = services(request).db
    try:
        until = await rate_limits.signin_blocked_until(db, _record_id(request, email))
    except PyMongoError as exc:
        raise store_unavailable(exc) from None
    now = dt.datetime.now(dt.UTC)
    if until is not None and until > now:
        raise retry_later((until - now).total_seconds(), "too many sign-in attempts")


async def failed(request: web.Request, email: str) -> None:
    """Count a failure of the pair and, past the free ones, refuse it for the next delay."""
    svc = services(request)
    record_id, now = _record_id(request, email), dt.datetime.now(dt.UTC)
    try:
        failures = await rate_limits.add_signin_failure(svc.db, record_id, now)
        delay = dt.timedelta(seconds=delay_after(failures, svc.settings.signin_attempts_per_15min))
        await rate_limits.block_signin(svc.db, record_id, now + delay, now + delay + FORGET_AFTER)
    except PyMongoError as exc:
        raise store_unavailable(exc) from None


async def succeeded(request: web.Request, email: str) -> None:
    """Forget the pair's failures (best effort: a record left behind only expires later)."""
    try:
        await rate_limits.clear_signin_failures(services(request).db, _record_id(request, email))
    except PyMongoError as exc:
        log.warning("sign-in failures not cleared: database error", extra={"error": type(exc).__name__})
