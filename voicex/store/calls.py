"""The call record's life: created active at admission, lease renewed while it runs, finalized exactly once.

Finalizing flips ``status`` from ``active`` in one conditional update, so whichever path gets there first
(stream stop, socket drop, silence, max duration, status callback, the janitor after a crash) wins and
the others do nothing. Usage is then added to the org's day and the concurrency slot released.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from voicex.store.db import Database, Document
from voicex.store.instances import INSTANCE_ID, dead_instances, forget
from voicex.store.retry import FINALIZE, ONCE, RENEWAL, retry
from voicex.store.slots import LEASE, release_slot, renew_slots
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
# A third of the 30 s lease: a renewal retried for its whole budget (8 s) still leaves the next one time to land.
RENEW_EVERY_SEC = 10.0
# Each period is done in this many slices, one every RENEW_EVERY_SEC / RENEW_SLICES: a database on the server's
# machine that wrote 500 leases at once (250 calls and their slots) took a core for half a second, and every
# call's audio waited behind it. Each call is still renewed once a period.
RENEW_SLICES = 10


@dataclass
class CallOutcome:
    end_reason: str
    transcript: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    sentiment: str = "neutral"
    tokens: int = 0
    tts_chars: int = 0
    errors: list[str] = field(default_factory=list)


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


class LeaseRenewer:
    """Renews the leases of all the calls this process runs, and their slots: one write per collection per slice.

    Why one renewer for the process: a loop per call cost two writes per call every period (the slot one a
    scan of ``call_slots``), so the database's CPU grew with the number of live calls and competed with the
    server for the same cores. One ``update_many`` per collection per slice (``RENEW_SLICES`` a period) costs
    the same for 1 call or 300, and no slice is big enough to hold the database's core for long.

    The guarantees are those of the per-call loop it replaces:

    - only ``active`` records are renewed (in the same atomic update), so a call finalized by any path
      (its stream, the status callback, the janitor) is never renewed again, even by a renewal in flight;
    - only calls this process runs are in the set, so a dead or stalled process renews nothing: its calls and
      slots run out of lease (or its instance is known dead) and the janitor reclaims them as before;
    - a renewal that fails is retried (``RENEWAL``) until the next one is due, and never ends a call.

    Call and slot cannot share one write (two collections, no transaction), but each is one write per period.
    """

    def __init__(self) -> None:
        self._calls: set[ObjectId] = set()

    def add(self, call_id: ObjectId) -> None:
        self._calls.add(call_id)

    def discard(self, call_id: ObjectId) -> None:
        self._calls.discard(call_id)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    async def renew(self, db: Database, now: dt.datetime, part: int | None = None) -> int:
        """Renew every registered call still active (or those of slice ``part``), and its slot; the number
        of call leases renewed."""
        ids = list(self._calls) if part is None else [c for c in self._calls if hash(c) % RENEW_SLICES == part]
        if not ids:
            return 0
        result = await db.calls.update_many(
            {"_id": {"$in": ids}, "status": "active"}, {"$set": {"leaseExpiresAt": now + LEASE}}
        )
        await renew_slots(db, ids, now)
        return result.matched_count

    async def run(self, db: Database) -> None:
        """Renew each call every ``RENEW_EVERY_SEC``, a slice at a time, until cancelled; a DB outage only
        delays the next renewal."""
        for tick in itertools.count():
            await asyncio.sleep(RENEW_EVERY_SEC / RENEW_SLICES)
            part = tick % RENEW_SLICES
            with contextlib.suppress(Exception):
                await retry(lambda p=part: self.renew(db, dt.datetime.now(dt.UTC), p), "renew call leases", RENEWAL)


async def finalize_call(db: Database, call_id: ObjectId, outcome: CallOutcome, ended_at: dt.datetime) -> bool:
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

    def __init__(self, db: Database, call_id: ObjectId, outcome: CallOutcome, ended_at: dt.datetime) -> None:
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
        usage = {"minutes": minutes, "tokens": outcome.tokens, "ttsChars": outcome.tts_chars}
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
            if await finalize_call(db, call["_id"], CallOutcome(end_reason="server_lost"), last_alive):
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
        if await finalize_call(db, call["_id"], CallOutcome(end_reason=reason), last_alive):
            reaped += 1
    stale = now - dt.timedelta(minutes=1)
    pending = {"usagePending": True, "status": {"$ne": "active"}, "endedAt": {"$lt": stale}}
    async for call in db.calls.find(pending, projection=_RECORDED):
        await _count_usage(db, call)
    return reaped
