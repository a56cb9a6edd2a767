"""The ``providers`` collection: the provider document, its indexes, and every read and write of it.

An org sees the global providers (``orgId: None``, written from the catalog at start, read-only to orgs) and
its own. Names are unique per org (``org_name_unique``), which is also what makes the global sync safe with
several processes starting at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Literal, NotRequired, TypedDict, cast

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from voicex.store.db import Database, IndexSpec

INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec("providers", (("orgId", ASCENDING), ("name", ASCENDING)), "org_name_unique", {"unique": True}),
)

Category = Literal["llm", "tts", "stt"]  # voicex.catalog.config.Category (the store imports nothing above it)


class ModelDoc(TypedDict):
    modelId: str  # for TTS, a voice
    label: str
    language: NotRequired[str]  # what a TTS voice speaks (BCP 47)


class ProviderDoc(TypedDict, total=False):
    _id: ObjectId
    orgId: ObjectId | None  # None: a global provider
    category: Category
    providerKey: str  # a provider type of config/providers.yaml
    name: str
    credentials: str | None  # the org's own, encrypted (SecretBox); globals read theirs from the environment
    models: list[ModelDoc]
    settings: dict[str, Any]
    active: bool
    schemaVersion: int
    createdAt: dt.datetime
    updatedAt: dt.datetime


def _providers(db: Database) -> AsyncCollection[ProviderDoc]:
    return cast("AsyncCollection[ProviderDoc]", db.providers)


def _visible(org_id: ObjectId) -> dict[str, Any]:
    return {"orgId": {"$in": [None, org_id]}}


# --- what an org sees ---------------------------------------------------------------------------------------------


async def get_visible_provider(db: Database, org_id: ObjectId, provider_id: ObjectId) -> ProviderDoc | None:
    """A global provider or one of the org's own; None for anything else, another org's included."""
    return await _providers(db).find_one({"_id": provider_id, **_visible(org_id)})


async def visible_providers_by_id(
    db: Database, org_id: ObjectId, provider_ids: Iterable[ObjectId]
) -> dict[ObjectId, ProviderDoc]:
    """Those of ``provider_ids`` the org may use, in one query; an id missing from the answer reads as deleted."""
    cursor = _providers(db).find({"_id": {"$in": list(provider_ids)}, **_visible(org_id)})
    return {provider["_id"]: provider async for provider in cursor}


async def list_visible_providers(
    db: Database, org_id: ObjectId, *, own_only: bool = False, category: Category | None = None
) -> list[ProviderDoc]:
    """The globals and the org's own (``own_only``: only its own), globals first, then by category and name."""
    query: dict[str, Any] = {"orgId": org_id} if own_only else _visible(org_id)
    if category is not None:
        query["category"] = category
    return await _providers(db).find(query).sort([("orgId", 1), ("category", 1), ("name", 1)]).to_list()


async def list_active_in_category(db: Database, org_id: ObjectId, category: Category) -> list[ProviderDoc]:
    """The active providers of one category the org may use (model search), globals first, then by name."""
    query = {**_visible(org_id), "category": category, "active": True}
    return await _providers(db).find(query).sort([("orgId", 1), ("name", 1)]).to_list()


# --- an org's own providers ---------------------------------------------------------------------------------------


async def name_taken(db: Database, org_id: ObjectId, name: str, except_id: ObjectId | None = None) -> bool:
    """Whether another of the org's providers has ``name`` (a clear 409 before the unique index refuses)."""
    query: dict[str, Any] = {"orgId": org_id, "name": name}
    if except_id is not None:
        query["_id"] = {"$ne": except_id}
    return await _providers(db).find_one(query, projection={"_id": 1}) is not None


async def insert_provider(db: Database, provider: ProviderDoc) -> ObjectId:
    """Store a new provider and set its ``_id``; DuplicateKeyError when the org has one by that name."""
    provider["_id"] = (await _providers(db).insert_one(provider)).inserted_id
    return provider["_id"]


async def update_own_provider(db: Database, org_id: ObjectId, provider_id: ObjectId, fields: ProviderDoc) -> None:
    """Set ``fields`` on one of the org's own providers; DuplicateKeyError when a new name is taken."""
    await _providers(db).update_one({"_id": provider_id, "orgId": org_id}, {"$set": fields})


