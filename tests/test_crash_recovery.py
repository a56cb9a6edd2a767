"""Crash recovery: ``kill -9`` of a ``voicex serve`` during 10 live calls, then a restart (scripts/crash_test.py),
and the liveness rule that decides which calls a restarted server may reclaim at once.

The database is the session's, outside the killed process, as in production.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from bson import ObjectId

from scripts.crash_test import run
from tests.telephony import call_params, hold_slots, make_line, parse_twiml, post_signed
from voicex.store.calls import reap_lost_calls
from voicex.store.instances import identity


@pytest.mark.slow
async def test_kill_9_during_ten_calls_finalizes_each_once_and_leaks_no_slot(mongo_uri: str) -> None:
    report = await run(calls=10, bystanders=2, uri=mongo_uri)
    assert report.active_at_kill == 10
    # Every call the dead server carried shows in the dashboard as ended by the lost server …
    assert report.finalized == 10
    assert report.reasons == {"server_lost": 10}
    # … billed for no longer than it really ran.
    assert report.durations_within_life == 10
    # Calls running on the other, live server are not touched and end normally.
    assert report.bystanders_untouched == 2
    assert report.bystanders_completed == 2
    # No slot leaked: the org admits exactly its plan's concurrent calls again.
    assert report.admitted_after == report.max_concurrent
    assert report.refused_after == 1
    assert report.slots_held_after == 0
    # Usage counts every call exactly once; the ones admitted after the restart never opened a stream (Twilio
    # reported them ended at once), so they are recorded as failed and not billed.
    assert report.usage_calls == report.calls_total == 10 + 2
    assert report.unbilled == report.max_concurrent
    assert report.usage_minutes == pytest.approx(report.call_minutes, abs=1e-3)
    assert report.errors_logged == 0


@pytest.mark.scripted_providers
@pytest.mark.parametrize(("pid_reused", "reclaimed"), [(False, False), (True, True)])
async def test_a_call_is_reclaimed_at_once_only_when_its_process_is_gone(
    server, services, pid_reused: bool, reclaimed: bool
) -> None:
    """A live process keeps its call; one whose pid now belongs to another process loses it, lease or not."""
    line = await make_line(server, services, plan="free")
    await hold_slots(server, line, services.catalog.plans["free"].limits.maxConcurrentCalls - 1)
    voice = f"/api/twilio/voice?api_key={line.tenant.api_key}"
    params = call_params(line.number)  # the org's last slot
    answer = await post_signed(server, voice, params)
    call_id = ObjectId(parse_twiml(await answer.text())["params"]["callId"])
    now = dt.datetime.now(dt.UTC)
    owner = {"_id": ObjectId(), **identity(now)}  # this test's own pid: alive, and on this machine
    assert owner["pid"] == os.getpid() and owner["machine"] is not None
    if pid_reused:
        owner["started"] = "1"  # the pid was recorded for a process that started at another time
    await services.db.server_instances.insert_one(owner)
    await services.db.calls.update_one({"_id": call_id}, {"$set": {"serverId": owner["_id"]}})

    assert await reap_lost_calls(services.db, now) == int(reclaimed)  # both leases are still fresh
    call = await services.db.calls.find_one({"_id": call_id})
    assert (call["status"], call.get("endReason")) == (("failed", "server_lost") if reclaimed else ("active", None))
    again = parse_twiml(await (await post_signed(server, voice, call_params(line.number))).text())
    assert ("stream" in again) == reclaimed  # the last slot is free only if the call was reclaimed
    if not reclaimed:  # the caller hangs up before the stream starts: Twilio's status callback ends the call
        status = f"/api/twilio/status?api_key={line.tenant.api_key}"
        await post_signed(server, status, {**params, "CallStatus": "completed", "SequenceNumber": "3"})
        call = await services.db.calls.find_one({"_id": call_id})
        assert (call["status"], call["endReason"]) == ("failed", "stream_never_connected")
