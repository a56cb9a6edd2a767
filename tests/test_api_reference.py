"""docs/api-reference.md as a test: every example of the reference, sent verbatim to a fresh server.

The JSON examples are read out of the document itself, so the reference and the server cannot drift apart:
request bodies go out byte for byte (with "664a..." replaced by real ids), and each response the reference
shows is checked for its shape — the same keys (Voicex may add some, never drop one), the same JSON types, and
the same values where the reference states them (plans, limits, the model search's gating).
"""

from __future__ import annotations

import asyncio
import json
import re
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from bson import ObjectId

from scripts.twilio_sim import CallConfig, SimulatedCall
from tests.agent_world import SERVER_KEYS
from tests.telephony import AUTH_TOKEN, call_params, parse_twiml, post_signed, spoken, with_pause
from voicex.platform.services import Services
from voicex.server.admin import create_platform_admin

pytestmark = pytest.mark.scripted_providers

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "api-reference.md"
Client = TestClient[web.Request, web.Application]


def example(marker: str) -> str:
    """The one ```json block of the reference that contains ``marker``, exactly as written."""
    blocks = re.findall(r"```json\n(.*?)```", REFERENCE.read_text(encoding="utf-8"), flags=re.S)
    found = [block for block in blocks if marker in block]
    assert len(found) == 1, f"{len(found)} examples contain {marker!r}"
    return textwrap.dedent(found[0])  # an example inside a list item is indented in the Markdown only


def parsed(marker: str) -> Any:
    return json.loads(example(marker))


def same_shape(shown: Any, got: Any, where: str = "response") -> None:
    """``got`` has every key ``shown`` has, recursively, with values of the same JSON type (null matches any)."""
    if isinstance(shown, dict):
        assert isinstance(got, dict), f"{where}: expected an object, got {got!r}"
        for key, value in shown.items():
            assert key in got, f"{where}: missing {key!r}"
            same_shape(value, got[key], f"{where}.{key}")
    elif isinstance(shown, list):
        assert isinstance(got, list), f"{where}: expected an array, got {type(got).__name__}"
        for item in got:
            if shown:
                same_shape(shown[0], item, f"{where}[]")
    elif shown is not None and got is not None:
        number = (int, float)
        assert isinstance(got, number) if isinstance(shown, number) else isinstance(got, type(shown)), (
            f"{where}: {got!r} is not like {shown!r}"
        )


async def send(client: Client, method: str, path: str, headers: dict[str, str], body: str | None = None) -> Any:
    """One request; a body is sent byte for byte as the reference writes it."""
    if body is not None:
        headers = {**headers, "Content-Type": "application/json"}
    response = await client.request(method, path, data=body, headers=headers)
    payload = await response.json()
    return response.status, payload


async def ok(
    client: Client, method: str, path: str, headers: dict[str, str], body: str | None = None, status: int = 200
) -> Any:
    code, payload = await send(client, method, path, headers, body)
    assert code == status, f"{method} {path}: {code} {payload}"
    return payload


def with_ids(text: str, *ids: str) -> str:
    """The example with each "664a..." replaced, in order, by a real id."""
    for value in ids:
        assert '"664a..."' in text
        text = text.replace('"664a..."', f'"{value}"', 1)
    assert '"664a..."' not in text
    return text


async def test_every_example_of_the_reference_works_verbatim(server: Client, services: Services) -> None:
    # The server runs with the vendors' keys, as a deployment whose global providers work does.
    services.settings = services.settings.model_copy(update=SERVER_KEYS)
    health = await ok(server, "GET", "/api/health", {})
    same_shape(parsed('"status": "ok"'), health)
    assert health["status"] == "ok" and abs(health["timestamp"] - time.time() * 1000) < 60_000  # epoch ms

    plans = await ok(server, "GET", "/api/plans", {})
    [free_shown] = parsed('"slug": "free"')
    assert isinstance(plans, list) and plans[0]["slug"] == "free"
    assert {key: plans[0][key] for key in free_shown} == free_shown  # the reference's free plan, value for value
    assert all(plan["public"] and not plan["custom"] for plan in plans)
    assert set(await ok(server, "GET", "/api/setup/status", {})) >= {"setupComplete"}

    user, org_id = await _auth(server)
    admin = await _platform_admin(server, services)
    await ok(server, "PATCH", f"/api/admin/organizations/{org_id}", admin, '{"status": "active"}')
    await _organization(server, user)
    await _model_search_on_free(server, user)

    await ok(server, "PATCH", f"/api/admin/organizations/{org_id}", admin, '{"planSlug": "pro"}')
    plan = await ok(server, "GET", "/api/dashboard/plan", user)
    shown = parsed('"slug": "pro"')
    same_shape(shown, plan)
    assert (plan["slug"], plan["name"], plan["limits"], plan["features"]) == (
        shown["slug"], shown["name"], shown["limits"], shown["features"]
    )  # fmt: skip
    for category, models in shown["models"].items():
        assert set(models) <= set(plan["models"][category]), category

    key = await _api_keys(server, user)
    agent = await _agents(server, user)
    await _providers(server, user, agent)
    await _a_call_on_the_agent(server, services, user, key, agent)
    await _errors(server, user)
    deleted = await ok(server, "DELETE", f"/api/dashboard/agents/{agent['_id']}", user)
    assert deleted == {"deleted": True}
    assert await ok(server, "GET", "/api/dashboard/agents", user) == []


