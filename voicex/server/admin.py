"""Platform administration outside HTTP: the platform admin (``voicex admin create``) and password resets."""

from __future__ import annotations

import datetime as dt

from pymongo.errors import DuplicateKeyError

from voicex.platform.errors import VoicexError
from voicex.platform.passwords import check_password, hash_password, normalize_email
from voicex.store import users
from voicex.store.db import Database
from voicex.store.users import User


async def create_platform_admin(db: Database, email: str, password: str, name: str = "Platform admin") -> User:
    """Insert a platform admin user; VoicexError if the email is invalid, taken, or the password too short."""
    try:
        email = normalize_email(email)
        check_password(password)
    except ValueError as exc:
        raise VoicexError(str(exc)) from None
    user: User = {
        "email": email,
        "name": name,
        "passwordHash": hash_password(password),
        "platformAdmin": True,
        "orgId": None,
        "role": "platform_admin",
        "createdAt": dt.datetime.now(dt.UTC),
    }
    try:
        return await users.insert(db, user)
    except DuplicateKeyError:
        raise VoicexError(f"a user with email {email} already exists") from None


async def reset_password(db: Database, email: str, password: str) -> User:
    """Set a new password for any user (a platform admin who lost theirs has no other way back in).

    VoicexError if the email is invalid, no user has it, or the password is too short.
    """
    try:
        email = normalize_email(email)
        check_password(password)
    except ValueError as exc:
        raise VoicexError(str(exc)) from None
    user = await users.set_password_hash(db, email, hash_password(password), dt.datetime.now(dt.UTC))
    if user is None:
        raise VoicexError(f"no user with email {email}")
    return user
