"""Call and slot leases: one process-wide renewer keeps a live call (and its slot) from being reclaimed,
never renews a finalized call, and renews nothing of a crashed process; a burst of admissions gets exactly
the plan's concurrent calls, also when earlier calls left some slots behind.

Renewals are driven by hand with an explicit ``now`` (the background loop is slowed down), so nothing is timed.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from bson import ObjectId

import voicex.store.leases as lease_renewal
from scripts.twilio_sim import SimulatedCall
from tests.telephony import make_line
from tests.test_telephony_stream import config, finalized
from voicex.store.calls import reap_lost_calls
from voicex.store.leases import LeaseRenewer
from voicex.store.slots import LEASE, claim_slot, release_slot

SECOND = dt.timedelta(seconds=1)


def ms(moment: dt.datetime) -> dt.datetime:
    """``moment`` as MongoDB stores it (millisecond precision)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@pytest.fixture
def manual_renewals(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's own renewal loop waits an hour, so only the test's renewals happen."""
    monkeypatch.setattr(lease_renewal, "RENEW_EVERY_SEC", 3600.0)


@pytest.mark.scripted_providers
async def test_a_live_calls_lease_stays_ahead_and_a_finalized_call_is_never_renewed(
    manual_renewals: None, server, services
) -> None:
    line = await make_line(server, services)
    call = SimulatedCall(config(server, line))
    assert await call.dial()
    assert await call.wait_for_agent_silence(timeout=10)  # the greeting: the stream runs
    call_id = ObjectId(call.result().custom_parameters["callId"])
    assert call_id in services.leases

    # Past the admission lease, the running call is still alive after a renewal: the janitor leaves it.
    later = dt.datetime.now(dt.UTC) + LEASE + SECOND
    assert await services.leases.renew(services.db, later) == 1
    record = await services.db.calls.find_one({"_id": call_id})
    slot = await services.db.call_slots.find_one({"callId": call_id})
    assert record["leaseExpiresAt"] == slot["leaseExpiresAt"] == ms(later + LEASE)
    assert await reap_lost_calls(services.db, later + SECOND) == 0
    assert (await services.db.calls.find_one({"_id": call_id}))["status"] == "active"

    await call.hangup()
    await call.close()
    record = await finalized(services, str(call_id))
    assert (record["status"], record["endReason"], record["leaseExpiresAt"]) == ("completed", "caller_hangup", None)

    # A renewal in flight when the call was finalized (it was still registered) renews nothing.
    services.leases.add(call_id)
    assert await services.leases.renew(services.db, later + 2 * SECOND) == 0
    assert (await services.db.calls.find_one({"_id": call_id}))["leaseExpiresAt"] is None
    assert await services.db.call_slots.count_documents({"callId": call_id}) == 0  # the slot stays free
    services.leases.discard(call_id)


async def test_a_crashed_processs_calls_and_slots_expire_while_the_live_ones_are_renewed(services) -> None:
    db, now, org = services.db, dt.datetime.now(dt.UTC), ObjectId()
    live, crashed = [ObjectId() for _ in range(3)], [ObjectId() for _ in range(2)]
    for call_id in [*live, *crashed]:
        assert await claim_slot(db, org, 5, call_id, now)
        await db.calls.insert_one(
            {"_id": call_id, "orgId": org, "status": "active", "startedAt": now, "leaseExpiresAt": now + LEASE}
        )
    this_process = LeaseRenewer()  # the crashed process's renewer died with it
    for call_id in live:
        this_process.add(call_id)
    assert await this_process.renew(db, now + 20 * SECOND) == 3

    later = now + LEASE + SECOND
    # The crashed process's two calls are reclaimed, the live ones are not …
    assert await reap_lost_calls(db, later) == 2
    statuses = {c["_id"]: c["status"] async for c in db.calls.find({"orgId": org})}
    assert [statuses[c] for c in live] == ["active"] * 3 and [statuses[c] for c in crashed] == ["failed"] * 2
    # … and of the org's 5 slots exactly their 2 can be taken by new calls.
    newcomers = await asyncio.gather(*(claim_slot(db, org, 5, ObjectId(), later) for _ in range(4)))
    assert sorted(newcomers) == [False, False, True, True]
    assert await db.call_slots.count_documents({"orgId": org, "callId": {"$in": live}}) == 3


async def test_a_burst_of_admissions_gets_exactly_the_orgs_concurrent_calls(services) -> None:
    db, now, org = services.db, dt.datetime.now(dt.UTC), ObjectId()
    callers = [ObjectId() for _ in range(60)]
    admitted = await asyncio.gather(*(claim_slot(db, org, 40, call_id, now) for call_id in callers))
    assert sum(admitted) == 40
    assert await db.call_slots.count_documents({"orgId": org, "callId": {"$ne": None}}) == 40
    assert await db.call_slots.count_documents({"orgId": org}) == 40  # no slot beyond the plan's limit
    # A call that ends frees its slot for the next caller, and only one.
    await release_slot(db, next(c for c, ok in zip(callers, admitted, strict=True) if ok))
    assert await claim_slot(db, org, 40, ObjectId(), now)
    assert not await claim_slot(db, org, 40, ObjectId(), now)


async def test_a_burst_after_some_slots_exist_still_gets_every_slot(services) -> None:
    """Slots made by earlier calls and since freed, then a burst past the limit (a restart after a crash)."""
    db, now = services.db, dt.datetime.now(dt.UTC)
    for _ in range(5):
        org = ObjectId()
        earlier = [ObjectId() for _ in range(12)]
        assert all(await asyncio.gather(*(claim_slot(db, org, 25, call_id, now) for call_id in earlier)))
        for call_id in earlier:
            await release_slot(db, call_id)
        admitted = await asyncio.gather(*(claim_slot(db, org, 25, ObjectId(), now) for _ in range(26)))
        assert sum(admitted) == 25


async def test_renewal_slices_renew_every_call_once_a_period_a_slice_at_a_time(services) -> None:
    """The renewer spreads a period's writes over RENEW_SLICES slices; together they renew every call once."""
    db, now, org = services.db, dt.datetime.now(dt.UTC), ObjectId()
    calls = [ObjectId() for _ in range(40)]
    renewer = LeaseRenewer()
    for call_id in calls:
        assert await claim_slot(db, org, 40, call_id, now)
        await db.calls.insert_one(
            {"_id": call_id, "orgId": org, "status": "active", "startedAt": now, "leaseExpiresAt": now + LEASE}
        )
        renewer.add(call_id)
    renewed = [await renewer.renew(db, now + (part + 1) * SECOND, part) for part in range(lease_renewal.RENEW_SLICES)]
    assert sum(renewed) == 40 and max(renewed) < 40  # each call once, and no slice wrote them all
    leases = {c["_id"]: c["leaseExpiresAt"] async for c in db.calls.find({"orgId": org})}
    slots = {s["callId"]: s["leaseExpiresAt"] async for s in db.call_slots.find({"orgId": org})}
    for call_id in calls:
        assert leases[call_id] > ms(now + LEASE) and slots[call_id] == leases[call_id]
