"""MongoDB access: one async client and its collections (their indexes: voicex/store/indexes.py).

Only standard MongoDB operations are used, so the embedded SecantusDB and a real ``mongod`` behave alike.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient
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
            # On a replica set (several servers, docs/deployment.md): a write is acknowledged once a majority
            # holds it, so a failover never rolls back an admitted call's slot, a finalized call or its usage;
            # reads see only such writes; a write or read cut by a failover is retried once on the new primary.
            # A standalone server (the embedded one) treats both concerns as its own acknowledgement.
            w="majority",
            readConcernLevel="majority",
            retryWrites=True,
            retryReads=True,
            event_listeners=[self.pool],
        )
        self.db: AsyncDatabase[Document] = self.client[name]

        # One attribute per collection, so a misspelt name fails the type check instead of creating a collection.
        self.organizations: AsyncCollection[Document] = self.db["organizations"]
        self.users: AsyncCollection[Document] = self.db["users"]
        self.agents: AsyncCollection[Document] = self.db["agents"]
        self.providers: AsyncCollection[Document] = self.db["providers"]
        self.api_keys: AsyncCollection[Document] = self.db["api_keys"]
        self.calls: AsyncCollection[Document] = self.db["calls"]
        self.usage_daily: AsyncCollection[Document] = self.db["usage_daily"]
        self.call_slots: AsyncCollection[Document] = self.db["call_slots"]
        self.rate_limits: AsyncCollection[Document] = self.db["rate_limits"]
        self.server_instances: AsyncCollection[Document] = self.db["server_instances"]
        self.platform: AsyncCollection[Document] = self.db["platform"]  # deployment-wide records, one each

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

    async def close(self) -> None:
        await self.client.close()
