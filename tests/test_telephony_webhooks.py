"""Twilio voice webhook and status callbacks over the real server: signatures, admission, refusals."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from bson import ObjectId

from tests.telephony import AUTH_TOKEN, call_params, hold_slots, make_line, parse_twiml, post_signed, start_server
from voicex.store.calls import reap_lost_calls
from voicex.store.slots import LEASE
from voicex.store.usage import add_usage

pytestmark = pytest.mark.scripted_providers


def voice_path(line) -> str:
    return f"/api/twilio/voice?api_key={line.tenant.api_key}"


async def test_admitted_call_gets_a_stream_and_an_active_record(server, services) -> None:
    line = await make_line(server, services)
    params = call_params(line.number)
    response = await post_signed(server, voice_path(line), params)
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/xml")
    twiml = parse_twiml(await response.text())
    call_id, token = twiml["params"]["callId"], twiml["params"]["token"]
    assert twiml["stream"] == f"ws://127.0.0.1:{server.server.port}/api/twilio/stream/{call_id}/{token}"
    assert twiml["hangup_after"]
    call = await services.db.calls.find_one({"_id": ObjectId(twiml["params"]["callId"])})
    assert call["status"] == "active" and call["callSid"] == params["CallSid"]
    assert (call["from"], call["to"], call["direction"]) == ("+15005550001", line.number, "inbound")
    assert str(call["agentId"]) == line.agent["_id"]


async def test_agent_chosen_by_id_overrides_the_number(server, services) -> None:
    line = await make_line(server, services)
    response = await post_signed(server, f"{voice_path(line)}&agentId={line.agent['_id']}", call_params("+19999999999"))
    assert "stream" in parse_twiml(await response.text())


async def test_forged_missing_replayed_or_unconfigured_signatures_are_403(server, services) -> None:
    line = await make_line(server, services)
    params = call_params(line.number)
    forged = await post_signed(server, voice_path(line), params, token="not-the-token")
    assert forged.status == 403 and await forged.json() == {"error": "invalid Twilio signature"}
    missing = await server.post(voice_path(line), data=params)
    assert missing.status == 403
    other_url = f"http://127.0.0.1:{server.server.port}/api/twilio/status?api_key={line.tenant.api_key}"
    from twilio.request_validator import RequestValidator

    replayed_signature = RequestValidator(AUTH_TOKEN).compute_signature(other_url, params)
    replayed = await post_signed(server, voice_path(line), params, signature=replayed_signature)
    assert replayed.status == 403
    tampered = await post_signed(
        server,
        voice_path(line),
        params,
        signature=RequestValidator(AUTH_TOKEN).compute_signature(
            f"http://127.0.0.1:{server.server.port}{voice_path(line)}", {**params, "To": "+1"}
        ),
    )
    assert tampered.status == 403
    bad_key = await post_signed(server, "/api/twilio/voice?api_key=vx_" + "0" * 48, params)
    assert bad_key.status == 403
    services.settings = services.settings.model_copy(update={"twilio_auth_token": None})
    unconfigured = await post_signed(server, voice_path(line), params)
    assert unconfigured.status == 403 and await unconfigured.json() == {"error": "no Twilio auth token configured"}
    assert await services.db.calls.count_documents({}) == 0


@pytest.mark.parametrize(
    ("setup", "spoken"),
    [
        ("org_suspended", "not active"),
        ("agent_inactive", "not available"),
        ("minutes_exhausted", "used all of its minutes"),
        ("unknown_number", "not connected to an agent"),
    ],
)
async def test_refusals_say_why_and_hang_up(server, services, setup: str, spoken: str) -> None:
    line = await make_line(server, services, plan="free")
    org_id = ObjectId(line.tenant.org_id)
    to = line.number
    if setup == "org_suspended":
        await services.db.organizations.update_one({"_id": org_id}, {"$set": {"status": "suspended"}})
    elif setup == "agent_inactive":
        await services.db.agents.update_one({"_id": ObjectId(line.agent["_id"])}, {"$set": {"active": False}})
    elif setup == "minutes_exhausted":
        await add_usage(services.db, org_id, dt.datetime.now(dt.UTC), minutes=60)
    else:
        to = "+15550000000"
    response = await post_signed(server, voice_path(line), call_params(to))
    assert response.status == 200
    twiml = parse_twiml(await response.text())
    assert spoken in twiml["say"] and twiml["hangup"]
    assert await services.db.calls.count_documents({}) == 0


async def test_exactly_max_concurrent_calls_are_admitted_from_simultaneous_webhooks(server, services) -> None:
    line = await make_line(server, services, plan="starter")
    limit = services.catalog.plans["starter"].limits.maxConcurrentCalls
    responses = await asyncio.gather(
        *(post_signed(server, voice_path(line), call_params(line.number)) for _ in range(limit + 15))
    )
    twimls = [parse_twiml(await response.text()) for response in responses]
    admitted = [t for t in twimls if "stream" in t]
    busy = [t for t in twimls if "busy" in (t.get("say") or "")]
    assert (len(admitted), len(busy)) == (limit, 15)
    assert await services.db.calls.count_documents({"status": "active"}) == limit


async def test_status_callbacks_out_of_order_and_hangup_before_the_stream(server, services, caplog) -> None:
    line = await make_line(server, services, plan="free")
    await hold_slots(server, line, services.catalog.plans["free"].limits.maxConcurrentCalls - 1)
    params = call_params(line.number)
    await post_signed(server, voice_path(line), params)  # the last slot
    busy = parse_twiml(await (await post_signed(server, voice_path(line), call_params(line.number))).text())
    assert "busy" in busy["say"]
    status_path = f"/api/twilio/status?api_key={line.tenant.api_key}"
    completed = {**params, "CallStatus": "completed", "SequenceNumber": "3", "CallDuration": "4"}
    ringing = {**params, "CallStatus": "ringing", "SequenceNumber": "1"}
    assert (await post_signed(server, status_path, completed)).status == 204
    assert (await post_signed(server, status_path, ringing)).status == 204  # late and older: ignored
    assert (await post_signed(server, status_path, completed)).status == 204  # repeated: no effect
    call = await services.db.calls.find_one({"callSid": params["CallSid"]})
    assert call["twilio"]["status"] == "completed" and call["twilio"]["sequence"] == 3
    # Answered, yet its stream never opened (e.g. a proxy that drops WebSocket upgrades): a failed call, not
    # billed, and the operator is told where to look.
    assert call["status"] == "failed" and call["endReason"] == "stream_never_connected"
    assert call["usage"]["minutes"] == 0
    assert await services.db.usage_daily.find_one({"orgId": ObjectId(line.tenant.org_id)}) is None
    [warning] = [r for r in caplog.records if r.levelname == "WARNING" and "stream ever connecting" in r.getMessage()]
    assert "VOICEX_PUBLIC_URL" in warning.getMessage() and "WebSocket upgrades" in warning.getMessage()
    assert warning.callSid == params["CallSid"] and warning.streamUrl.endswith("/api/twilio/stream")
    again = parse_twiml(await (await post_signed(server, voice_path(line), call_params(line.number))).text())
    assert "stream" in again  # the slot was released
    forged = await post_signed(server, status_path, completed, token="wrong")
    assert forged.status == 403


async def test_the_janitor_finalizes_calls_whose_lease_expired(server, services) -> None:
    line = await make_line(server, services, plan="free")
    ids = []
    for _ in range(2):
        twiml = parse_twiml(await (await post_signed(server, voice_path(line), call_params(line.number))).text())
        ids.append(ObjectId(twiml["params"]["callId"]))
    started, never = ids  # the first one's stream started on a process that then stopped renewing it
    await services.db.calls.update_one({"_id": started}, {"$set": {"streamSid": "MZ" + "7" * 32}})
    now = dt.datetime.now(dt.UTC)
    assert await reap_lost_calls(services.db, now) == 0  # the leases are fresh
    later = now + LEASE + dt.timedelta(seconds=1)
    assert await reap_lost_calls(services.db, later) == 2
    assert await reap_lost_calls(services.db, later) == 0  # exactly once
    call = await services.db.calls.find_one({"_id": started})
    assert (call["status"], call["endReason"], call["usagePending"]) == ("failed", "server_lost", False)
    lost = await services.db.calls.find_one({"_id": never})
    assert (lost["status"], lost["endReason"], lost["usage"]["minutes"]) == ("failed", "stream_never_connected", 0)
    usage = await services.db.usage_daily.find_one({"orgId": ObjectId(line.tenant.org_id)})
    assert usage["calls"] == 1  # the call that never connected is not counted
    again = parse_twiml(await (await post_signed(server, voice_path(line), call_params(line.number))).text())
    assert "stream" in again  # no slot leaked


async def test_a_call_reaped_while_still_alive_keeps_its_transcript_and_counts_once(server, services) -> None:
    from pipelines.call_config import CallResult
    from voicex.store.calls import finalize_call

    line = await make_line(server, services, plan="free")
    twiml = parse_twiml(await (await post_signed(server, voice_path(line), call_params(line.number))).text())
    call_id = ObjectId(twiml["params"]["callId"])
    await services.db.calls.update_one({"_id": call_id}, {"$set": {"streamSid": "MZ" + "7" * 32}})  # it runs
    later = dt.datetime.now(dt.UTC) + LEASE + dt.timedelta(seconds=1)
    assert await reap_lost_calls(services.db, later) == 1  # the process looked dead (a long stall) …
    outcome = CallResult(end_reason="caller_hangup", transcript=[{"role": "user", "text": "hi", "atMs": 0}])
    assert await finalize_call(services.db, call_id, outcome, later)  # … but it finishes the call after all
    assert not await finalize_call(services.db, call_id, outcome, later)
    call = await services.db.calls.find_one({"_id": call_id})
    assert (call["status"], call["endReason"], call["transcript"][0]["text"]) == ("completed", "caller_hangup", "hi")
    usage = await services.db.usage_daily.find_one({"orgId": ObjectId(line.tenant.org_id)})
    assert usage["calls"] == 1


async def test_signature_checks_can_be_disabled_for_development_with_a_warning(settings, caplog) -> None:
    import logging

    from voicex.server.runtime import Runtime

    with caplog.at_level(logging.WARNING, logger="voicex.server.runtime"):
        runtime = await Runtime.start(settings.model_copy(update={"twilio_validate_signature": False}))
    try:
        assert any("VOICEX_TWILIO_VALIDATE_SIGNATURE=false" in record.getMessage() for record in caplog.records)
        client = await start_server(runtime.services)
        line = await make_line(client, runtime.services)
        unsigned = await client.post(voice_path(line), data=call_params(line.number))
        assert "stream" in parse_twiml(await unsigned.text())
        await client.close()
    finally:
        await runtime.services.db.client.drop_database(runtime.services.settings.db_name)
        await runtime.close()
