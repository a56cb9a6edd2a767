"""The plan's maxCustomProviders, enforced atomically: a counter on the organization claimed before insert.

Inserting and then counting to back out over the limit is not enough: when more creations than the limit run
at once, every one of them sees too many providers and backs out, so fewer than the limit (often none) succeed.
A conditional ``$inc`` on ``organizations.customProviderCount`` hands out exactly ``limit`` units, across
server processes; a unit is given back when the insert fails or the provider is deleted. The counter starts
from the real number of the org's providers the first time it is needed.
"""

from __future__ import annotations

from bson import ObjectId

from voicex.store.db import Database

FIELD = "customProviderCount"


async def _ensure_counter(db: Database, org_id: ObjectId) -> None:
    org = await db.organizations.find_one({"_id": org_id}, {FIELD: 1})
    if org is None or FIELD in org:
        return
    count = await db.providers.count_documents({"orgId": org_id})
    # Only the first initializer wins; no claim can run before the field exists.
    await db.organizations.update_one({"_id": org_id, FIELD: {"$exists": False}}, {"$set": {FIELD: count}})


async def claim_provider_slot(db: Database, org_id: ObjectId, limit: int) -> bool:
    """Take one of the org's ``limit`` custom-provider units; False when all are taken."""
    await _ensure_counter(db, org_id)
    claimed = await db.organizations.find_one_and_update(
        {"_id": org_id, FIELD: {"$lt": limit}}, {"$inc": {FIELD: 1}}, projection={"_id": 1}
    )
    return claimed is not None


async def release_provider_slot(db: Database, org_id: ObjectId) -> None:
    """Give a unit back (provider deleted, or its insert failed); never below zero."""
    await db.organizations.update_one({"_id": org_id, FIELD: {"$gt": 0}}, {"$inc": {FIELD: -1}})
