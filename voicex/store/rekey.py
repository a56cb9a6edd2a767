"""Re-encrypt every stored secret with the newest encryption key (``voicex admin rotate-key``).

One generic walk instead of a list of fields: every string of every document in every collection that has the
shape of a Fernet token is offered to the key ring, so a secret field added later is rotated without anyone
remembering to list it here. Already current values are left alone (the command is idempotent), and each write
is conditional on the old value, so a secret changed meanwhile through the API is never overwritten.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from voicex.platform.crypto import SecretBox, looks_encrypted
from voicex.platform.errors import VoicexError
from voicex.store.db import Database

REKEYED, CURRENT, UNREADABLE = "re-encrypted", "already current", "unreadable"


def encrypted_values(document: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, token) of every Fernet-shaped string inside ``document`` (nested documents and lists too)."""
    if isinstance(document, dict):
        items: Any = document.items()
    elif isinstance(document, list):
        items = enumerate(document)
    else:
        if isinstance(document, str) and looks_encrypted(document):
            yield path, document
        return
    for key, value in items:
        yield from encrypted_values(value, f"{path}.{key}" if path else str(key))


async def rekey(db: Database, box: SecretBox) -> dict[str, Counter[str]]:
    """Re-encrypt with ``box``'s newest key; per ``collection.field``, how many were re-encrypted, already
    current, or readable by none of the keys."""
    report: dict[str, Counter[str]] = {}
    for name in sorted(await db.db.list_collection_names()):
        collection = db.db[name]
        async for document in collection.find({}):
            for path, token in encrypted_values(document):
                field = ".".join(part for part in path.split(".") if not part.isdigit())  # list positions aside
                counts = report.setdefault(f"{name}.{field}", Counter())
                try:
                    fresh = box.rotate(token)
                except VoicexError:
                    counts[UNREADABLE] += 1
                    continue
                if fresh is None:
                    counts[CURRENT] += 1
                    continue
                result = await collection.update_one({"_id": document["_id"], path: token}, {"$set": {path: fresh}})
                counts[REKEYED if result.modified_count else CURRENT] += 1
    return report
