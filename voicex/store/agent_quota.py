"""The plan's maxAgents, enforced atomically: a counter on the organization document claimed before insert.

Counting agents and then inserting lets two simultaneous creates both pass the count. Instead each create
claims a unit of ``organizations.agentCount`` with one conditional ``$inc`` (``agentCount < maxAgents``), and
gives it back if the insert fails or the agent is deleted. The counter starts from the real number of agents
the first time an org needs it, so agents written before it existed are counted.
"""

from __future__ import annotations

from bson import ObjectId

from voicex.store.db import Database


async def _ensure_counter(db: Database, org_id: ObjectId) -> None:
    org = await db.organizations.find_one({"_id": org_id}, {"agentCount": 1})
    if org is None or "agentCount" in org:
        return
    count = await db.agents.count_documents({"orgId": org_id})
    # Only the first initializer wins; no claim can run before the field exists.
    await db.organizations.update_one(
        {"_id": org_id, "agentCount": {"$exists": False}}, {"$set": {"agentCount": count}}
    )


async def claim_agent_slot(db: Database, org_id: ObjectId, max_agents: int) -> bool:
    """Take one of the org's ``max_agents`` agent slots; False when all are taken."""
    await _ensure_counter(db, org_id)
    claimed = await db.organizations.find_one_and_update(
        {"_id": org_id, "agentCount": {"$lt": max_agents}}, {"$inc": {"agentCount": 1}}, projection={"_id": 1}
    )
    return claimed is not None


async def release_agent_slot(db: Database, org_id: ObjectId) -> None:
    """Give a slot back (agent deleted, or its insert failed); never below zero."""
    await db.organizations.update_one({"_id": org_id, "agentCount": {"$gt": 0}}, {"$inc": {"agentCount": -1}})
