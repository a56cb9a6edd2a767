"""The process-wide renewal of live calls' leases (and their slots): how a crashed process's calls are noticed.

A call's record and its concurrency slot each carry a lease; the process running the call renews both. When
it stops renewing (it died, or stalled), the janitor finalizes the call and the slot frees itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools

from bson import ObjectId

from voicex.store.db import Database
from voicex.store.retry import RENEWAL, retry
from voicex.store.slots import LEASE, renew_slots

# A third of the 30 s lease: a renewal retried for its whole budget (8 s) still leaves the next one time to land.
RENEW_EVERY_SEC = 10.0
# Each period is done in this many slices, one every RENEW_EVERY_SEC / RENEW_SLICES: a database on the server's
# machine that wrote 500 leases at once (250 calls and their slots) took a core for half a second, and every
# call's audio waited behind it. Each call is still renewed once a period.
RENEW_SLICES = 10


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

            async def renew_slice(p: int = part) -> int:
                return await self.renew(db, dt.datetime.now(dt.UTC), p)

            with contextlib.suppress(Exception):
                await retry(renew_slice, "renew call leases", RENEWAL)
