"""The call record's life: created active at admission, lease renewed while it runs, finalized exactly once.

Finalizing flips ``status`` from ``active`` in one conditional update, so whichever path gets there first
(stream stop, socket drop, silence, max duration, status callback, the janitor after a crash) wins and
the others do nothing. Usage is then added to the org's day and the concurrency slot released.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, TypedDict

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument

from pipelines.call_config import CallResult
from voicex.store.db import Database, Document, IndexSpec
from voicex.store.instances import INSTANCE_ID, dead_instances, forget
from voicex.store.retry import FINALIZE, ONCE, retry
from voicex.store.slots import LEASE, release_slot
from voicex.store.usage import add_usage

log = logging.getLogger(__name__)

# Ends that are failures of the call, not of the conversation in it (the record's status is "failed").
FAILED_REASONS = frozenset(
    {"error", "server_lost", "provider_error", "stream_refused", "twilio_failed", "stream_never_connected"}
)
NEVER_CONNECTED = (
    "call ended without its media stream ever connecting (recorded as failed, not billed): check that the"
    " proxy in front of Voicex passes WebSocket upgrades to /api/twilio/stream and that VOICEX_PUBLIC_URL is"
    " the public URL Twilio reaches"
)
# Ends of calls that never carried a conversation: recorded, but not counted in the org's usage (not billed).
UNBILLED_REASONS = frozenset({"stream_never_connected"})


# One call per Twilio CallSid in an org: a replayed or retried voice webhook finds the call it admitted.
SID_INDEX = "org_call_sid_unique"
INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec(
        "calls",
        (("orgId", ASCENDING), ("callSid", ASCENDING)),
        SID_INDEX,
        {"unique": True, "partialFilterExpression": {"callSid": {"$gt": ""}}},
    ),
)


class CallDoc(TypedDict, total=False):
    """A call record (``calls``): created active at admission, finalized once (the fields after ``streamSid``)."""

    _id: ObjectId
    orgId: ObjectId
    agentId: ObjectId
    callSid: str
    streamSid: str | None
    direction: str
    status: str  # active | completed | failed
    startedAt: dt.datetime
    endedAt: dt.datetime
    durationSec: float
    endReason: str
    leaseExpiresAt: dt.datetime | None
    serverId: ObjectId
    streamTokenUsed: bool
    transcript: list[dict[str, Any]]
    turns: list[dict[str, Any]]
    metrics: dict[str, Any]
    summary: str
    sentiment: str
    usage: dict[str, Any]
    usagePending: bool
    errors: list[str]
    twilio: dict[str, Any]  # the latest status callback: status, sequence, duration
    refusal: str  # a call refused at admission and recorded (e.g. its plan lost a feature): why


async def create_call(db: Database, call: Document, now: dt.datetime) -> None:
    call.update(
        {
            "status": "active",
            "startedAt": now,
            "leaseExpiresAt": now + LEASE,
            "streamTokenUsed": False,
            "streamSid": None,
            "serverId": INSTANCE_ID,
            "transcript": [],
        }
    )
    await db.calls.insert_one(call)


async def finalize_call(db: Database, call_id: ObjectId, outcome: CallResult, ended_at: dt.datetime) -> bool:
    """Finalize once; True if this call did it. Also counts usage and frees the slot.

    One exception to "once": a call the janitor gave up on (``server_lost``, e.g. its process stalled past
    the lease) may still be finalized by the process that was really running it, so its transcript is kept.
    Usage is not counted twice.

    Each step is retried while MongoDB is unreachable (``voicex.store.retry``), so a database restart while calls
    end loses nothing; the janitor's own ``server_lost`` finalizations are not, its next pass is their retry.
    """
    policy = ONCE if outcome.end_reason == "server_lost" else FINALIZE
    context = {"callId": str(call_id)}
    attempt = _Finalization(db, call_id, outcome, ended_at)
    done = await retry(attempt.record, "finalize call", policy, **context)
    if done is None:
        return False  # already finalized by another path
    if attempt.reclaimed:
        log.warning("call reclaimed from the janitor with its transcript", extra=context)
        return True
    if done.get("usagePending"):
        await retry(lambda: _count_usage(db, done), "count call usage", policy, **context)
    await retry(lambda: release_slot(db, call_id), "release call slot", policy, **context)
    log.info("call finalized", extra={**context, "endReason": outcome.end_reason, "status": done["status"]})
    return True


# What finalizing reads back from the record it wrote: not the transcript, which can be tens of kB a call.
_RECORDED = {"orgId": 1, "startedAt": 1, "usage": 1, "status": 1, "usagePending": 1}


class _Finalization:
    """One finalization, retryable: a marker (``finalizeId``) written with the record lets a retry whose
    earlier attempt was applied but unanswered (the connection dropped) recognise its own win."""

    def __init__(self, db: Database, call_id: ObjectId, outcome: CallResult, ended_at: dt.datetime) -> None:
        self.db, self.call_id, self.outcome, self.ended_at = db, call_id, outcome, ended_at
        self.marker = ObjectId()
        self.reclaimed = False

    async def record(self) -> Document | None:
        """Write the final record if the call is still ours to finalize; the record written, or None."""
        outcome, calls = self.outcome, self.db.calls
        current = await calls.find_one(
            {"_id": self.call_id},
            projection={"startedAt": 1, "status": 1, "endReason": 1, "usage": 1, "finalizeId": 1},
        )
        if current is None:
            return None
        if current.get("finalizeId") == self.marker:
            return await calls.find_one({"_id": self.call_id}, projection=_RECORDED)
        reclaimed = current.get("status") != "active"
        if reclaimed and (current.get("endReason") != "server_lost" or outcome.end_reason == "server_lost"):
            return None
        duration = max(0.0, (self.ended_at - current["startedAt"]).total_seconds())
        status = "failed" if outcome.end_reason in FAILED_REASONS else "completed"
        minutes = 0.0 if outcome.end_reason in UNBILLED_REASONS else round(duration / 60, 4)
        usage = {"minutes": minutes, "tokens": outcome.usage["tokens"], "ttsChars": outcome.usage["ttsChars"]}
        update = {
            "status": status,
            "endedAt": self.ended_at,
            "durationSec": round(duration, 2),
            "endReason": outcome.end_reason,
            "transcript": outcome.transcript,
            "turns": outcome.turns,
            "metrics": outcome.metrics,
            "summary": outcome.summary,
            "sentiment": outcome.sentiment,
            "usage": usage,
            "errors": outcome.errors,
            "usagePending": outcome.end_reason not in UNBILLED_REASONS,
            "leaseExpiresAt": None,
            "finalizeId": self.marker,
        }
        if reclaimed:
            update["reclaimed"] = True  # a trace for operators: the janitor had declared this live call lost
            update.pop("usagePending")
            update["usage"]["minutes"] = current.get("usage", {}).get("minutes", usage["minutes"])
        self.reclaimed = reclaimed
        match = {"status": "active"} if not reclaimed else {"endReason": "server_lost"}
        return await calls.find_one_and_update(
            {"_id": self.call_id, **match}, {"$set": update}, projection=_RECORDED, return_document=ReturnDocument.AFTER
        )


async def _count_usage(db: Database, call: Document) -> None:
    """Add the call's usage to its org's day, then clear ``usagePending`` (the janitor retries a crash here)."""
    usage = call.get("usage") or {}
    await add_usage(
        db,
        call["orgId"],
        call["startedAt"],
        calls=1,
        minutes=usage.get("minutes", 0),
        tokens=usage.get("tokens", 0),
        ttsChars=usage.get("ttsChars", 0),
        once=call["_id"],
    )
    await db.calls.update_one({"_id": call["_id"]}, {"$set": {"usagePending": False}})


async def reap_lost_calls(db: Database, now: dt.datetime) -> int:
    """Finalize as ``server_lost`` the calls whose process is known dead or whose lease expired.

    Calls of a dead process are reclaimed at once (``voicex.store.instances``), ending at its last sign of life;
    others wait for their lease (one whose stream never connected ends as ``stream_never_connected``). Then
    usage left pending by a crash in the middle of finalizing is counted.
    """
    reaped = 0
    for instance in await dead_instances(db, now):
        async for call in db.calls.find(
            {"status": "active", "serverId": instance["_id"]}, projection={"_id": 1, "leaseExpiresAt": 1}
        ):
            last_alive = max(call["leaseExpiresAt"] - LEASE, min(instance.get("heartbeatAt") or now, now))
            if await finalize_call(db, call["_id"], CallResult(end_reason="server_lost"), last_alive):
                reaped += 1
        await forget(db, instance)
    async for call in db.calls.find(
        {"status": "active", "leaseExpiresAt": {"$lt": now}},
        projection={"_id": 1, "leaseExpiresAt": 1, "streamSid": 1, "callSid": 1},
    ):
        last_alive = call["leaseExpiresAt"] - LEASE
        reason = "server_lost" if call.get("streamSid") else "stream_never_connected"
        if reason == "stream_never_connected":
            log.warning(NEVER_CONNECTED, extra={"callId": str(call["_id"]), "callSid": call.get("callSid")})
        if await finalize_call(db, call["_id"], CallResult(end_reason=reason), last_alive):
            reaped += 1
    stale = now - dt.timedelta(minutes=1)
    pending = {"usagePending": True, "status": {"$ne": "active"}, "endedAt": {"$lt": stale}}
    async for call in db.calls.find(pending, projection=_RECORDED):
        await _count_usage(db, call)
    return reaped


# --- reads and the stream's claim ----------------------------------------------------------------------------


def _filters(org_id: ObjectId, agent_id: ObjectId | None, status: str | None) -> Document:
    query: Document = {"orgId": org_id}
    if agent_id is not None:
        query["agentId"] = agent_id
    if status is not None:
        query["status"] = status
    return query


async def count_calls(db: Database, org_id: ObjectId, agent_id: ObjectId | None, status: str | None) -> int:
    return await db.calls.count_documents(_filters(org_id, agent_id, status))


async def list_calls(
    db: Database, org_id: ObjectId, agent_id: ObjectId | None, status: str | None, skip: int, limit: int
) -> tuple[list[CallDoc], int]:
    """A page of the org's calls, newest first, without transcripts; and how many match in all."""
    query = _filters(org_id, agent_id, status)
    total = await db.calls.count_documents(query)
    detail = {"transcript": 0, "turns": 0, "metrics": 0, "summary": 0}
    cursor = db.calls.find(query, detail).sort([("startedAt", -1), ("_id", -1)]).skip(skip).limit(limit)
    return [call async for call in cursor], total  # type: ignore[misc]