async def delete_own_provider(db: Database, org_id: ObjectId, provider_id: ObjectId) -> bool:
    """False when the org has no such provider (never a global one)."""
    result = await _providers(db).delete_one({"_id": provider_id, "orgId": org_id})
    return result.deleted_count > 0


async def count_own_providers(db: Database, org_id: ObjectId) -> int:
    return await _providers(db).count_documents({"orgId": org_id})


# --- the global providers (voicex/catalog/global_providers.py) ----------------------------------------------------


async def globals_by_type(db: Database) -> dict[tuple[str, str], ProviderDoc]:
    """Every global provider (active or not), by ``(providerKey, category)``: one query for the start-up sync."""
    return {(doc["providerKey"], doc["category"]): doc async for doc in _providers(db).find({"orgId": None})}


async def insert_global_providers(db: Database, docs: list[ProviderDoc], now: dt.datetime) -> list[ProviderDoc]:
    """Insert new global providers in one request (a fresh database's first start); those another process
    inserted meanwhile are returned, for :func:`save_global_provider` to update."""
    if not docs:
        return []
    stamped: list[ProviderDoc] = [
        cast(ProviderDoc, {**doc, "orgId": None, "createdAt": now, "updatedAt": now}) for doc in docs
    ]
    try:
        await _providers(db).insert_many(stamped, ordered=False)
    except BulkWriteError as exc:
        failed = {error["index"] for error in exc.details.get("writeErrors", [])}
        return [docs[index] for index in sorted(failed)]
    return []


async def save_global_provider(
    db: Database, provider_key: str, category: Category, fields: ProviderDoc, now: dt.datetime
) -> bool:
    """Insert the global provider of ``(provider_key, category)`` if absent, else set ``fields`` on it.

    Safe from several processes at once: the unique (orgId, name) index turns a lost insert race into a
    DuplicateKeyError, after which the winner's document is updated. False when no document has the key and
    the name belongs to another global (nothing written).
    """
    key = {"orgId": None, "providerKey": provider_key, "category": category}
    try:
        await _providers(db).update_one(
            key, {"$set": {**fields, "updatedAt": now}, "$setOnInsert": {"createdAt": now}}, upsert=True
        )
    except DuplicateKeyError:
        result = await _providers(db).update_one(key, {"$set": {**fields, "updatedAt": now}})
        return result.matched_count > 0
    return True


async def list_globals_except(db: Database, kept: Iterable[tuple[str, Category]]) -> list[ProviderDoc]:
    """The active globals whose ``(providerKey, category)`` is not in ``kept``, by name."""
    refs = [{"providerKey": key, "category": category} for key, category in kept]
    query: dict[str, Any] = {"orgId": None, "active": True}
    if refs:
        query["$nor"] = refs
    return await _providers(db).find(query).sort("name", 1).to_list()


async def deactivate_providers(db: Database, provider_ids: list[ObjectId], now: dt.datetime) -> None:
    """Mark providers inactive (kept, not deleted: agents may still reference them)."""
    await _providers(db).update_many({"_id": {"$in": provider_ids}}, {"$set": {"active": False, "updatedAt": now}})


async def list_globals_of_type(db: Database, provider_key: str) -> list[ProviderDoc]:
    """The global providers of one provider type, one per category it has."""
    return await _providers(db).find({"orgId": None, "providerKey": provider_key}).to_list()


async def active_ids_of_type(db: Database, provider_key: str) -> list[ObjectId]:
    """The ids of the active providers of one type, global or any org's."""
    cursor = _providers(db).find({"providerKey": provider_key, "active": True}, {"_id": 1})
    return [provider["_id"] async for provider in cursor]


# --- the start-up migration (voicex/agents/migration.py) ---------------------------------------------------------


async def list_in_category(db: Database, category: Category) -> list[ProviderDoc]:
    """Every provider of one category, global or any org's."""
    return await _providers(db).find({"category": category}).to_list()


async def migrate_provider_once(db: Database, provider_id: ObjectId, version: int, fields: ProviderDoc) -> None:
    """Set ``fields`` (which bring the provider to ``version``) unless another process already did: a
    compare-and-set on ``schemaVersion``."""
    await _providers(db).update_one({"_id": provider_id, "schemaVersion": {"$ne": version}}, {"$set": fields})