async def _auth(server: Client) -> tuple[dict[str, str], str]:
    signup = await ok(server, "POST", "/api/auth/signup", {}, example('"orgName": "Acme Corp"'), status=201)
    assert signup["organization"]["status"] == "pending" and signup["user"]["role"] == "admin"
    assert isinstance(signup["token"], str)
    signin = await ok(server, "POST", "/api/auth/signin", {}, example('"password": "min8chars"\n}'))
    assert signin["user"]["email"] == "john@company.com" and signin["organization"]["status"] == "pending"
    user = {"Authorization": f"Bearer {signin['token']}"}
    me = await ok(server, "GET", "/api/auth/me", user)
    assert me["user"]["_id"] == signup["user"]["_id"] and me["organization"]["name"] == "Acme Corp"
    code, pending = await send(server, "GET", "/api/dashboard/organization", user)
    assert code == 403 and set(pending) == {"error"}  # pending until a platform admin activates it
    return user, signup["organization"]["_id"]


async def _platform_admin(server: Client, services: Services) -> dict[str, str]:
    await create_platform_admin(services.db, "ops@voicex.example", "ops-password-1")
    body = '{"email": "ops@voicex.example", "password": "ops-password-1"}'
    return {"Authorization": f"Bearer {(await ok(server, 'POST', '/api/auth/signin', {}, body))['token']}"}


async def _organization(server: Client, user: dict[str, str]) -> None:
    org = await ok(server, "GET", "/api/dashboard/organization", user)
    assert (org["planSlug"], org["planName"], org["status"]) == ("free", "Free", "active")
    assert set(org["limits"]) == {"maxAgents", "maxConcurrentCalls", "maxCallDurationSec", "maxMonthlyMinutes"}
    renamed = await ok(server, "PATCH", "/api/dashboard/organization", user, '{ "name": "New Name" }')
    assert renamed["name"] == "New Name"
    stats = await ok(server, "GET", "/api/dashboard/stats", user)
    assert stats == {"totalCalls": 0, "activeAgents": 0, "totalMinutes": 0, "averageDurationSec": 0}


async def _model_search_on_free(server: Client, user: dict[str, str]) -> None:
    shown = parsed('"modelId": "gpt-4o-mini"')
    page = await ok(server, "GET", "/api/dashboard/models/search?category=llm&query=gpt&skip=0&limit=10", user)
    same_shape(shown, page)
    assert (page["skip"], page["limit"]) == (0, 10) and page["total"] == len(page["items"])
    hits = {hit["modelId"]: hit for hit in page["items"] if hit["source"] == "global"}
    for hit in shown["items"]:  # gpt-4o-mini allowed, gpt-4o needs pro: as the reference shows
        assert {k: hits[hit["modelId"]][k] for k in ("label", "allowed", "requiredPlan", "providerKey")} == {
            k: hit[k] for k in ("label", "allowed", "requiredPlan", "providerKey")
        }
    allowed = [hit["allowed"] for hit in page["items"]]
    assert allowed == sorted(allowed, reverse=True)  # allowed first, then plan-gated
    default = await ok(server, "GET", "/api/dashboard/models/search?category=tts", user)
    assert default["limit"] == 10 and len(default["items"]) == 10 and all(hit["language"] for hit in default["items"])