async def get_call(db: Database, call_id: ObjectId, org_id: ObjectId | None = None) -> CallDoc | None:
    """One call (in ``org_id`` when given: another organization's call is not found)."""
    query: Document = {"_id": call_id} if org_id is None else {"_id": call_id, "orgId": org_id}
    return await db.calls.find_one(query)  # type: ignore[return-value]


async def find_by_sid(db: Database, org_id: ObjectId, call_sid: str) -> CallDoc | None:
    return await db.calls.find_one({"orgId": org_id, "callSid": call_sid})  # type: ignore[return-value]


async def record_twilio_status(db: Database, call_id: ObjectId, event: dict[str, Any]) -> None:
    """Keep Twilio's latest status callback: callbacks may arrive out of order, so only a higher sequence wins."""
    newer = {"$or": [{"twilio.sequence": {"$lt": event["sequence"]}}, {"twilio": {"$exists": False}}]}
    await db.calls.update_one({"_id": call_id, **newer}, {"$set": {"twilio": event}})


async def claim_for_upgrade(db: Database, call_id: ObjectId) -> CallDoc | None:
    """Bind an admitted call to the WebSocket upgrading for it, once: a second upgrade (a replayed token) gets
    None before its 101."""
    return await db.calls.find_one_and_update(  # type: ignore[return-value]
        {"_id": call_id, "status": "active", "streamTokenUsed": False},
        {"$set": {"streamTokenUsed": True, "serverId": INSTANCE_ID}},
        return_document=ReturnDocument.AFTER,
    )


