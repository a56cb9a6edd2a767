"""The ``users`` collection: an organization's members, and the platform admins (who belong to no organization).

A unique index on ``email`` is what makes an email one account, even for two sign-ups at the same moment.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, Required, TypedDict, cast

from bson import ObjectId
from pymongo import ASCENDING
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
    """Replace the user's password hash; the user (without the hash), or None when no user has the email."""
    return await _users(db).find_one_and_update(
        {"email": email},
        {"$set": {"passwordHash": password_hash, "updatedAt": now}},
        projection={"passwordHash": 0},
    )
