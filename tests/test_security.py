"""Security checks issue #8 lists that the older suites did not cover yet.

Status callbacks with missing or replayed signatures, expired stream tokens, a revoked key on Twilio's webhook,
secrets at rest across the whole raw database, and sign-in doing the same password work for unknown emails.
(JWT forgery is in test_auth.py, forged voice webhooks and reused stream tokens in the telephony suites.)
"""

from __future__ import annotations

import asyncio
import logging
import time

import bson
import pytest
from bson import ObjectId
from twilio.request_validator import RequestValidator

import voicex.api.auth
from tests.factories import make_tenant
from tests.raw_stream import RawStream, server_frames, start_message
from tests.telephony import AUTH_TOKEN, call_params, make_line, parse_twiml, post_signed
from voicex.platform.crypto import SecretBox
from voicex.telephony import tokens

pytestmark = pytest.mark.scripted_providers

PROVIDER_SECRET = "sk-at-rest-provider-secret-91c4e2"
TWILIO_TOKEN = "twilio-at-rest-token-3d7f0a6b5c21e"


def url_of(client, path_qs: str) -> str:
    return f"http://127.0.0.1:{client.server.port}{path_qs}"


async def test_status_callbacks_with_missing_or_replayed_signatures_are_403_and_change_nothing(server, services):
    line = await make_line(server, services)
    other = await make_line(server, services)
    params = call_params(line.number)
    answer = await post_signed(server, f"/api/twilio/voice?api_key={line.tenant.api_key}", params)
    call_id = ObjectId(parse_twiml(await answer.text())["params"]["callId"])
    status_path = f"/api/twilio/status?api_key={line.tenant.api_key}"
    completed = {**params, "CallStatus": "completed", "SequenceNumber": "3"}
    validator = RequestValidator(AUTH_TOKEN)
    signed_for = {
        "the voice URL": url_of(server, f"/api/twilio/voice?api_key={line.tenant.api_key}"),
        "another org's status URL": url_of(server, f"/api/twilio/status?api_key={other.tenant.api_key}"),
        "another host": f"https://evil.example.com{status_path}",
    }
    missing = await server.post(status_path, data=completed)
    assert missing.status == 403 and await missing.json() == {"error": "invalid Twilio signature"}
    for name, url in signed_for.items():
        replayed = await post_signed(
            server, status_path, completed, signature=validator.compute_signature(url, completed)
        )
        assert replayed.status == 403, name
        assert await replayed.json() == {"error": "invalid Twilio signature"}, name
    call = await services.db.calls.find_one({"_id": call_id})
    assert call["status"] == "active" and "twilio" not in call  # none of them touched the call
    assert (await post_signed(server, status_path, completed)).status == 204  # the genuine one still works
    ended = await services.db.calls.find_one({"_id": call_id})  # its stream never opened: a failed call
    assert (ended["status"], ended["endReason"]) == ("failed", "stream_never_connected")


async def test_expired_or_malformed_stream_tokens_are_refused_before_any_audio(server, services, caplog):
    line = await make_line(server, services)
    answer = await post_signed(server, f"/api/twilio/voice?api_key={line.tenant.api_key}", call_params(line.number))
    params = parse_twiml(await answer.text())["params"]
    secret = services.settings.jwt_secret
    expired = tokens.issue(secret, params["callId"], now=time.time() - tokens.TOKEN_LIFETIME_SEC - 5)
    assert tokens.verify(secret, expired, params["callId"]) == "token expired"  # signed right, only too old
    bad = {
        "expired": expired,
        "unicode digits": f"{params['callId']}.²³.{'0' * 64}",
        "5,000-digit expiry": f"{params['callId']}.{'9' * 5000}.{'0' * 64}",
    }
    with caplog.at_level(logging.WARNING):
        for name, token in bad.items():
            stream = RawStream(server.server.port, {**params, "token": token})
            head = await stream.upgrade()  # the token is in the stream URL's path
            stream.close()
            assert head.startswith(b"HTTP/1.1 403"), name  # refused before the upgrade: no media or marks
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    refused = "media stream refused before upgrading"
    refusals = [getattr(r, "reason", "") for r in caplog.records if r.getMessage() == refused]
    assert refusals == ["token expired", "malformed token", "malformed token"]
    assert (await services.db.calls.find_one({"_id": ObjectId(params["callId"])}))["streamTokenUsed"] is False
    genuine = RawStream(server.server.port, params)  # the refused attempts did not use up the real token
    await genuine.open()
    await genuine.send_json(start_message(params))
    assert any(opcode == 0x1 and b'"event":"media"' in data for opcode, data in server_frames(await _first(genuine)))
    genuine.close()