async def attach_stream(db: Database, call_id: ObjectId, stream_sid: str) -> bool:
    """Record the ``streamSid`` of the claimed call's ``start``; False when the call ended meanwhile."""
    result = await db.calls.update_one({"_id": call_id, "status": "active"}, {"$set": {"streamSid": stream_sid}})
    return result.matched_count > 0


async def record_refused(db: Database, call: Document, reason: str, now: dt.datetime) -> None:
    """Keep a call refused at admission (failed, nothing used, no slot) so the org sees it was not taken."""
    call.update(
        {
            "status": "failed",
            "startedAt": now,
            "endedAt": now,
            "durationSec": 0.0,
            "endReason": "refused",
            "refusal": reason,
            "streamTokenUsed": True,  # no stream may ever carry it
            "streamSid": None,
            "transcript": [],
            "leaseExpiresAt": None,
        }
    )
    await db.calls.insert_one(call)


async def rename_duplicate_sids(db: Database) -> int:
    """Before the unique (orgId, callSid) index first exists: suffix the repeats (a webhook replayed before this
    index) so it can be built; the earliest call keeps its CallSid. How many were renamed."""
    if SID_INDEX in await db.calls.index_information():
        return 0
    cursor = await db.calls.aggregate(
        [
            {"$match": {"callSid": {"$gt": ""}}},
            {"$group": {"_id": {"org": "$orgId", "sid": "$callSid"}, "ids": {"$push": "$_id"}, "n": {"$sum": 1}}},
            {"$match": {"n": {"$gt": 1}}},
        ]
    )
    renamed = 0
    async for group in cursor:
        for index, call_id in enumerate(sorted(group["ids"])[1:], start=1):
            await db.calls.update_one({"_id": call_id}, {"$set": {"callSid": f"{group['_id']['sid']}#repeat{index}"}})
            renamed += 1
    if renamed:
        log.warning("calls with a repeated CallSid renamed before the unique index", extra={"renamed": renamed})
    return renamed


async def totals(db: Database, org_id: ObjectId, finished: tuple[str, ...]) -> tuple[int, float, float]:
    """``(calls, seconds of finished calls, their mean duration)`` for the dashboard's headline numbers."""
    cursor = await db.calls.aggregate(
        [
            {"$match": {"orgId": org_id}},
            {
                "$group": {
                    "_id": {"$in": ["$status", list(finished)]},
                    "count": {"$sum": 1},
                    "seconds": {"$sum": "$durationSec"},
                    "average": {"$avg": "$durationSec"},
                }
            },
        ]
    )
    groups = {row["_id"]: row async for row in cursor}
    done = groups.get(True, {})
    calls = sum(int(row["count"]) for row in groups.values())
    return calls, float(done.get("seconds") or 0), float(done.get("average") or 0)
