"""The ``api_keys`` collection: an organization's keys, stored as a sha256 hash and a display prefix only.

A leaked database then leaks no key. Keys are found by hash (unique index) on every request that sends one.
A key's ``scopes`` say what it may do: ``full`` (the dashboard API and Twilio's webhooks; the default, and what a
key without the field means) or ``twilio`` (only Twilio's webhooks: a URL in Twilio's console and in proxy logs
that can admit calls and nothing else).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, Required, TypedDict, cast

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from voicex.store.db import Database, IndexSpec

Scope = Literal["full", "twilio"]
FULL: Scope = "full"
TWILIO: Scope = "twilio"


class ApiKey(TypedDict, total=False):
    _id: ObjectId  # set on insert
    orgId: Required[ObjectId]
    name: Required[str]
    keyHash: Required[str]  # sha256 hex of the raw key (voicex.web.auth.hash_api_key)
    keyPrefix: str  # "vx_" and the key's first 8 hex digits, to tell keys apart
    createdAt: dt.datetime
    lastUsedAt: dt.datetime | None  # touched at most once a minute
    createdBy: ObjectId | None  # the user; None when made with an API key or by the demo
    scopes: list[Scope]  # absent: ["full"] (keys made before scopes existed)


INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec("api_keys", (("keyHash", ASCENDING),), "key_hash_unique", {"unique": True}),
    IndexSpec("api_keys", (("orgId", ASCENDING), ("createdAt", DESCENDING)), "org_created"),
)


def _api_keys(db: Database) -> AsyncCollection[ApiKey]:
    """The collection, typed with its documents (Database holds every collection as plain dicts)."""
    return cast("AsyncCollection[ApiKey]", db.api_keys)


def scopes_of(key: ApiKey) -> list[Scope]:
    return list(key.get("scopes") or [FULL])


def allows_dashboard(key: ApiKey) -> bool:
    """Only full keys reach the dashboard API; a ``twilio`` key is good for Twilio's webhooks alone."""
    return FULL in scopes_of(key)


async def insert(db: Database, key: ApiKey) -> ApiKey:
    """``key`` with its new ``_id``."""
    key["_id"] = (await _api_keys(db).insert_one(key)).inserted_id
    return key


async def list_for_org(db: Database, org_id: ObjectId) -> list[ApiKey]:
    """The org's keys, newest first (the id breaks ties between keys made in the same millisecond)."""
    cursor = _api_keys(db).find({"orgId": org_id}).sort([("createdAt", -1), ("_id", -1)])
    return [key async for key in cursor]


async def count_for_org(db: Database, org_id: ObjectId) -> int:
    return await _api_keys(db).count_documents({"orgId": org_id})


async def find_by_hash(db: Database, key_hash: str) -> ApiKey | None:
    return await _api_keys(db).find_one({"keyHash": key_hash})


async def find_org_id(db: Database, key_hash: str) -> ObjectId | None:
    """The organization of the key with that hash (only its id is read: Twilio webhooks need no more)."""
    key = await _api_keys(db).find_one({"keyHash": key_hash}, projection={"orgId": 1})
    return key["orgId"] if key else None


async def get(db: Database, org_id: ObjectId, key_id: ObjectId) -> ApiKey | None:
    return await _api_keys(db).find_one({"_id": key_id, "orgId": org_id})


async def touch_last_used(db: Database, key_id: ObjectId, now: dt.datetime) -> None:
    await _api_keys(db).update_one({"_id": key_id}, {"$set": {"lastUsedAt": now}})


async def delete(db: Database, org_id: ObjectId, key_id: ObjectId) -> bool:
    """False when the org has no such key (another org's key is not found, never deleted)."""
    result = await _api_keys(db).delete_one({"_id": key_id, "orgId": org_id})
    return result.deleted_count > 0