async def _first(stream: RawStream, wanted: int = 4096) -> bytes:
    """The first bytes the server sends (the greeting's first media frames)."""
    assert stream.sock is not None
    received = b""
    async with asyncio.timeout(10):
        while len(received) < wanted:
            chunk = await asyncio.get_running_loop().sock_recv(stream.sock, 65536)
            if not chunk:
                break
            received += chunk
    return received


async def test_a_revoked_api_key_stops_admitting_calls_on_the_next_webhook(server, services):
    line = await make_line(server, services)
    created = await server.post("/api/dashboard/api-keys", json={"name": "twilio"}, headers=line.tenant.jwt)
    body = await created.json()
    voice = f"/api/twilio/voice?api_key={body['rawKey']}"
    assert "stream" in parse_twiml(await (await post_signed(server, voice, call_params(line.number))).text())
    revoked = await server.delete(f"/api/dashboard/api-keys/{body['_id']}", headers=line.tenant.jwt)
    assert revoked.status == 200
    refused = await post_signed(server, voice, call_params(line.number))
    assert refused.status == 403 and await refused.json() == {"error": "invalid or missing api_key"}
    status = await post_signed(server, f"/api/twilio/status?api_key={body['rawKey']}", call_params(line.number))
    assert status.status == 403
    assert await services.db.calls.count_documents({}) == 1  # only the call made before the revocation


async def test_credentials_and_twilio_tokens_are_nowhere_in_the_raw_database_yet_still_work(server, services):
    tenant = await make_tenant(server, services)
    provider = await server.post(
        "/api/dashboard/providers",
        headers=tenant.jwt,
        json={"category": "tts", "providerKey": "elevenlabs", "name": "V", "credentials": {"apiKey": PROVIDER_SECRET}},
    )
    assert provider.status == 201
    twilio = {"twilio": {"accountSid": "AC" + "b" * 32, "authToken": TWILIO_TOKEN}}
    assert (await server.patch("/api/dashboard/organization", headers=tenant.jwt, json=twilio)).status == 200

    db = services.db.client[services.settings.db_name]
    raw_documents = []
    for name in await db.list_collection_names():
        raw_documents += [bson.encode(document) async for document in db[name].find({})]
    assert len(raw_documents) > 5
    for secret in (PROVIDER_SECRET, TWILIO_TOKEN, tenant.password, tenant.api_key):
        assert not any(secret.encode() in raw for raw in raw_documents), secret

    box = SecretBox(services.settings.encryption_key)
    stored_provider = await db.providers.find_one({"_id": ObjectId((await provider.json())["_id"])})
    assert box.decrypt(stored_provider["credentials"]) == {"apiKey": PROVIDER_SECRET}  # kept, encrypted
    org = await db.organizations.find_one({"_id": ObjectId(tenant.org_id)})
    assert box.decrypt(org["twilio"]["authToken"]) == TWILIO_TOKEN
    services.settings = services.settings.model_copy(update={"twilio_auth_token": None})
    params = call_params("+15550000001", account_sid="AC" + "b" * 32)  # the org's account (checked)
    path = f"/api/twilio/voice?api_key={tenant.api_key}"
    assert (await post_signed(server, path, params, token=TWILIO_TOKEN)).status == 200  # the stored token is used
    assert (await post_signed(server, path, params, token=AUTH_TOKEN)).status == 403


async def test_signin_verifies_a_password_hash_for_unknown_emails_too(client, services, monkeypatch):
    tenant = await make_tenant(client, services)
    verified: list[str] = []
    real_verify = voicex.api.auth.verify_password

    def counting_verify(password_hash: str, password: str) -> bool:
        verified.append(password_hash)
        return real_verify(password_hash, password)

    monkeypatch.setattr(voicex.api.auth, "verify_password", counting_verify)
    answers = []
    for email in (tenant.email, "nobody-here@example.com"):
        response = await client.post("/api/auth/signin", json={"email": email, "password": "not-the-password"})
        answers.append((response.status, await response.json()))
    assert answers[0] == answers[1] == (401, {"error": "invalid email or password"})
    assert len(verified) == 2 and all(h.startswith("$argon2id$") for h in verified)  # one argon2 check each
    user = await services.db.users.find_one({"_id": ObjectId(tenant.user_id)})
    assert user["passwordHash"].split("$")[3] == verified[1].split("$")[3]  # same cost parameters
