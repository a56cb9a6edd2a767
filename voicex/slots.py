"""Concurrent-call slots: one document per org and slot index, claimed atomically and held by a lease.

Slot ``n`` of an org has the fixed id ``"<orgId>:<n>"``, so two processes creating the same slot collide
on the primary key and exactly one wins; a free or lease-expired slot is claimed with one
find_one_and_update. This is what makes ``maxConcurrentCalls`` exact across server processes.
"""

from __future__ import annotations

import datetime as dt

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from voicex.db import Database

LEASE = dt.timedelta(seconds=30)


async def claim_slot(db: Database, org_id: ObjectId, max_calls: int, call_id: ObjectId, now: dt.datetime) -> bool:
    """Claim a slot for ``call_id``; False when all ``max_calls`` slots are held by live calls."""
    if max_calls <= 0:
        return False
    lease = {"callId": call_id, "leaseExpiresAt": now + LEASE}
    for _ in range(max_calls + 2):
        claimed = await db.call_slots.find_one_and_update(
            {"orgId": org_id, "index": {"$lt": max_calls}, "$or": [{"callId": None}, {"leaseExpiresAt": {"$lt": now}}]},
            {"$set": lease},
        )
        if claimed is not None:
            return True
        existing = await db.call_slots.count_documents({"orgId": org_id, "index": {"$lt": max_calls}})
        if existing >= max_calls:
            return False
        try:
            await db.call_slots.insert_one({"_id": f"{org_id}:{existing}", "orgId": org_id, "index": existing, **lease})
            return True
        except DuplicateKeyError:
            continue  # another admission created that slot first: look again
    return False


async def renew_slot(db: Database, call_id: ObjectId, now: dt.datetime) -> None:
    await db.call_slots.update_many({"callId": call_id}, {"$set": {"leaseExpiresAt": now + LEASE}})


async def release_slot(db: Database, call_id: ObjectId) -> None:
    await db.call_slots.update_many({"callId": call_id}, {"$set": {"callId": None, "leaseExpiresAt": None}})
