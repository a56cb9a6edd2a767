"""The ``agents`` collection: the agent document, its indexes, and every read and write of it.

Every query of a handler is scoped by the org (another org's agent reads as missing). A phone number routes to
one agent per org: the unique ``phone_org_unique`` index refuses a second claim even when two writes race past
the validation's check, so inserts and updates may raise DuplicateKeyError for the caller to turn into a 409.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypedDict, cast

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from voicex.store.db import Database, IndexSpec

INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec("agents", (("orgId", ASCENDING), ("createdAt", DESCENDING)), "org_created"),
    IndexSpec("agents", (("orgId", ASCENDING), ("phoneNumbers", ASCENDING)), "org_phone"),
    # A number routes to one agent per org, even when two writes claim it at once (other key order than
    # org_phone, so MongoDB sees a different index; agents without numbers are left out).
    IndexSpec(
        "agents",
        (("phoneNumbers", ASCENDING), ("orgId", ASCENDING)),
        "phone_org_unique",
        {"unique": True, "partialFilterExpression": {"phoneNumbers": {"$type": "string"}}},
    ),
)

# Where an agent names a provider: its three slots and their fallback chains.
PROVIDER_FIELDS = (
    "llmProviderId",
    "ttsProviderId",
    "sttProviderId",
    "fallbacks.llm.providerId",
    "fallbacks.tts.providerId",
    "fallbacks.stt.providerId",
)


class FallbackRef(TypedDict):
    providerId: ObjectId
    modelId: str


class AgentDoc(TypedDict, total=False):
    """An agent as stored (schema version 2, voicex/agents/migration.py); validated by voicex/agents/validation.py."""

    _id: ObjectId
    orgId: ObjectId
    name: str
    persona: dict[str, Any]
    llmProviderId: ObjectId
    llmModelId: str
    llmConfig: dict[str, Any]
    ttsProviderId: ObjectId
    ttsModelId: str  # the voice
    ttsConfig: dict[str, Any]
    sttProviderId: ObjectId
    sttModelId: str
    thresholds: dict[str, Any]  # the turn-taking knobs of config/turn_taking.yaml
    openingMode: str
    phoneNumbers: list[str]
    active: bool
    fallbacks: dict[str, list[FallbackRef]]  # by category: llm, tts, stt
    schemaVersion: int
    demo: bool  # the agent `voicex demo` keeps up to date
    createdAt: dt.datetime
    updatedAt: dt.datetime


def _agents(db: Database) -> AsyncCollection[AgentDoc]:
    return cast("AsyncCollection[AgentDoc]", db.agents)


def _using(provider_ids: Sequence[Any]) -> dict[str, Any]:
    """The filter for agents naming one of ``provider_ids`` in a slot or a fallback."""
    return {"$or": [{field: {"$in": list(provider_ids)}} for field in PROVIDER_FIELDS]}


# --- the API's reads and writes (always within one org) ----------------------------------------------------------


async def list_agents(db: Database, org_id: ObjectId) -> list[AgentDoc]:
    """The org's agents, newest first (the plan's maxAgents bounds them)."""
    return await _agents(db).find({"orgId": org_id}).sort([("createdAt", -1), ("_id", -1)]).to_list()


async def get_agent(db: Database, org_id: ObjectId, agent_id: ObjectId) -> AgentDoc | None:
    return await _agents(db).find_one({"_id": agent_id, "orgId": org_id})


async def agent_exists(db: Database, org_id: ObjectId, agent_id: ObjectId) -> bool:
    return await _agents(db).count_documents({"_id": agent_id, "orgId": org_id}, limit=1) > 0


async def insert_agent(db: Database, agent: AgentDoc) -> None:
    """Store a new agent (``_id`` is set on ``agent``); DuplicateKeyError when another agent took a number."""
    await _agents(db).insert_one(agent)


async def update_agent_if_unchanged(
    db: Database, org_id: ObjectId, agent_id: ObjectId, seen_updated_at: dt.datetime | None, fields: AgentDoc
) -> bool:
    """Set ``fields`` only if the agent's ``updatedAt`` is still the one its reader saw (compare-and-set), so a
    concurrent PATCH is never silently overwritten by a stale merge. False when it changed or is gone;
    DuplicateKeyError when another agent took a number."""
    guard = {"_id": agent_id, "orgId": org_id, "updatedAt": seen_updated_at}
    result = await _agents(db).update_one(guard, {"$set": fields})
    return result.matched_count > 0


async def delete_agent(db: Database, org_id: ObjectId, agent_id: ObjectId) -> bool:
    """False when the org has no such agent."""
    result = await _agents(db).delete_one({"_id": agent_id, "orgId": org_id})
    return result.deleted_count > 0


async def count_agents(db: Database, org_id: ObjectId) -> int:
    return await _agents(db).count_documents({"orgId": org_id})


async def count_active_agents(db: Database, org_id: ObjectId) -> int:
    return await _agents(db).count_documents({"orgId": org_id, "active": True})


# --- phone numbers ------------------------------------------------------------------------------------------------


async def agent_for_number(db: Database, org_id: ObjectId, number: str) -> AgentDoc | None:
    """The org's agent that answers ``number`` (the unique index makes it at most one)."""
    return await _agents(db).find_one({"orgId": org_id, "phoneNumbers": number})


