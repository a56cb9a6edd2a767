"""Platform administration outside HTTP: the platform admin (``voicex admin create``), password resets and the
re-encryption of stored secrets after a key rotation (``voicex admin rotate-key``)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from pymongo.errors import DuplicateKeyError

from voicex.platform.crypto import SecretBox
from voicex.platform.errors import SetupError, VoicexError
from voicex.platform.passwords import check_password, hash_password, normalize_email
from voicex.platform.settings import Settings, existing_encryption_key
from voicex.server.shared_secrets import check_encryption_key
from voicex.store import users
from voicex.store.db import Database
from voicex.store.rekey import rekey
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


async def rotate_key(db: Database, settings: Settings) -> dict[str, Counter[str]]:
    """Re-encrypt every stored secret with the newest VOICEX_ENCRYPTION_KEY key (voicex/store/rekey.py).

    The keys must include the one the servers record (else VoicexError: this is the wrong key ring), and the
    record then names the newest key, so a process that lacks it is refused at start.
    """
    keys = existing_encryption_key(settings)
    if keys is None:
        raise SetupError(
            f"no encryption key: set VOICEX_ENCRYPTION_KEY (the new key first, then the old ones, comma-separated),"
            f" or VOICEX_ENCRYPTION_KEY_FILE, as the server has them (looked for {settings.encryption_key_path})"
        )
    await check_encryption_key(db, settings.model_copy(update={"encryption_key": keys}))
    return await rekey(db, SecretBox(keys))
