"""Bounded retries with backoff for database writes that must outlive a short MongoDB outage.

A call's finalization (transcript, usage, slot release) and its lease renewal are written once, by the
process that ran the call. If MongoDB is restarting at that moment, the driver raises after its server
selection timeout and, without a retry, the write is simply lost: the call would later be reaped as
``server_lost`` without its transcript. Every write retried here is idempotent (conditional updates, or
guarded increments), so retrying one whose reply was lost is safe. Nothing here runs on the audio path.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pymongo.errors import ConnectionFailure, OperationFailure

log = logging.getLogger(__name__)

T = TypeVar("T")

# Server-side errors MongoDB itself marks as worth retrying (shutdown in progress, not primary, …).
_RETRYABLE_CODES = frozenset({6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying: until ``budget_sec`` has passed, sleeping ``first_delay_sec`` doubling to
    ``max_delay_sec`` (with jitter, so many calls ending together do not retry in lockstep)."""

    budget_sec: float
    first_delay_sec: float = 0.2
    max_delay_sec: float = 2.0

    def delay(self, attempt: int) -> float:
        base = min(self.max_delay_sec, self.first_delay_sec * 2**attempt)
        return float(base * (0.5 + random.random() / 2))


# A finished call: the caller is gone, so waiting costs nothing but memory; five minutes rides out a restart.
FINALIZE = RetryPolicy(budget_sec=300.0)
# A lease renewal: retried until shortly before the next one is due anyway.
RENEWAL = RetryPolicy(budget_sec=8.0, first_delay_sec=0.25, max_delay_sec=1.0)
# One attempt: for callers that have their own next round (the janitor).
ONCE = RetryPolicy(budget_sec=0.0)


def transient(exc: BaseException) -> bool:
    """True for errors a later attempt may not see: no server reachable, connection lost, server stepping down."""
    if isinstance(exc, ConnectionFailure):  # AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError
        return True
    if isinstance(exc, OperationFailure):
        return exc.code in _RETRYABLE_CODES or exc.has_error_label("RetryableWriteError")
    return False


async def retry(op: Callable[[], Awaitable[T]], what: str, policy: RetryPolicy, **context: object) -> T:
    """Await ``op()`` until it succeeds, retrying transient errors within ``policy``; re-raise the last error.

    ``what`` and ``context`` name the write in the log lines, so an operator can tell what was delayed.
    """
    deadline = time.monotonic() + policy.budget_sec
    attempt = 0
    while True:
        try:
            result = await op()
        except Exception as exc:
            if not transient(exc):
                raise
            pause = policy.delay(attempt)
            if time.monotonic() + pause >= deadline:
                log.error(
                    "database write abandoned after retries",
                    extra={"write": what, "attempts": attempt + 1, "error": type(exc).__name__, **context},
                )
                raise
            if attempt == 0:
                log.warning("database write failed; retrying", extra={"write": what, "error": str(exc), **context})
            attempt += 1
            await asyncio.sleep(pause)
            continue
        if attempt:
            log.warning("database write succeeded after retries", extra={"write": what, "attempts": attempt + 1})
        return result
