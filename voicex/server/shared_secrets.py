"""Every process on one database must sign and encrypt with the same secrets: checked at start-up, not per call.

A process with its own ``VOICEX_JWT_SECRET`` rejects the others' sign-in and stream tokens (401), and one with its
own ``VOICEX_ENCRYPTION_KEY`` cannot decrypt stored credentials (500 on every Twilio webhook). The first process
to start on a database records a fingerprint of each secret (an HMAC keyed by the secret, over a random salt:
never the secret, and not comparable between deployments); every later one refuses to start unless its own
match. The fingerprints are pure functions; the record's reads and writes are in voicex/store/platform.py.
VOICEX_ENCRYPTION_KEY may list several keys (newest first): its fingerprint is the newest key's, a process whose
older keys include the recorded one is a key rotation and records its newest, and from then on a process that
lacks the new key is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import socket
from collections.abc import Set as AbstractSet
from typing import Literal

from voicex.platform.crypto import fernet_keys
from voicex.platform.errors import SetupError
from voicex.platform.settings import Settings
from voicex.store import platform
from voicex.store.db import Database
from voicex.store.platform import SharedSecretsRecord

log = logging.getLogger(__name__)

_KEY = "VOICEX_ENCRYPTION_KEY"

# record field -> (the settings attribute, the variable that sets it)
SECRETS: dict[Literal["jwtSecret", "encryptionKey"], tuple[str, str]] = {
    "jwtSecret": ("jwt_secret", "VOICEX_JWT_SECRET"),
    "encryptionKey": ("encryption_key", "VOICEX_ENCRYPTION_KEY"),
}


def fingerprint(secret: str, salt: str, field: str) -> str:
    """HMAC-SHA256 keyed by the secret: equal for equal secrets under one salt, and reveals nothing of the secret."""
    return hmac.new(secret.encode(), f"voicex {field} {salt}".encode(), hashlib.sha256).hexdigest()


def _keys(settings: Settings, attribute: str) -> list[str]:
    """The secret's values, newest first: several only for the encryption key (rotation), else one."""
    value = getattr(settings, attribute) or ""
    return fernet_keys(value) if attribute == "encryption_key" and value else [value]


def new_record(settings: Settings, salt: str, now: dt.datetime) -> SharedSecretsRecord:
    """The record the first process writes: the salt and its secrets' fingerprints, and who recorded them when."""
    record: SharedSecretsRecord = {
        "_id": platform.SHARED_SECRETS_ID,
        "salt": salt,
        "recordedAt": now,
        "recordedBy": socket.gethostname(),
    }
    for field, (attribute, _) in SECRETS.items():
        record[field] = fingerprint(_keys(settings, attribute)[0], salt, field)
    return record


def differing(record: SharedSecretsRecord, settings: Settings) -> list[str]:
    """The variables whose value in ``settings`` is not the recorded one."""
    return [
        variable
        for field, (attribute, variable) in SECRETS.items()
        if record.get(field) is not None
        and not any(
            hmac.compare_digest(record[field], fingerprint(key, record["salt"], field))
            for key in _keys(settings, attribute)
        )
    ]


def rotated_encryption_key(record: SharedSecretsRecord, settings: Settings) -> str | None:
    """The newest key's fingerprint when the record holds an older key of this process's (a rotation), else None."""
    recorded, keys = record.get("encryptionKey"), _keys(settings, "encryption_key")
    newest = fingerprint(keys[0], record["salt"], "encryptionKey")
    if recorded is None or hmac.compare_digest(recorded, newest) or _KEY in differing(record, settings):
        return None
    return newest


_CONSEQUENCE = {
    "VOICEX_JWT_SECRET": "the sign-in and stream tokens it issues would be rejected by the others, and theirs by it"
    " (401)",
    "VOICEX_ENCRYPTION_KEY": "it could not decrypt the provider credentials and Twilio tokens stored by the others"
    " (500 on every Twilio webhook)",
}


def mismatch_message(
    names: list[str], record: SharedSecretsRecord, settings: Settings, generated: AbstractSet[str]
) -> str:
    """What is wrong, what it would break, and the fix; says so when this process generated its own secrets."""
    recorded_at = record.get("recordedAt")
    when = f" on {record.get('recordedBy', '?')} at {recorded_at:%Y-%m-%d %H:%M} UTC" if recorded_at else ""
    which = " and ".join(names)
    own = [name for name in names if name in generated]
    cause = ""
    if own:
        unset = "they are" if len(own) > 1 else "it is"
        cause = f" This process generated its own in {settings.secrets_dir.absolute()} because {unset} not set."
    return (
        f"this process's {which} differ{'' if len(names) > 1 else 's'} from the one{'s' if len(names) > 1 else ''}"
        f" the other Voicex processes on database {settings.db_name!r} use (recorded by the first to start{when}):"
        f" {'; '.join(_CONSEQUENCE[name] for name in names)}.{cause} Set the same VOICEX_JWT_SECRET and"
        " VOICEX_ENCRYPTION_KEY on every process that shares the database (see docs/deployment.md)."
    )


async def check_shared_secrets(db: Database, settings: Settings, generated: AbstractSet[str] = frozenset()) -> None:
    """Record this process's fingerprints if none are (insert-if-absent: two first starts race safely), else
    raise SetupError unless they match. ``generated``: the variables this process filled from its data dir."""
    stored = await platform.record_shared_secrets(
        db, new_record(settings, secrets.token_hex(16), dt.datetime.now(dt.UTC))
    )
    if stored is None:
        return
    names = differing(stored, settings)
    if names:
        raise SetupError(mismatch_message(names, stored, settings, generated))
    await _record_rotation(db, stored, settings)


async def check_encryption_key(db: Database, settings: Settings) -> None:
    """For ``voicex admin rotate-key``, which holds the encryption keys only: SetupError unless they include the
    recorded one, and a newer first key is recorded (from then on a process without it is refused at start)."""
    stored = await platform.shared_secrets(db)
    if stored is None:
        return  # no server has recorded one: nothing to compare with
    if _KEY in differing(stored, settings):
        raise SetupError(
            f"none of the {_KEY} keys given is the one the servers on database {settings.db_name!r} use: give the"
            " new key first and the current one after it (comma-separated), as the servers have them"
        )
    await _record_rotation(db, stored, settings)


async def _record_rotation(db: Database, stored: SharedSecretsRecord, settings: Settings) -> None:
    newest = rotated_encryption_key(stored, settings)
    if newest is not None and await platform.replace_fingerprint(db, "encryptionKey", stored["encryptionKey"], newest):
        log.warning(
            "VOICEX_ENCRYPTION_KEY has a new newest key: it encrypts from now on, and processes without it are"
            " refused at start. Run `voicex admin rotate-key` to re-encrypt what the older keys encrypted."
        )


def generated_secrets(settings: Settings) -> set[str]:
    """The secret variables unset in ``settings`` (before ``ensure_secrets`` fills them)."""
    return {variable for attribute, variable in SECRETS.values() if getattr(settings, attribute) is None}
