"""Every index the server relies on, created idempotently at start-up (and the ones a change made obsolete).

Each collection's module under voicex/store/ owns its specs; this module only gathers them and applies them.
"""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

from voicex.store import agents, api_keys, calls, organizations, platform, providers, rate_limits, users
from voicex.store.db import Database, IndexSpec

INDEXES: tuple[IndexSpec, ...] = (
    *organizations.INDEXES,
    *users.INDEXES,
    *api_keys.INDEXES,
    *providers.INDEXES,
    *agents.INDEXES,
    IndexSpec("calls", (("orgId", ASCENDING), ("startedAt", DESCENDING)), "org_started"),
    IndexSpec("calls", (("callSid", ASCENDING),), "call_sid"),
    IndexSpec("calls", (("status", ASCENDING), ("leaseExpiresAt", ASCENDING)), "status_lease"),
    *calls.INDEXES,
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
    *rate_limits.INDEXES,
    *platform.INDEXES,
)

# Indexes an earlier version created that now stand in the way: one unique (org, date) usage document per day
# would refuse the day's other shards (voicex/store/usage.py).
OBSOLETE_INDEXES: tuple[tuple[str, str], ...] = (("usage_daily", "org_date_unique"),)


async def ensure_indexes(db: Database) -> None:
    """Create every index in INDEXES and drop the ones it replaced; a no-op when that is done (one request per
    collection)."""
    for collection, name in OBSOLETE_INDEXES:
        if name in await db.db[collection].index_information():
            await db.db[collection].drop_index(name)
    await calls.rename_duplicate_sids(db)  # once, before its unique index is first built
    by_collection: dict[str, list[IndexModel]] = {}
    for spec in INDEXES:
        by_collection.setdefault(spec.collection, []).append(
            IndexModel(list(spec.keys), name=spec.name, **spec.options)
        )
    for collection, models in by_collection.items():
        await db.db[collection].create_indexes(models)
