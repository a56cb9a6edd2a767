"""Usage accounting: the per-org daily usage documents that analytics and admission both read.

One document per org and UTC day (``date`` = "YYYY-MM-DD"), incremented atomically when a call ends.
"""

from __future__ import annotations

import datetime as dt

from bson import ObjectId

from voicex.db import Database

USAGE_FIELDS = ("calls", "minutes", "tokens", "ttsChars")


def day_key(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d")


def month_start(moment: dt.datetime) -> dt.datetime:
    moment = moment.astimezone(dt.UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def add_usage(db: Database, org_id: ObjectId, moment: dt.datetime, **amounts: float) -> None:
    """Atomically add ``calls``/``minutes``/``tokens``/``ttsChars`` to the org's day document."""
    unknown = set(amounts) - set(USAGE_FIELDS)
    if unknown:
        raise ValueError(f"unknown usage fields: {sorted(unknown)}")
    await db.usage_daily.update_one(
        {"orgId": org_id, "date": day_key(moment)},
        {"$inc": {name: amounts.get(name, 0) for name in USAGE_FIELDS}},
        upsert=True,
    )


async def minutes_used_this_month(db: Database, org_id: ObjectId, now: dt.datetime | None = None) -> float:
    """Minutes the org has used since the first of the current UTC month."""
    now = now or dt.datetime.now(dt.UTC)
    cursor = await db.usage_daily.aggregate(
        [
            {"$match": {"orgId": org_id, "date": {"$gte": day_key(month_start(now))}}},
            {"$group": {"_id": None, "minutes": {"$sum": "$minutes"}}},
        ]
    )
    rows = await cursor.to_list()
    return float(rows[0]["minutes"]) if rows else 0.0
