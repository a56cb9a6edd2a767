"""The ``rate_limits`` collection: one hit counter per (bucket, key, fixed window), shared by every server process.

Counters are incremented atomically with an upsert and deleted by a TTL index once their window is over
(the policy, and what a refusal looks like, are in voicex/web/ratelimit.py).
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


INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec("rate_limits", (("expiresAt", ASCENDING),), "expires_ttl", {"expireAfterSeconds": 0}),
)


def _counters(db: Database) -> AsyncCollection[HitCounter]:
    """The collection, typed with its documents (Database holds every collection as plain dicts)."""
    return cast("AsyncCollection[HitCounter]", db.rate_limits)


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
