"""An agent whose provider cannot authenticate is paused and says why; a call that still reaches it hears an
apology, never silence."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest
from aiohttp import ClientSession, WSMsgType
from bson import ObjectId

from pipelines.audio import ulaw_to_pcm16
from scripts.twilio_sim import sign
from tests.factories import make_tenant
from tests.raw_stream import start_message
from tests.telephony import AUTH_TOKEN, call_params, make_line, parse_twiml, post_signed
from tests.test_telephony_stream import finalized

pytestmark = pytest.mark.scripted_providers


async def _global(client, tenant, key: str, category: str) -> str:
    providers = await (await client.get(f"/api/dashboard/providers?category={category}", headers=tenant.key)).json()
    return next(p["_id"] for p in providers if p["providerKey"] == key and p["source"] == "global")


async def test_a_provider_without_credentials_pauses_its_agents_naming_what_is_missing(server, services) -> None:
    tenant = await make_tenant(server, services, plan="starter")
    scripted = {c: await _global(server, tenant, "scripted", c) for c in ("stt", "tts")}
    body = {
        "name": "Desk",
        "persona": {"systemPrompt": "Be brief."},
        "llmProviderId": await _global(server, tenant, "groq", "llm"),
        "llmModelId": "llama-3.1-8b-instant",
        "ttsProviderId": scripted["tts"],
        "ttsModelId": "scripted",
        "sttProviderId": scripted["stt"],
        "phoneNumbers": ["+15005550123"],
    }
    created = await (await server.post("/api/dashboard/agents", json=body, headers=tenant.key)).json()
    # The server was started without GROQ_API_KEY: the agent's calls could only connect and stay silent.
    assert (created["status"], created["pauseReason"]) == (
        "paused",
        "LLM provider 'Groq LLM' has no API key: the server needs GROQ_API_KEY set",
    )
    refused = parse_twiml(await (await post_signed(server, _voice(tenant), call_params("+15005550123"))).text())
    assert refused["say"] and refused["hangup"]  # the caller hears why, then the call ends
    assert await services.db.calls.count_documents({}) == 0

    services.settings = services.settings.model_copy(update={"groq_api_key": "gsk-test"})
    again = await (await server.get(f"/api/dashboard/agents/{created['_id']}", headers=tenant.key)).json()
    assert (again["status"], again["pauseReason"]) == ("active", None)

    # An org's own provider stored without its key pauses the agent too, naming how to add it.
    own = await server.post(
        "/api/dashboard/providers",
        json={"category": "llm", "providerKey": "groq", "name": "Our Groq", "credentials": {"apiKey": "gsk-own"}},
        headers=tenant.key,
    )
    own_id = (await own.json())["_id"]
    patched = await server.patch(
        f"/api/dashboard/agents/{created['_id']}", json={"llmProviderId": own_id}, headers=tenant.key
    )
    assert (await patched.json())["status"] == "active"
    await services.db.providers.update_one({"_id": ObjectId(own_id)}, {"$set": {"credentials": None}})
    listed = await (await server.get("/api/dashboard/agents", headers=tenant.key)).json()
    assert listed[0]["pauseReason"] == (
        f"LLM provider 'Our Groq' has no API key: add it with PATCH /api/dashboard/providers/{own_id}"
    )


def _voice(tenant) -> str:
    return f"/api/twilio/voice?api_key={tenant.api_key}"


async def test_a_call_whose_agent_cannot_be_built_hears_an_apology_not_silence(server, services) -> None:
    line = await make_line(server, services)
    own = await server.post(
        "/api/dashboard/providers",
        json={"category": "llm", "providerKey": "groq", "name": "Our Groq", "credentials": {"apiKey": "gsk-own"}},
        headers=line.tenant.key,
    )
    own_id = (await own.json())["_id"]
    patch = {"llmProviderId": own_id, "llmModelId": "llama-3.1-8b-instant"}
    await server.patch(f"/api/dashboard/agents/{line.agent['_id']}", json=patch, headers=line.tenant.key)
    answer = parse_twiml(await (await post_signed(server, _voice(line.tenant), call_params(line.number))).text())
    assert "stream" in answer  # admitted while the provider still had its key ...
    await services.db.providers.update_one({"_id": ObjectId(own_id)}, {"$set": {"credentials": None}})

    # ... and the key is gone by the time Twilio opens the stream: no agent can run.
    url = answer["stream"]
    heard: list[bytes] = []
    async with (
        ClientSession() as http,
        http.ws_connect(url, headers={"X-Twilio-Signature": sign(AUTH_TOKEN, url)}) as ws,
    ):
        await ws.send_str(orjson.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}).decode())
        await ws.send_str(orjson.dumps(start_message(answer["params"])).decode())
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                break
            event = orjson.loads(message.data)
            if event["event"] == "media":
                heard.append(ulaw_to_pcm16(base64.b64decode(event["media"]["payload"])))
            elif event["event"] == "mark":  # played: echo it, as Twilio does
                await ws.send_str(
                    orjson.dumps({"event": "mark", "streamSid": event["streamSid"], "mark": event["mark"]}).decode()
                )
    pcm = np.frombuffer(b"".join(heard), dtype="<i2").astype(np.float64)
    assert pcm.size / 8000 > 1.0 and np.sqrt(np.mean(pcm**2)) > 300  # over a second of speech, not silence
    call = await finalized(services, answer["params"]["callId"])
    assert (call["status"], call["endReason"]) == ("failed", "provider_error")
    assert "no API key configured" in call["errors"][0]