async def _api_keys(server: Client, user: dict[str, str]) -> str:
    created = await ok(server, "POST", "/api/dashboard/api-keys", user, '{ "name": "Production Key" }', status=201)
    assert re.fullmatch(r"vx_[0-9a-f]{48}", created["rawKey"])
    listed = await ok(server, "GET", "/api/dashboard/api-keys", user)
    assert isinstance(listed, list) and {"keyPrefix", "name", "createdAt", "lastUsedAt"} <= set(listed[0])
    assert created["rawKey"] not in str(listed) and all("keyHash" not in item for item in listed)
    spare = await ok(server, "POST", "/api/dashboard/api-keys", user, '{ "name": "Production Key" }', status=201)
    assert await ok(server, "DELETE", f"/api/dashboard/api-keys/{spare['_id']}", user) == {"deleted": True}
    code, _ = await send(server, "GET", "/api/dashboard/plan", {"x-api-key": spare["rawKey"]})
    assert code == 401  # revoked
    return str(created["rawKey"])


async def _global(server: Client, headers: dict[str, str], key: str, category: str) -> str:
    providers = await ok(server, "GET", f"/api/dashboard/providers?category={category}", headers)
    return next(p["_id"] for p in providers if p["providerKey"] == key and p["source"] == "global")


async def _agents(server: Client, user: dict[str, str]) -> dict[str, Any]:
    ids = [
        await _global(server, user, key, cat)
        for key, cat in (("groq", "llm"), ("elevenlabs", "tts"), ("deepgram", "stt"))
    ]
    body = with_ids(example('"name": "Sales Bot",\n  "persona"'), *ids)
    agent = await ok(server, "POST", "/api/dashboard/agents", user, body, status=201)
    [shown] = parsed('"pauseReason": null')
    same_shape(shown, agent)
    assert (agent["ttsModelId"], agent["status"], agent["pauseReason"]) == ("21m00Tcm4TlvDq8ikWAM", "active", None)
    assert agent["thresholds"]["silenceTimeoutMs"] == 700 and agent["thresholds"]["endpointingMs"] == 200
    listed = await ok(server, "GET", "/api/dashboard/agents", user)
    same_shape([shown], listed)
    assert [item["_id"] for item in listed] == [agent["_id"]]
    one = await ok(server, "GET", f"/api/dashboard/agents/{agent['_id']}", user)
    assert (one["status"], one["pauseReason"]) == ("active", None)
    patched = await ok(server, "PATCH", f"/api/dashboard/agents/{agent['_id']}", user, '{"name": "Sales Bot 2"}')
    assert patched["name"] == "Sales Bot 2" and patched["thresholds"] == agent["thresholds"]
    return patched  # type: ignore[no-any-return]


async def _providers(server: Client, user: dict[str, str], agent: dict[str, Any]) -> None:
    registry = await ok(server, "GET", "/api/dashboard/providers/registry", user)
    assert isinstance(registry, list) and all(entry["models"] for entry in registry)
    everything = await ok(server, "GET", "/api/dashboard/providers", user)
    assert everything and all(p["source"] == "global" for p in everything)
    assert await ok(server, "GET", "/api/dashboard/providers?client=true", user) == []
    mine = await ok(server, "POST", "/api/dashboard/providers", user, example('"name": "My OpenAI"'), status=201)
    assert mine["source"] == "client" and mine["credentialsSet"] is True and "credentials" not in mine
    assert [p["_id"] for p in await ok(server, "GET", "/api/dashboard/providers?client=true", user)] == [mine["_id"]]
    assert (await ok(server, "GET", f"/api/dashboard/providers/{mine['_id']}", user))["name"] == "My OpenAI"
    patch = '{ "name": "Updated Name", "active": false }'
    updated = await ok(server, "PATCH", f"/api/dashboard/providers/{mine['_id']}", user, patch)
    assert (updated["name"], updated["active"]) == ("Updated Name", False)
    await ok(server, "PATCH", f"/api/dashboard/providers/{mine['_id']}", user, '{"active": true}')
    body = f'{{"llmProviderId": "{mine["_id"]}", "llmModelId": "gpt-4o"}}'
    await ok(server, "PATCH", f"/api/dashboard/agents/{agent['_id']}", user, body)
    code, in_use = await send(server, "DELETE", f"/api/dashboard/providers/{mine['_id']}", user)
    assert code == 409 and in_use["agents"] == [{"_id": agent["_id"], "name": agent["name"]}]
    assert isinstance(in_use["error"], str)


