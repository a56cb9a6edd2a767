"""The ``organizations`` collection: the tenants, their status, plan and Twilio credentials.

Their plan-limit counters (``agentCount``, ``customProviderCount``) are written by voicex/store/quotas.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, Required, TypedDict, cast

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from voicex.store import api_keys, users
from voicex.store.db import Database, IndexSpec
from voicex.store.users import User

Status = Literal["pending", "active", "suspended"]


class TwilioCredentials(TypedDict):
    accountSid: str
    authToken: str  # encrypted with the server's key (voicex.platform.crypto.SecretBox)


class Organization(TypedDict, total=False):
    _id: ObjectId  # set on insert
    name: Required[str]
    status: Status  # pending until a platform admin activates it
    planSlug: str  # a plan removed from config/plans.yaml reads as the default plan
    twilio: TwilioCredentials | None
    demo: bool  # the ``voicex demo`` tenant
    agentCount: int  # voicex/store/quotas.py
    customProviderCount: int  # voicex/store/quotas.py
    createdAt: dt.datetime
    updatedAt: dt.datetime


INDEXES: tuple[IndexSpec, ...] = ()  # looked up by _id; the admin list and the demo lookup are rare scans


def _organizations(db: Database) -> AsyncCollection[Organization]:
    """The collection, typed with its documents (Database holds every collection as plain dicts)."""
    return cast("AsyncCollection[Organization]", db.organizations)


async def insert(db: Database, org: Organization) -> Organization:
    """``org`` with its new ``_id``."""
    org["_id"] = (await _organizations(db).insert_one(org)).inserted_id
    return org


async def create_with_admin(db: Database, org: Organization, admin: User) -> tuple[Organization, User] | None:
    """Insert the org, then its first user (``admin``, given the org's id); None when the email is taken.

    The unique email index settles two sign-ups with one email: the loser deletes its org, so none is left
    without a user.
    """
    org = await insert(db, org)
    admin["orgId"] = org["_id"]
    try:
        admin = await users.insert(db, admin)
    except DuplicateKeyError:
        await _organizations(db).delete_one({"_id": org["_id"]})
        return None
    return org, admin


async def find_by_id(db: Database, org_id: ObjectId) -> Organization | None:
    return await _organizations(db).find_one({"_id": org_id})


async def find_by_api_key(db: Database, key_hash: str) -> Organization | None:
    """The organization of the API key with that hash, if both exist."""
    org_id = await api_keys.find_org_id(db, key_hash)
    return await find_by_id(db, org_id) if org_id is not None else None


async def find_demo(db: Database) -> Organization | None:
    return await _organizations(db).find_one({"demo": True})


async def list_page(db: Database, status: Status | None, skip: int, limit: int) -> tuple[int, list[Organization]]:
    """How many orgs have ``status`` (any when None), and a page of them, newest first."""
    query: dict[str, Any] = {} if status is None else {"status": status}
    total = await _organizations(db).count_documents(query)
    cursor = _organizations(db).find(query).sort("createdAt", -1).skip(skip).limit(limit)
    return total, [org async for org in cursor]


async def _set(db: Database, org_id: ObjectId, fields: dict[str, Any]) -> Organization | None:
    return await _organizations(db).find_one_and_update(
        {"_id": org_id}, {"$set": fields}, return_document=ReturnDocument.AFTER
    )


async def set_status_and_plan(
    db: Database, org_id: ObjectId, status: Status | None, plan_slug: str | None, now: dt.datetime
) -> Organization | None:
    """Set what is not None (a platform admin's decision); the org as now stored, None when there is no such org."""
    fields: dict[str, Any] = {"updatedAt": now}
    if status is not None:
        fields["status"] = status
    if plan_slug is not None:
        fields["planSlug"] = plan_slug
    return await _set(db, org_id, fields)


async def set_name_and_twilio(
    db: Database, org_id: ObjectId, name: str | None, twilio: TwilioCredentials | None, now: dt.datetime
) -> Organization | None:
    """Set what is not None (the org's own settings); the org as now stored, None when there is no such org."""
    fields: dict[str, Any] = {"updatedAt": now}
    if name is not None:
        fields["name"] = name
    if twilio is not None:
        fields["twilio"] = twilio
    return await _set(db, org_id, fields)


async def activate_with_twilio(db: Database, org_id: ObjectId, twilio: TwilioCredentials) -> None:
    """Make the org active with these Twilio credentials (the demo tenant, at every ``voicex demo``)."""
    await _organizations(db).update_one({"_id": org_id}, {"$set": {"status": "active", "twilio": twilio}})
