"""Concurrent-call slots: one document per org and slot index, claimed atomically and held by a lease.

Slot ``n`` of an org has the fixed id ``"<orgId>:<n>"``, so two processes creating the same slot collide
on the primary key and exactly one wins; a free or lease-expired slot is claimed with one
find_one_and_update. This is what makes ``maxConcurrentCalls`` exact across server processes.
"""

from __future__ import annotations

import datetime as dt
import random

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import BulkWriteError

from voicex.store.db import Database, Document

LEASE = dt.timedelta(seconds=30)
_SEEN: dict[ObjectId, int] = {}  # per org, how many slots this process last saw exist: where to search from


async def claim_slot(db: Database, org_id: ObjectId, max_calls: int, call_id: ObjectId, now: dt.datetime) -> bool:
    """Claim a slot for ``call_id``; False when all ``max_calls`` slots are held by live calls.

    A burst of admissions is what costs the database here, so two things keep them apart. When every
    existing slot is held, free slots are created ahead in a batch (as many again as exist, at least 8, never
    past ``max_calls``), inserted in order so a loser of that race stops at its first duplicate; one slot per
    admission made N simultaneous admissions race for the same next index, ~N²/2 rounds. And a free slot is
    looked for from a random index (:func:`_claim_free`). "Full" is only said after a search made once every
    slot existed.
    """
    if max_calls <= 0:
        return False
    lease = {"callId": call_id, "leaseExpiresAt": now + LEASE}
    for _ in range(max_calls + 2):
        if await _claim_free(db, org_id, max_calls, lease, now):
            return True
        existing = await db.call_slots.count_documents({"orgId": org_id, "index": {"$lt": max_calls}})
        _SEEN[org_id] = existing
        if existing >= max_calls:
            # Another admission may have created the last slots after this one searched: one more look
            # over all of them, or a burst after a restart refuses callers while slots stand free.
            return await _claim_free(db, org_id, max_calls, lease, now)
        batch = range(existing, min(max_calls, existing + max(8, existing)))
        _SEEN[org_id] = batch.stop
        await _create_free(db, org_id, batch)
    return False


async def _claim_free(db: Database, org_id: ObjectId, max_calls: int, lease: Document, now: dt.datetime) -> bool:
    """Take a free or lease-expired slot, searching up from a random index and then down from it.

    Simultaneous claims that all went for the first free slot conflicted on it, and SecantusDB (like mongod)
    retries a write conflict by running the write again: the database's CPU went to those retries.
    """
    start = random.randrange(min(max_calls, _SEEN.get(org_id, 1)))
    free = {"orgId": org_id, "$or": [{"callId": None}, {"leaseExpiresAt": {"$lt": now}}]}
    searches = [({"$gte": start, "$lt": max_calls}, ASCENDING)] + ([({"$lt": start}, DESCENDING)] if start else [])
    for index, order in searches:
        claimed = await db.call_slots.find_one_and_update(
            {**free, "index": index}, {"$set": lease}, sort=[("index", order)]
        )
        if claimed is not None:
            return True
    return False


async def _create_free(db: Database, org_id: ObjectId, indexes: range) -> None:
    """Create these free slots, stopping at the first one another admission created first."""
    docs = [
        {"_id": f"{org_id}:{i}", "orgId": org_id, "index": i, "callId": None, "leaseExpiresAt": None} for i in indexes
    ]
    try:
        await db.call_slots.insert_many(docs, ordered=True)
    except BulkWriteError as exc:
        if any(error.get("code") != 11000 for error in exc.details.get("writeErrors", [])):
            raise


async def renew_slots(db: Database, call_ids: list[ObjectId], now: dt.datetime) -> None:
    """Extend the slot leases of these calls (one write whatever their number; a released slot has no callId)."""
    await db.call_slots.update_many({"callId": {"$in": call_ids}}, {"$set": {"leaseExpiresAt": now + LEASE}})


async def release_slot(db: Database, call_id: ObjectId) -> None:
    await db.call_slots.update_many({"callId": call_id}, {"$set": {"callId": None, "leaseExpiresAt": None}})