async def _a_call_on_the_agent(
    server: Client, services: Services, user: dict[str, str], key: str, agent: dict[str, Any]
) -> None:
    """The reference's Twilio webhook, then a whole call on the agent, its record and usage.

    The scripted providers stand in for Groq, ElevenLabs and Deepgram; the agent keeps the reference's
    thresholds: a 400 ms hesitation (longer than endpointingMs 200, shorter than silenceTimeoutMs 700) does not
    end the caller's turn, and the turn ends 700 ms after the caller's last sound.
    """
    scripted = [await _global(server, user, "scripted", c) for c in ("llm", "tts", "stt")]
    number = "+15005550006"
    body = (
        f'{{"llmProviderId": "{scripted[0]}", "llmModelId": "scripted", "ttsProviderId": "{scripted[1]}",'
        f' "ttsModelId": "scripted", "sttProviderId": "{scripted[2]}", "phoneNumbers": ["{number}"]}}'
    )
    patched = await ok(server, "PATCH", f"/api/dashboard/agents/{agent['_id']}", user, body)
    assert patched["thresholds"]["silenceTimeoutMs"] == 700

    answer_sid = "CA" + "1" * 32
    answer = await post_signed(server, f"/api/twilio/voice?api_key={key}", call_params(number, answer_sid))
    assert answer.status == 200 and answer.content_type == "text/xml"
    twiml = parse_twiml(await answer.text())
    assert f"/api/twilio/stream/{twiml['params']['callId']}/" in twiml["stream"]  # the call and its token in the path
    # That call's stream never opens: Twilio reports it failed, which finalizes it. The caller places the next.
    failed = {**call_params(number), "CallSid": answer_sid, "CallStatus": "failed", "SequenceNumber": "1"}
    assert (await post_signed(server, f"/api/twilio/status?api_key={key}", failed)).status == 204

    config = CallConfig(
        base_url=f"http://127.0.0.1:{server.server.port}", api_key=key, auth_token=AUTH_TOKEN, to_number=number
    )
    call = SimulatedCall(config)
    assert await call.dial()
    assert await call.wait_for_agent_silence(timeout=10)  # "Hi! How can I help?"
    turn = await call.say(with_pause(spoken("I would like to book"), spoken("a demo next week"), 400))
    assert turn is not None
    assert await call.wait_for_agent_silence(timeout=10)
    await call.hangup()
    result = call.result()
    await call.close()
    assert result.violations == []
    call_id = result.custom_parameters["callId"]

    record = await _finished_call(server, user, call_id)
    users = [entry for entry in record["transcript"] if entry["role"] == "user"]
    assert len(users) == 1  # the hesitation did not end the turn
    delay = record["turns"][0]["end_of_turn_delay"]
    assert 700 <= delay < 800, delay  # silenceTimeoutMs, not endpointingMs
    assert {"transcript", "summary", "sentiment", "metrics"} <= set(record)

    shown_query = "agentId=...&status=completed&skip=0&limit=20".replace("...", agent["_id"])
    page = await ok(server, "GET", f"/api/dashboard/calls?{shown_query}", user)
    assert set(page) == {"items", "total", "skip", "limit"} and [c["_id"] for c in page["items"]] == [call_id]
    assert (await ok(server, "GET", f"/api/dashboard/calls?agentId={agent['_id']}&status=failed", user))["total"] == 1
    assert await ok(server, "GET", "/api/dashboard/calls/count", user) == {"count": 2}
    days = await ok(server, "GET", "/api/dashboard/analytics/usage?days=30", user)
    assert isinstance(days, list) and len(days) == 30
    assert set(days[-1]) >= {"calls", "minutes", "tokens", "ttsChars"} and days[-1]["calls"] >= 1


async def _finished_call(server: Client, user: dict[str, str], call_id: str) -> dict[str, Any]:
    for _ in range(200):
        call = await ok(server, "GET", f"/api/dashboard/calls/{call_id}", user)
        if call["status"] != "active":
            return call  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    raise AssertionError("the call was never finalized")


async def _errors(server: Client, user: dict[str, str]) -> None:
    cases = [
        ("POST", "/api/dashboard/agents", user, '{"name": "No providers"}', 400),
        ("GET", "/api/dashboard/agents", {}, None, 401),
        ("GET", f"/api/dashboard/agents/{ObjectId()}", user, None, 404),
        ("POST", "/api/auth/signup", {}, example('"orgName": "Acme Corp"'), 409),
    ]
    for method, path, headers, body, status in cases:
        code, payload = await send(server, method, path, headers, body)
        assert code == status and set(payload) >= {"error"} and isinstance(payload["error"], str), (path, payload)
