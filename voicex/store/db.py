"""MongoDB access: one async client, the collection names, and the indexes (created idempotently at start).

Only standard MongoDB operations are used, so the embedded SecantusDB and a real ``mongod`` behave alike.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from voicex.store.pool import PoolStats

Document = dict[str, Any]


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    keys: tuple[tuple[str, int], ...]
    name: str
    options: dict[str, Any] = field(default_factory=dict)


# Every collection the server uses, by attribute name on Database.
COLLECTIONS = (
    "organizations",
    "users",
    "agents",
    "providers",
    "api_keys",
    "calls",
    "usage_daily",
    "call_slots",
    "rate_limits",
    "server_instances",
    "platform",  # deployment-wide records, one document each (voicex/server/shared_secrets.py)
)

INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec("users", (("email", ASCENDING),), "email_unique", {"unique": True}),
    IndexSpec("users", (("orgId", ASCENDING),), "org"),
    IndexSpec("api_keys", (("keyHash", ASCENDING),), "key_hash_unique", {"unique": True}),
    IndexSpec("api_keys", (("orgId", ASCENDING), ("createdAt", DESCENDING)), "org_created"),
    IndexSpec("providers", (("orgId", ASCENDING), ("name", ASCENDING)), "org_name_unique", {"unique": True}),
    IndexSpec("agents", (("orgId", ASCENDING), ("createdAt", DESCENDING)), "org_created"),
    IndexSpec("agents", (("orgId", ASCENDING), ("phoneNumbers", ASCENDING)), "org_phone"),
    # A number routes to one agent per org, even when two writes claim it at once (other key order than
    # org_phone, so MongoDB sees a different index; agents without numbers are left out).
    IndexSpec(
        "agents",
        (("phoneNumbers", ASCENDING), ("orgId", ASCENDING)),
        "phone_org_unique",
        {"unique": True, "partialFilterExpression": {"phoneNumbers": {"$type": "string"}}},
    ),
    IndexSpec("calls", (("orgId", ASCENDING), ("startedAt", DESCENDING)), "org_started"),
    IndexSpec("calls", (("callSid", ASCENDING),), "call_sid"),
    IndexSpec("calls", (("status", ASCENDING), ("leaseExpiresAt", ASCENDING)), "status_lease"),
    # The janitor's look for usage a crash left uncounted, every 15 s: without it, a scan of every call ever made.
    IndexSpec(
        "calls",
        (("usagePending", ASCENDING), ("endedAt", ASCENDING)),
        "usage_pending",
        {"partialFilterExpression": {"usagePending": True}},
    ),
    IndexSpec(
        "usage_daily",
        (("orgId", ASCENDING), ("date", ASCENDING), ("shard", ASCENDING)),
        "org_date_shard_unique",
        {"unique": True},
    ),
    IndexSpec("call_slots", (("orgId", ASCENDING), ("leaseExpiresAt", ASCENDING)), "org_lease"),
    # Slot release at each call's end and lease renewal find slots by call, across all orgs.
    IndexSpec("call_slots", (("callId", ASCENDING),), "call"),
    IndexSpec("rate_limits", (("expiresAt", ASCENDING),), "expires_ttl", {"expireAfterSeconds": 0}),
)

# Indexes an earlier version created that now stand in the way: one unique (org, date) usage document per day
# would refuse the day's other shards (voicex/store/usage.py).
OBSOLETE_INDEXES: tuple[tuple[str, str], ...] = (("usage_daily", "org_date_unique"),)


class Database:
    """The server's MongoDB handle. Construct once per process; ``close()`` on shutdown."""

    def __init__(self, uri: str, name: str, server_selection_timeout_ms: int = 5000) -> None:
        self.uri = uri
        self.pool = PoolStats()
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri,
            tz_aware=True,
            serverSelectionTimeoutMS=server_selection_timeout_ms,
            connectTimeoutMS=2000,
            appname="voicex",
            # A burst (many calls ending at once, or a starved loop catching up) grows the pool; without an idle
            # limit it never shrinks again (the soak saw 18 → 40 connections for good). A minute idle closes one.
            maxIdleTimeMS=60_000,
            event_listeners=[self.pool],
        )
        self.db: AsyncDatabase[Document] = self.client[name]

    def __getattr__(self, name: str) -> AsyncCollection[Document]:
        if name in COLLECTIONS:
            return self.db[name]
        raise AttributeError(name)

    async def ping(self, timeout: float = 2.0) -> None:
        """Raise if the server does not answer within ``timeout`` seconds."""
        await asyncio.wait_for(self.client.admin.command("ping"), timeout)

    async def check(self, timeout: float = 2.0) -> str:
        """``"ok"`` or a short reason; used by /api/ready."""
        try:
            await self.ping(timeout)
        except TimeoutError:
            return f"no answer within {timeout:g} s"
        except PyMongoError as exc:
            return f"error: {type(exc).__name__}"
        return "ok"

    async def ensure_indexes(self) -> None:
        """Create every index in INDEXES and drop the ones it replaced; a no-op when that is done."""
        for collection, name in OBSOLETE_INDEXES:
            if name in await self.db[collection].index_information():
                await self.db[collection].drop_index(name)
        for spec in INDEXES:
            await self.db[spec.collection].create_index(list(spec.keys), name=spec.name, **spec.options)

    async def close(self) -> None:
        await self.client.close()
