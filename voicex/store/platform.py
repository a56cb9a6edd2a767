"""The ``platform`` collection: deployment-wide records, one document each under a fixed ``_id``.

The only one so far is the shared-secrets record (what it holds and why: voicex/server/shared_secrets.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Required, TypedDict, cast

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from voicex.store.db import Database, IndexSpec

SHARED_SECRETS_ID = "sharedSecrets"


class SharedSecretsRecord(TypedDict, total=False):
    _id: Required[str]  # SHARED_SECRETS_ID
    salt: Required[str]
    recordedAt: dt.datetime
    recordedBy: str  # the host name of the process that recorded it
    jwtSecret: str  # a fingerprint of VOICEX_JWT_SECRET, never the secret
    encryptionKey: str  # a fingerprint of VOICEX_ENCRYPTION_KEY, never the key


INDEXES: tuple[IndexSpec, ...] = ()  # found by _id only


def _records(db: Database) -> AsyncCollection[SharedSecretsRecord]:
    """The collection, typed with its documents (Database holds every collection as plain dicts)."""
    return cast("AsyncCollection[SharedSecretsRecord]", db.platform)


async def record_shared_secrets(db: Database, record: SharedSecretsRecord) -> SharedSecretsRecord | None:
    """Insert ``record`` unless one is already stored: None when inserted, else the stored one.

    Insert-if-absent, so two first starts race safely: one inserts, the other reads the winner's.
    """
    while True:
        try:
            await _records(db).insert_one(record)
            return None
        except DuplicateKeyError:
            stored = await _records(db).find_one({"_id": record["_id"]})
        if stored is not None:
            return stored
        # deleted in between (a rotation): try again, ours is as good as any


async def replace_fingerprint(db: Database, field: str, recorded: str, newest: str) -> bool:
    """Record ``newest`` for ``field`` if ``recorded`` is still there (a key rotation); whether this call did."""
    result = await _records(db).update_one({"_id": SHARED_SECRETS_ID, field: recorded}, {"$set": {field: newest}})
    return result.modified_count == 1


async def shared_secrets(db: Database) -> SharedSecretsRecord | None:
    """The shared-secrets record, if a server has written it."""
    return await _records(db).find_one({"_id": SHARED_SECRETS_ID})
