"""The ``rate_limits`` collection: one hit counter per (bucket, key, fixed window), shared by every server process,
and the failed sign-ins of each (email, client) pair.

Counters are incremented atomically with an upsert and deleted by a TTL index once their window is over
(the policy, and what a refusal looks like, are in voicex/web/ratelimit.py). A sign-in failure record counts
the pair's failures and the time until which it is refused (voicex/web/signin_guard.py); the same TTL index
forgets it once it expires.
"""

from __future__ import annotations

import datetime as dt
from typing import TypedDict, cast

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from voicex.store.db import Database, IndexSpec


class HitCounter(TypedDict):
    _id: str  # "<bucket>:<hash of the key>:<window number>"
    count: int
    expiresAt: dt.datetime  # the window's end: the TTL index deletes the counter after it


class SigninFailures(TypedDict):
    _id: str  # "signin:<hash of email and client>"
    failures: int
    blockedUntil: dt.datetime  # refused until then
    expiresAt: dt.datetime  # forgotten after then (TTL index)


INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec("rate_limits", (("expiresAt", ASCENDING),), "expires_ttl", {"expireAfterSeconds": 0}),
)


def _counters(db: Database) -> AsyncCollection[HitCounter]:
    """The collection, typed with its documents (Database holds every collection as plain dicts)."""
    return cast("AsyncCollection[HitCounter]", db.rate_limits)


def _failures(db: Database) -> AsyncCollection[SigninFailures]:
    return cast("AsyncCollection[SigninFailures]", db.rate_limits)


async def count_hit(db: Database, counter_id: str, expires: dt.datetime) -> int | None:
    """Add one to the counter (creating it, to expire at ``expires``); its count after, or None when it could not.

    Two concurrent first hits may both try to insert: the loser retries as an update.
    """
    for _ in range(2):
        try:
            counter = await _counters(db).find_one_and_update(
                {"_id": counter_id},
                {"$inc": {"count": 1}, "$setOnInsert": {"expiresAt": expires}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            continue
        return counter["count"] if counter is not None else None
    return None


async def signin_blocked_until(db: Database, record_id: str) -> dt.datetime | None:
    """Until when the pair is refused, if a failure record is held for it."""
    record = await _failures(db).find_one({"_id": record_id}, projection={"blockedUntil": 1})
    return record["blockedUntil"] if record is not None else None


async def add_signin_failure(db: Database, record_id: str, now: dt.datetime) -> int:
    """Count one more failure of the pair (creating its record); the count after."""
    for _ in range(2):
        try:
            record = await _failures(db).find_one_and_update(
                {"_id": record_id},
                {"$inc": {"failures": 1}, "$setOnInsert": {"blockedUntil": now, "expiresAt": now}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # a concurrent first failure inserted it: count on it instead
            continue
        if record is not None:
            return record["failures"]
    return 1


async def block_signin(db: Database, record_id: str, until: dt.datetime, forget_at: dt.datetime) -> None:
    """Refuse the pair until ``until`` and keep its count until ``forget_at`` (never shortening either)."""
    await _failures(db).update_one({"_id": record_id}, {"$max": {"blockedUntil": until, "expiresAt": forget_at}})


async def clear_signin_failures(db: Database, record_id: str) -> None:
    await _failures(db).delete_one({"_id": record_id})
