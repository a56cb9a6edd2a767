"""Limits over the real server: body, header and WebSocket message sizes, streams per org, idle and slow callers.

Each limit is shown from the outside (what the client gets) and from the call record (every started call is
finalized). Waits use generous deadlines, never timed assertions.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from functools import cache
from urllib.parse import urlencode

import aiohttp
import pytest
from bson import ObjectId

from scripts.twilio_sim import CallConfig, SimulatedCall, synthesize
from tests.raw_stream import RawStream, media_message, server_frames, start_message
from tests.telephony import AUTH_TOKEN, call_params, hold_slots, make_line, parse_twiml, post_signed
from tests.test_telephony_stream import finalized
from voicex.store.calls import reap_lost_calls
from voicex.store.slots import LEASE
from voicex.telephony.stream import MAX_MESSAGE_BYTES

pytestmark = pytest.mark.scripted_providers

CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
LONG_GREETING = " ".join(["Thank you for calling, this message is long on purpose."] * 17)  # ~57 s of audio


@cache
def question() -> bytes:
    return synthesize("Hello, what time do you open tomorrow?")


def sim_config(server, line) -> CallConfig:
    base = f"http://127.0.0.1:{server.server.port}"
    return CallConfig(base_url=base, api_key=line.tenant.api_key, auth_token=AUTH_TOKEN, to_number=line.number)


async def admit(server, line) -> dict[str, str]:
    """A signed voice webhook; the stream parameters (call id, single-use token) of the admitted call."""
    answer = await post_signed(server, f"/api/twilio/voice?api_key={line.tenant.api_key}", call_params(line.number))
    twiml = parse_twiml(await answer.text())
    assert "stream" in twiml, twiml
    return twiml["params"]


def errors_logged(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


async def test_bodies_over_the_limit_are_413_json_with_or_without_content_length(server, services) -> None:
    limit = services.settings.max_body_bytes
    signup = b'{"name": "A", "email": "big@example.com", "password": "long enough", "orgName": "' + b"x" * limit + b'"}'

    async def chunked(body: bytes):  # no Content-Length: the limit must hold while reading
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    for data in (signup, chunked(signup)):
        response = await server.post("/api/auth/signup", data=data, headers={"Content-Type": "application/json"})
        assert response.status == 413
        assert await response.json() == {"error": "request body too large"}
    assert await services.db.users.count_documents({"email": "big@example.com"}) == 0

    line = await make_line(server, services)
    form = {**call_params(line.number), "Padding": "x" * limit}
    path = f"/api/twilio/voice?api_key={line.tenant.api_key}"
    signed = await post_signed(server, path, form)
    assert signed.status == 413 and await signed.json() == {"error": "request body too large"}
    encoded = urlencode(form).encode()
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    webhook = await server.post(path, data=chunked(encoded), headers=form_type)
    assert webhook.status == 413 and await webhook.json() == {"error": "request body too large"}
    assert await services.db.calls.count_documents({}) == 0
    assert (await server.get("/api/health")).status == 200


async def test_oversized_or_too_many_headers_are_400_from_aiohttps_parser(server, services, caplog) -> None:
    tenant_line = await make_line(server, services)
    fits = await server.get("/api/dashboard/organization", headers={**tenant_line.tenant.key, "X-Pad": "p" * 8000})
    assert fits.status == 200
    host, port = "127.0.0.1", server.server.port
    requests = {
        "header line over 8190 bytes": f"GET /api/health HTTP/1.1\r\nHost: {host}\r\nX-Pad: {'p' * 9000}\r\n\r\n",
        "more than 128 headers": f"GET /api/health HTTP/1.1\r\nHost: {host}\r\n"
        + "".join(f"X-H{i}: v\r\n" for i in range(130))
        + "\r\n",
        "WebSocket upgrade with a huge header": "GET /api/twilio/stream HTTP/1.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Host: {host}\r\nX-Twilio-Signature: {'s' * 9000}\r\n\r\n",
    }
    with caplog.at_level(logging.INFO):
        for name, request in requests.items():
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request.encode())
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)  # the server closes the connection after it
            writer.close()
            status_line, _, rest = answer.partition(b"\r\n")
            assert status_line.endswith(b"400 Bad Request"), name
            # aiohttp answers before the app runs: plain text, not {"error": ...}, and no request id.
            assert b"Content-Type: text/plain" in rest and b"X-Request-Id" not in rest, name
    assert errors_logged(caplog) == []  # bad client input is a warning, not a server error
    assert any("refused by the HTTP parser" in record.getMessage() for record in caplog.records)
    assert (await server.get("/api/health")).status == 200


async def test_an_oversized_stream_message_closes_the_stream_and_finalizes_the_call(server, services, caplog) -> None:
    line = await make_line(server, services)
    call = SimulatedCall(sim_config(server, line))
    assert await call.dial()
    assert call.stream is not None
    await call.stream.ws.send_str("x" * (MAX_MESSAGE_BYTES - 100))  # under the limit: skipped as malformed
    assert await call.wait_for_agent_silence(timeout=10)  # the greeting still plays to the end
    await call.stream.ws.send_str('{"event": "media", "pad": "' + "x" * MAX_MESSAGE_BYTES + '"}')
    assert await call.wait_closed(10)
    close_code = call.stream.ws.close_code
    call_id = call.result().custom_parameters["callId"]
    await call.close()
    assert close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    record = await finalized(services, call_id)
    assert (record["status"], record["endReason"]) == ("completed", "socket_closed")
    assert "1 malformed messages skipped" in record["errors"]
    assert record["transcript"][0]["text"] == "Hello from Voicex."
    assert await services.db.call_slots.count_documents({"callId": ObjectId(call_id)}) == 0
    assert errors_logged(caplog) == []


async def test_no_stream_can_exist_beyond_the_orgs_concurrent_call_slots(server, services) -> None:
    line = await make_line(server, services, plan="free")
    held = len(await hold_slots(server, line, services.catalog.plans["free"].limits.maxConcurrentCalls - 1))
    call = SimulatedCall(sim_config(server, line))
    assert await call.dial()  # the last slot
    assert call.answer is not None and call.answer.stream_url is not None
    params = {**call.result().custom_parameters, "token": call.answer.stream_url.rsplit("/", 1)[1]}
    busy = await post_signed(server, f"/api/twilio/voice?api_key={line.tenant.api_key}", call_params(line.number))
    assert "busy" in parse_twiml(await busy.text())["say"]  # the second call gets no stream parameters at all
    attempts = [
        params,  # the admitted call's own token, a second time
        {**params, "callId": str(ObjectId())},  # its token for a call id that was never admitted
        {"callId": str(ObjectId()), "token": f"{ObjectId()}.9999999999.{'0' * 64}"},  # a made-up token
    ]
    for custom in attempts:
        stream = RawStream(server.server.port, custom)
        head = await stream.upgrade()
        stream.close()
        assert head.startswith(b"HTTP/1.1 403"), head  # refused before the upgrade: no audio, no marks
    assert await services.db.calls.count_documents({"orgId": ObjectId(line.tenant.org_id)}) == 1 + held
    assert await services.db.calls.count_documents({"streamTokenUsed": True}) == 1
    assert "voicex_active_calls 1.0" in await (await server.get("/metrics")).text()
    await call.hangup()
    await call.close()
    await finalized(services, params["callId"])
    finished = RawStream(server.server.port, params)  # a finished call's token opens nothing either
    assert (await finished.upgrade()).startswith(b"HTTP/1.1 403")
    finished.close()


async def test_a_stream_that_never_sends_start_is_closed_and_its_call_still_finalized(server, services) -> None:
    services.settings = services.settings.model_copy(update={"stream_start_timeout_sec": 1.0})
    line = await make_line(server, services, plan="free")
    params = await admit(server, line)
    stream = RawStream(server.server.port, params)
    await stream.open()
    await stream.send_json(CONNECTED)  # … and then nothing
    sent = await stream.read_until_closed(15)
    stream.close()
    assert [opcode for opcode, _ in server_frames(sent)] == [0x8]
    call = await services.db.calls.find_one({"_id": ObjectId(params["callId"])})
    assert call["status"] == "active" and call["streamSid"] is None  # claimed by the upgrade, but never started
    # Twilio's status callback normally ends it; if that never comes, the unrenewed lease does. No stream ever
    # started, so no conversation happened: a failed call, not billed.
    later = dt.datetime.now(dt.UTC) + LEASE + dt.timedelta(seconds=1)
    assert await reap_lost_calls(services.db, later) == 1
    call = await services.db.calls.find_one({"_id": ObjectId(params["callId"])})
    assert call["status"] == "failed" and call["endReason"] == "stream_never_connected"
    assert "stream" in parse_twiml(
        await (
            await post_signed(server, f"/api/twilio/voice?api_key={line.tenant.api_key}", call_params(line.number))
        ).text()
    )  # the org's only slot is free again


async def test_a_stream_that_goes_silent_mid_call_is_closed_and_finalized_as_idle(server, services) -> None:
    services.settings = services.settings.model_copy(update={"stream_idle_timeout_sec": 1.5})
    line = await make_line(server, services, plan="free")
    params = await admit(server, line)
    stream = RawStream(server.server.port, params)
    await stream.open()
    await stream.send_json(CONNECTED)
    await stream.send_json(start_message(params))
    for chunk in range(10):
        await stream.send_json(media_message(chunk))
    sent = await stream.read_until_closed(20)  # we read everything, but send nothing more
    stream.close()
    frames = server_frames(sent)
    assert any(b'"event":"media"' in payload for opcode, payload in frames if opcode == 0x1)  # the greeting
    assert frames[-1][0] == 0x8 and frames[-1][1][:2] == (1000).to_bytes(2, "big")  # a normal close
    record = await finalized(services, params["callId"])
    assert (record["status"], record["endReason"]) == ("completed", "stream_idle")
    assert await services.db.call_slots.count_documents({"callId": ObjectId(params["callId"])}) == 0


@pytest.mark.slow
async def test_a_caller_that_stops_reading_is_dropped_without_stalling_other_calls(server, services) -> None:
    slow_line = await make_line(server, services, persona={"systemPrompt": "Be brief.", "greeting": LONG_GREETING})
    params = await admit(server, slow_line)
    slow = RawStream(server.server.port, params, receive_buffer=4096)
    await slow.open()
    await slow.send_json(CONNECTED)
    await slow.send_json(start_message(params))

    async def keep_talking_never_reading() -> str:
        chunk = 0
        try:
            while True:  # frames every 20 ms, like Twilio, so the line is never idle
                await slow.send_json(media_message(chunk))
                chunk += 1
                await asyncio.sleep(0.02)
        except OSError as exc:
            return type(exc).__name__

    sender = asyncio.create_task(keep_talking_never_reading())
    other_line = await make_line(server, services)
    other = SimulatedCall(sim_config(server, other_line))
    assert await other.dial()
    assert await other.wait_for_agent_silence(timeout=15)
    await other.say(question())
    assert await other.wait_for_agent_silence(timeout=15)
    await other.hangup()
    other_result = other.result()
    await other.close()
    assert other_result.violations == [] and other_result.turns  # the other call was answered meanwhile

    record = await finalized(services, params["callId"], timeout=90)
    assert (record["status"], record["endReason"]) == ("completed", "send_timeout")
    assert await services.db.call_slots.count_documents({"callId": ObjectId(params["callId"])}) == 0
    assert await asyncio.wait_for(sender, 30) in ("ConnectionResetError", "BrokenPipeError")  # connection dropped
    slow.close()
