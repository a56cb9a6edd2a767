"""Plan limits on things an organization owns (agents, custom providers), enforced atomically across processes.

Counting and then inserting lets simultaneous creations all pass the count; inserting and then counting to back
out makes them all back out. Instead each creation claims one unit of a counter on the organization document
with a conditional ``$inc`` (``counter < limit``), and gives it back if the insert fails or the thing is deleted.
A counter starts from the real number of the org's documents the first time it is needed, so documents
written before it existed are counted. (Concurrent *calls* are a different mechanism: leased slots,
voicex/store/slots.py.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bson import ObjectId

from voicex.store import agents, providers
from voicex.store.db import Database


@dataclass(frozen=True)
class Quota:
    counter: str  # the field on the organization document
    count: Callable[[Database, ObjectId], Awaitable[int]]  # how many of the org's documents there really are


AGENTS = Quota("agentCount", agents.count_agents)  # the plan's maxAgents
CUSTOM_PROVIDERS = Quota("customProviderCount", providers.count_own_providers)  # the plan's maxCustomProviders


async def _ensure_counter(db: Database, org_id: ObjectId, quota: Quota) -> None:
    org = await db.organizations.find_one({"_id": org_id}, {quota.counter: 1})
    if org is None or quota.counter in org:
        return
    count = await quota.count(db, org_id)
    # Only the first initializer wins; no claim can run before the field exists.
    await db.organizations.update_one(
        {"_id": org_id, quota.counter: {"$exists": False}}, {"$set": {quota.counter: count}}
    )


async def claim(db: Database, org_id: ObjectId, quota: Quota, limit: int) -> bool:
    """Take one of the org's ``limit`` units; False when all are taken."""
    await _ensure_counter(db, org_id, quota)
    claimed = await db.organizations.find_one_and_update(
        {"_id": org_id, quota.counter: {"$lt": limit}}, {"$inc": {quota.counter: 1}}, projection={"_id": 1}
    )
    return claimed is not None


async def release(db: Database, org_id: ObjectId, quota: Quota) -> None:
    """Give a unit back (deleted, or its insert failed); never below zero."""
    await db.organizations.update_one({"_id": org_id, quota.counter: {"$gt": 0}}, {"$inc": {quota.counter: -1}})
