"""Issue 14, telephony: scoped webhook keys (4), streams checked before the upgrade (7), webhook replays (8),
and plan features re-checked when a call comes in (10).

Everything runs over the real server and real sockets; the stream clients are tests/raw_stream.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest
from bson import ObjectId

from tests.raw_stream import RawStream, server_frames
from tests.telephony import AUTH_TOKEN, call_params, make_line, parse_twiml, post_signed, start_server

pytestmark = pytest.mark.scripted_providers

ORG_ACCOUNT = "AC" + "b" * 32


def voice_path(key: str) -> str:
    return f"/api/twilio/voice?api_key={key}"


async def admit(server, line, key: str | None = None) -> dict[str, str]:
    answer = await post_signed(server, voice_path(key or line.tenant.api_key), call_params(line.number))
    twiml = parse_twiml(await answer.text())
    assert "stream" in twiml, twiml
    return dict(twiml["params"])


# --- 4. a webhook credential that can only admit calls ---------------------------------------------------------


async def test_a_twilio_scoped_key_admits_calls_and_is_refused_on_the_dashboard(server, services) -> None:
    line = await make_line(server, services)
    created = await server.post(
        "/api/dashboard/api-keys", json={"name": "Twilio webhooks", "scopes": ["twilio"]}, headers=line.tenant.jwt
    )
    assert created.status == 201, await created.text()
    body = await created.json()
    assert body["scopes"] == ["twilio"]
    scoped = {"x-api-key": body["rawKey"]}

    params = await admit(server, line, body["rawKey"])  # Twilio's webhook: the call is admitted
    assert await services.db.calls.count_documents({"_id": ObjectId(params["callId"])}) == 1
    for method, path, payload in (
        ("GET", "/api/dashboard/agents", None),
        ("POST", "/api/dashboard/api-keys", {"name": "escalate"}),
        ("GET", "/api/dashboard/calls", None),
        ("PATCH", "/api/dashboard/organization", {"twilio": {"accountSid": ORG_ACCOUNT, "authToken": "x" * 32}}),
    ):
        refused = await server.request(method, path, json=payload, headers=scoped)
        assert refused.status == 403, path
        assert "scoped to Twilio webhooks" in (await refused.json())["error"], path
    assert await services.db.api_keys.count_documents({"orgId": ObjectId(line.tenant.org_id)}) == 2

    await admit(server, line)  # a full key (the reference's form) still works on the webhook
    listed = await (await server.get("/api/dashboard/api-keys", headers=line.tenant.key)).json()
    assert {item["name"]: item["scopes"] for item in listed} == {"Twilio webhooks": ["twilio"], "test key": ["full"]}


async def test_an_admin_rotates_a_webhook_key_and_the_old_one_stops_at_once(server, services) -> None:
    line = await make_line(server, services)
    made = await server.post(
        "/api/dashboard/api-keys", json={"name": "Twilio", "scopes": ["twilio"]}, headers=line.tenant.jwt
    )
    old = await made.json()
    rotated = await server.post(f"/api/dashboard/api-keys/{old['_id']}/rotate", headers=line.tenant.jwt)
    assert rotated.status == 201, await rotated.text()
    new = await rotated.json()
    assert (new["name"], new["scopes"]) == ("Twilio", ["twilio"]) and new["rawKey"] != old["rawKey"]
    stale = await post_signed(server, voice_path(old["rawKey"]), call_params(line.number))
    assert stale.status == 403 and await stale.json() == {"error": "invalid or missing api_key"}
    await admit(server, line, new["rawKey"])
    again = await server.post(f"/api/dashboard/api-keys/{old['_id']}/rotate", headers=line.tenant.jwt)
    assert again.status == 404


# --- 7. streams checked before the upgrade ------------------------------------------------------------------------


async def test_an_upgrade_without_a_valid_path_token_or_signature_is_refused_before_the_101(server, services) -> None:
    line = await make_line(server, services)
    params = await admit(server, line)
    forged = {**params, "token": params["token"][:-2] + "00"}
    other_call = {**params, "callId": str(ObjectId())}
    for name, attempt in (("forged token", forged), ("token of another call", other_call)):
        stream = RawStream(server.server.port, attempt)
        head = await stream.upgrade()
        stream.close()
        assert head.startswith(b"HTTP/1.1 403"), (name, head)
    unsigned = RawStream(server.server.port, params)
    head = await unsigned.upgrade(signature="")
    unsigned.close()
    assert head.startswith(b"HTTP/1.1 403"), head
    bare = RawStream(server.server.port, params)
    bare.path = "/api/twilio/stream"  # the old URL, with the call only in `start`: nothing to upgrade
    head = await bare.upgrade()
    bare.close()
    assert not head.startswith(b"HTTP/1.1 101"), head
    assert (await services.db.calls.find_one({"_id": ObjectId(params["callId"])}))["streamTokenUsed"] is False

    genuine = RawStream(server.server.port, params)  # the refusals did not use up the real token …
    await genuine.open()
    replay = RawStream(server.server.port, params)  # … which opens exactly one socket
    head = await replay.upgrade()
    replay.close()
    genuine.close()
    assert head.startswith(b"HTTP/1.1 403"), head


async def test_streams_waiting_for_start_are_capped_per_process(server, services) -> None:
    services.settings = services.settings.model_copy(update={"stream_pending_max": 2})
    line = await make_line(server, services)
    calls = [await admit(server, line) for _ in range(3)]
    waiting = [RawStream(server.server.port, params) for params in calls[:2]]
    for stream in waiting:
        await stream.open()  # upgraded, and then no `start`
    third = RawStream(server.server.port, calls[2])
    head = await third.upgrade()
    third.close()
    assert head.startswith(b"HTTP/1.1 503"), head
    waiting[0].close()  # one place frees up; the refused call's token was not used up
    for _ in range(100):
        retry = RawStream(server.server.port, calls[2])
        head = await retry.upgrade()
        if head.startswith(b"HTTP/1.1 101"):
            break
        retry.close()
        await asyncio.sleep(0.05)
    assert head.startswith(b"HTTP/1.1 101"), head
    retry.close()
    waiting[1].close()


@pytest.mark.slow
async def test_a_stream_that_never_sends_start_is_closed_after_the_default_start_timeout(server, services) -> None:
    line = await make_line(server, services)
    stream = RawStream(server.server.port, await admit(server, line))
    await stream.open()
    loop = asyncio.get_running_loop()
    opened = loop.time()
    sent = await stream.read_until_closed(30)  # nothing sent, not even `connected`
    held = loop.time() - opened
    stream.close()
    assert [opcode for opcode, _ in server_frames(sent)] == [0x8]  # closed, no audio
    assert 4.0 < held < 9.0, held  # the 5 s default (it was 10 s)


async def test_a_client_sending_its_headers_slowly_is_disconnected(services) -> None:
    services.settings = services.settings.model_copy(update={"http_idle_timeout_sec": 1.0})
    client = await start_server(services)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", client.server.port))
        await loop.sock_sendall(sock, b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        dropped = False
        for _ in range(40):  # one header byte every 0.2 s: 8 s of headers, never finished
            await asyncio.sleep(0.2)
            try:
                await loop.sock_sendall(sock, b"a")
                with contextlib.suppress(BlockingIOError):
                    if sock.recv(1024) == b"":
                        dropped = True
                        break
            except OSError:
                dropped = True
                break
        assert dropped, "the slow client was still connected after 8 s"
    finally:
        sock.close()
        await client.close()


# --- 8. webhook replays ---------------------------------------------------------------------------------------------


async def test_a_replayed_voice_webhook_gets_the_same_twiml_and_admits_nothing(server, services) -> None:
    line = await make_line(server, services)
    params = call_params(line.number)
    first = await post_signed(server, voice_path(line.tenant.api_key), params)
    text = await first.text()
    again = [await post_signed(server, voice_path(line.tenant.api_key), params) for _ in range(2)]
    concurrent = await asyncio.gather(
        *(
            post_signed(server, voice_path(line.tenant.api_key), {**params, "CallSid": "CA" + "7" * 32})
            for _ in range(4)
        )
    )
    assert [await r.text() for r in again] == [text, text]  # byte for byte: the same call, the same token
    assert len({await r.text() for r in concurrent}) == 1 and "<Stream" in await concurrent[0].text()
    org = ObjectId(line.tenant.org_id)
    assert await services.db.calls.count_documents({"orgId": org, "callSid": params["CallSid"]}) == 1
    assert await services.db.calls.count_documents({"orgId": org, "callSid": "CA" + "7" * 32}) == 1
    held = {"orgId": org, "callId": {"$ne": None}}
    assert await services.db.call_slots.count_documents(held) == 2  # one slot per call, not per request


async def test_a_webhook_for_another_twilio_account_is_403(server, services) -> None:
    line = await make_line(server, services)
    twilio = {"twilio": {"accountSid": ORG_ACCOUNT, "authToken": AUTH_TOKEN}}
    assert (await server.patch("/api/dashboard/organization", headers=line.tenant.jwt, json=twilio)).status == 200
    other = await post_signed(server, voice_path(line.tenant.api_key), call_params(line.number))  # AC000…
    assert other.status == 403
    assert await other.json() == {"error": "AccountSid does not match the organization's Twilio account"}
    assert await services.db.calls.count_documents({}) == 0
    ours = await post_signed(server, voice_path(line.tenant.api_key), call_params(line.number, account_sid=ORG_ACCOUNT))
    assert "stream" in parse_twiml(await ours.text())


# --- 10. plan features re-checked at admission ---------------------------------------------------------------------


async def test_after_a_downgrade_a_call_to_an_agent_on_an_own_provider_is_refused_and_recorded(server, services):
    line = await make_line(server, services, plan="starter")
    own = await server.post(
        "/api/dashboard/providers",
        json={"category": "llm", "providerKey": "groq", "name": "Our Groq", "credentials": {"apiKey": "gsk-own"}},
        headers=line.tenant.key,
    )
    assert own.status == 201, await own.text()
    patch = {"llmProviderId": (await own.json())["_id"], "llmModelId": "llama-3.1-8b-instant"}
    patched = await server.patch(f"/api/dashboard/agents/{line.agent['_id']}", json=patch, headers=line.tenant.key)
    assert patched.status == 200, await patched.text()
    org = ObjectId(line.tenant.org_id)
    await services.db.organizations.update_one({"_id": org}, {"$set": {"planSlug": "free"}})  # no own providers

    params = call_params(line.number)
    answer = parse_twiml(await (await post_signed(server, voice_path(line.tenant.api_key), params)).text())
    assert answer == {"say": "Sorry, this agent is not available right now. Goodbye.", "hangup": True}
    record = await services.db.calls.find_one({"orgId": org, "callSid": params["CallSid"]})
    assert (record["status"], record["refusal"]) == ("failed", "plan no longer allows custom providers")
    assert await services.db.call_slots.count_documents({"orgId": org, "callId": {"$ne": None}}) == 0
    listed = await (await server.get("/api/dashboard/calls", headers=line.tenant.key)).json()
    assert [item["status"] for item in listed["items"]] == ["failed"]  # the org sees the call it missed
    repeat = parse_twiml(await (await post_signed(server, voice_path(line.tenant.api_key), params)).text())
    assert repeat == answer and await services.db.calls.count_documents({"orgId": org}) == 1