async def number_holder(
    db: Database, org_id: ObjectId, numbers: list[str], except_id: ObjectId | None = None
) -> AgentDoc | None:
    """Another of the org's agents holding one of ``numbers`` (only its name and numbers), if any."""
    query: dict[str, Any] = {"orgId": org_id, "phoneNumbers": {"$in": numbers}}
    if except_id is not None:
        query["_id"] = {"$ne": except_id}
    return await _agents(db).find_one(query, {"name": 1, "phoneNumbers": 1})


# --- agents that use a provider -----------------------------------------------------------------------------------


async def list_agents_using(
    db: Database, org_id: ObjectId, provider_ids: Sequence[Any], limit: int = 100
) -> list[AgentDoc]:
    """The org's agents naming one of ``provider_ids`` (only their names), by name: why a provider cannot go."""
    query = {"orgId": org_id, **_using(provider_ids)}
    return await _agents(db).find(query, projection={"name": 1}).sort("name", 1).limit(limit).to_list()


async def count_agents_using(db: Database, provider_ids: Sequence[ObjectId]) -> int:
    """How many agents, of every org, name one of ``provider_ids`` (they pause when it is deactivated)."""
    if not provider_ids:
        return 0
    return await _agents(db).count_documents(_using(provider_ids))


async def any_active_agent_using(db: Database, provider_ids: Sequence[ObjectId]) -> bool:
    """Whether an active agent, of any org, names one of ``provider_ids``."""
    if not provider_ids:
        return False
    query = {"active": {"$ne": False}, **_using(provider_ids)}
    return await _agents(db).find_one(query, {"_id": 1}) is not None


# --- the start-up migration (voicex/agents/migration.py) ---------------------------------------------------------


async def agents_before_version(db: Database, version: int) -> AsyncIterator[AgentDoc]:
    """Every agent whose ``schemaVersion`` is not ``version``, streamed (there may be many)."""
    async for agent in _agents(db).find({"schemaVersion": {"$ne": version}}):
        yield agent


async def migrate_agent_once(db: Database, agent_id: ObjectId, version: int, fields: AgentDoc) -> bool:
    """Set ``fields`` (which bring the agent to ``version``) unless another process already did: a
    compare-and-set on ``schemaVersion``, so concurrent starts rewrite each agent once. True when it changed."""
    query = {"_id": agent_id, "schemaVersion": {"$ne": version}}
    result = await _agents(db).update_one(query, {"$set": fields})
    return result.modified_count > 0


async def list_tts_users(db: Database, provider_id: ObjectId) -> list[AgentDoc]:
    """The agents speaking with ``provider_id``, as main voice or TTS fallback (only those fields)."""
    query = {"$or": [{"ttsProviderId": provider_id}, {"fallbacks.tts.providerId": provider_id}]}
    projection = {"ttsProviderId": 1, "ttsModelId": 1, "fallbacks.tts": 1}
    return await _agents(db).find(query, projection).to_list()


# --- the demo -----------------------------------------------------------------------------------------------------


async def save_demo_agent(db: Database, org_id: ObjectId, fields: AgentDoc, now: dt.datetime) -> AgentDoc:
    """Create the org's demo agent or bring it to ``fields``; the agent as stored. One per org (upsert)."""
    await _agents(db).update_one(
        {"orgId": org_id, "demo": True}, {"$set": fields, "$setOnInsert": {"createdAt": now, "demo": True}}, upsert=True
    )
    agent = await _agents(db).find_one({"orgId": org_id, "demo": True})
    assert agent is not None
    return agent
