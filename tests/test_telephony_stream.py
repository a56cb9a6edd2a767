"""Whole calls over real sockets: signed webhook → TwiML → Media Stream → a turn answered → the call record.

The simulated Twilio caller speaks espeak-ng speech in real time and checks every message the server sends
against the documented shapes; the agent runs on the scripted providers (zero latency) and the real VAD.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from functools import cache

import aiohttp
import pytest
from bson import ObjectId

from scripts.twilio_sim import CallConfig, SimulatedCall, sign, synthesize
from tests.telephony import AUTH_TOKEN, call_params, make_line, parse_twiml, post_signed

pytestmark = pytest.mark.scripted_providers


@cache
def question() -> bytes:
    return synthesize("Hello, what time do you open tomorrow?")


def config(server, line) -> CallConfig:
    base = f"http://127.0.0.1:{server.server.port}"
    return CallConfig(base_url=base, api_key=line.tenant.api_key, auth_token=AUTH_TOKEN, to_number=line.number)


async def finalized(services, call_id: str, timeout: float = 30.0) -> dict:
    """The call record once finalization is over: status written, then usage counted, then the slot freed."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        call = await services.db.calls.find_one({"_id": ObjectId(call_id)})
        if (
            call
            and call["status"] != "active"
            and not await services.db.call_slots.count_documents({"callId": ObjectId(call_id)})
        ):
            return call
        await asyncio.sleep(0.05)
    raise AssertionError("the call was never finalized")


async def test_a_whole_call_is_answered_and_recorded(server, services, tmp_path) -> None:
    line = await make_line(server, services)
    call = SimulatedCall(config(server, line))
    assert await call.dial()
    assert await call.wait_for_agent_silence(timeout=10)  # the greeting
    await call.say(question())
    assert await call.wait_for_agent_silence(timeout=10)  # the answer
    await call.dtmf("5")
    await call.silence(200)
    await call.hangup()
    result = call.result()
    wav_seconds = call.write_wav(tmp_path / "heard.wav")
    await call.close()

    assert result.violations == [] and result.marks_echoed > 0 and result.media_received > 0
    turn = result.turns[0]
    assert turn.latency_ms is not None and 500 <= turn.latency_ms <= 1500  # silenceTimeoutMs 700 + zero-latency fakes
    assert wav_seconds > 2
    record = await finalized(services, result.custom_parameters["callId"])
    assert (record["status"], record["endReason"]) == ("completed", "caller_hangup")
    roles = [(entry["role"], entry["text"]) for entry in record["transcript"] if entry["role"] != "event"]
    assert roles == [
        ("assistant", "Hello from Voicex."),
        ("user", "Hello there."),
        ("assistant", "Sure, I can help with that."),
    ]
    assert any(entry.get("digit") == "5" for entry in record["transcript"])
    assert record["turns"][0]["e2e_latency"] is not None and record["metrics"]["turns"] == 1
    assert record["durationSec"] > 2 and record["usage"]["ttsChars"] > 0
    assert record["callSid"] == result.call_sid and record["streamSid"] == result.stream_sid
    usage = await services.db.usage_daily.find_one({"orgId": ObjectId(line.tenant.org_id)})
    assert usage["calls"] == 1 and usage["minutes"] > 0
    assert await services.db.call_slots.count_documents({"callId": ObjectId(record["_id"])}) == 0
    metrics = await (await server.get("/metrics")).text()
    assert "voicex_turn_e2e_latency_seconds_count 1.0" in metrics


async def test_a_socket_dropped_without_stop_still_finalizes(server, services) -> None:
    line = await make_line(server, services)
    call = SimulatedCall(config(server, line))
    assert await call.dial()
    await call.silence(300)
    call_id = call.result().custom_parameters["callId"]
    assert call.stream is not None
    await call.stream.ws.close()  # no stop message: the connection just goes away
    await call.close()
    record = await finalized(services, call_id)
    assert (record["status"], record["endReason"]) == ("completed", "socket_closed")


async def test_forged_and_reused_stream_tokens_are_refused_before_any_audio(server, services) -> None:
    line = await make_line(server, services)
    call = SimulatedCall(config(server, line))
    assert await call.dial()
    params = call.result().custom_parameters
    real = call.answer.stream_url if call.answer else None
    assert real is not None and real.endswith(f"/{params['callId']}/" + real.rsplit("/", 1)[1])
    async with aiohttp.ClientSession() as http:
        for url in (real[:-2] + "00", real):  # forged, then reused: refused before the upgrade
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(url, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url)})
            assert refused.value.status == 403
    assert await call.wait_for_agent_audio(timeout=10) is not None  # the real stream is running: it got `start`
    stored = await services.db.calls.find_one({"_id": ObjectId(params["callId"])})
    assert stored["streamSid"] == call.result().stream_sid  # only the real stream ever attached
    await call.hangup()
    await call.close()


async def test_a_forged_upgrade_signature_is_refused(server, services) -> None:
    line = await make_line(server, services)
    answer = await post_signed(server, f"/api/twilio/voice?api_key={line.tenant.api_key}", call_params(line.number))
    twiml = parse_twiml(await answer.text())  # the webhook was signed correctly …
    stream_url = twiml["stream"]
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(stream_url, headers={"X-Twilio-Signature": sign("wrong", stream_url)})
        assert refused.value.status == 403
    stored = await services.db.calls.find_one({"_id": ObjectId(twiml["params"]["callId"])})
    assert stored["streamTokenUsed"] is False  # … but the stream never attached


@pytest.mark.slow
async def test_the_agent_ends_a_silent_call_and_closes_the_stream(server, services) -> None:
    line = await make_line(server, services, thresholds={"idleTimeoutMs": 2000})
    call = SimulatedCall(config(server, line))
    assert await call.dial()
    closed = await asyncio.gather(call.silence(12_000), call.wait_closed(15))
    result = call.result()
    await call.close()
    assert closed[1] is True and result.server_closed and result.violations == []
    record = await finalized(services, result.custom_parameters["callId"])
    assert record["endReason"] == "silence_timeout"
    said = [entry["text"] for entry in record["transcript"] if entry["role"] == "assistant"]
    assert said[0] == "Hello from Voicex." and said[1] == "Are you still there?" and "hang up" in said[2]
    assert record["endedAt"] - record["startedAt"] < dt.timedelta(seconds=15)
