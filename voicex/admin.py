"""Platform administration outside HTTP: creating the platform admin (``voicex admin create``)."""

from __future__ import annotations

import datetime as dt

from pymongo.errors import DuplicateKeyError

from voicex.db import Database, Document
from voicex.errors import VoicexError
from voicex.passwords import check_password, hash_password, normalize_email


async def create_platform_admin(db: Database, email: str, password: str, name: str = "Platform admin") -> Document:
    """Insert a platform admin user; VoicexError if the email is invalid, taken, or the password too short."""
    try:
        email = normalize_email(email)
        check_password(password)
    except ValueError as exc:
        raise VoicexError(str(exc)) from None
    user: Document = {
        "email": email,
        "name": name,
        "passwordHash": hash_password(password),
        "platformAdmin": True,
        "orgId": None,
        "role": "platform_admin",
        "createdAt": dt.datetime.now(dt.UTC),
    }
    try:
        result = await db.users.insert_one(user)
    except DuplicateKeyError:
        raise VoicexError(f"a user with email {email} already exists") from None
    user["_id"] = result.inserted_id
    return user
