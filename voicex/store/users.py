"""The ``users`` collection: an organization's members, and the platform admins (who belong to no organization).

A unique index on ``email`` is what makes an email one account, even for two sign-ups at the same moment.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, Required, TypedDict, cast

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from voicex.store.db import Database, IndexSpec

Role = Literal["admin", "member", "platform_admin"]


class User(TypedDict, total=False):
    _id: ObjectId  # set on insert
    email: Required[str]  # normalized (voicex.platform.passwords.normalize_email)
    orgId: ObjectId | None  # None for a platform admin
    name: str
    role: Role
    platformAdmin: bool
    passwordHash: str  # never leaves the server (voicex/web/presenters.py)
    tokenVersion: int  # in every session token; bumped to revoke them all (absent: 0)
    createdAt: dt.datetime
    updatedAt: dt.datetime
    lastLoginAt: dt.datetime


INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec("users", (("email", ASCENDING),), "email_unique", {"unique": True}),
    IndexSpec("users", (("orgId", ASCENDING),), "org"),
)


def _users(db: Database) -> AsyncCollection[User]:
    """The collection, typed with its documents (Database holds every collection as plain dicts)."""
    return cast("AsyncCollection[User]", db.users)


async def insert(db: Database, user: User) -> User:
    """``user`` with its new ``_id``; DuplicateKeyError when the email is taken (the unique index decides)."""
    user["_id"] = (await _users(db).insert_one(user)).inserted_id
    return user


async def email_taken(db: Database, email: str) -> bool:
    return await _users(db).find_one({"email": email}, projection={"_id": 1}) is not None


async def find_by_email(db: Database, email: str) -> User | None:
    return await _users(db).find_one({"email": email})


async def find_by_id(db: Database, user_id: ObjectId) -> User | None:
    return await _users(db).find_one({"_id": user_id})


async def platform_admin_exists(db: Database) -> bool:
    return await _users(db).find_one({"platformAdmin": True}, projection={"_id": 1}) is not None


async def touch_last_login(db: Database, user_id: ObjectId, now: dt.datetime) -> None:
    await _users(db).update_one({"_id": user_id}, {"$set": {"lastLoginAt": now}})


async def set_password_hash(db: Database, email: str, password_hash: str, now: dt.datetime) -> User | None:
    """Replace the user's password hash and end their sessions; the user (without the hash), or None when no user
    has the email."""
    return await _users(db).find_one_and_update(
        {"email": email},
        {"$set": {"passwordHash": password_hash, "updatedAt": now}, "$inc": {"tokenVersion": 1}},
        projection={"passwordHash": 0},
        return_document=ReturnDocument.AFTER,
    )


async def change_password(db: Database, user_id: ObjectId, password_hash: str, now: dt.datetime) -> User | None:
    """Replace the user's password hash and end all their sessions; the user after, or None when gone."""
    return await _users(db).find_one_and_update(
        {"_id": user_id},
        {"$set": {"passwordHash": password_hash, "updatedAt": now}, "$inc": {"tokenVersion": 1}},
        return_document=ReturnDocument.AFTER,
    )


async def revoke_sessions(db: Database, user_id: ObjectId) -> bool:
    """End every session of the user (their tokens carry the old version); False when the user is gone."""
    result = await _users(db).update_one({"_id": user_id}, {"$inc": {"tokenVersion": 1}})
    return result.matched_count == 1
