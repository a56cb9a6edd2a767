"""Helpers for telephony tests: a server with a public URL and the scripted providers, an agent, and
signed Twilio webhooks."""

from __future__ import annotations

import itertools
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from scripts.twilio_sim import CallerAudio, caller_audio, synthesize
from scripts.twilio_sim.caller_audio import ULAW_SILENCE_FRAME
from tests.factories import Tenant, make_tenant
from voicex.platform.embedded_db import free_port
from voicex.platform.services import Services
from voicex.server.app import create_app

AUTH_TOKEN = "twilio-test-auth-token-0123456789"
_numbers = itertools.count(1000)


@dataclass
class Line:
    """A tenant with one agent on the scripted providers, reachable at a phone number."""

    tenant: Tenant
    agent: dict[str, Any]
    number: str


async def start_server(services: Services) -> TestClient[web.Request, web.Application]:
    port = free_port()
    services.settings = services.settings.model_copy(
        update={"public_url": f"http://127.0.0.1:{port}", "twilio_auth_token": AUTH_TOKEN}
    )
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(create_app(services), host="127.0.0.1", port=port)
    )
    await client.start_server()
    return client


async def make_line(client, services: Services, plan: str = "starter", **agent: Any) -> Line:
    tenant = await make_tenant(client, services, plan=plan)
    providers = await (await client.get("/api/dashboard/providers", headers=tenant.key)).json()
    scripted = {p["category"]: p["_id"] for p in providers if p["providerKey"] == "scripted"}
    assert set(scripted) == {"stt", "llm", "tts"}, "scripted providers must be enabled"
    number = f"+1500555{next(_numbers):04d}"
    body = {
        "name": "Scripted agent",
        "persona": {"systemPrompt": "Be brief.", "greeting": "Hello from Voicex."},
        "llmProviderId": scripted["llm"],
        "llmModelId": "scripted",
        "ttsProviderId": scripted["tts"],
        "ttsModelId": "scripted",
        "sttProviderId": scripted["stt"],
        "sttModelId": "scripted",
        "phoneNumbers": [number],
        **agent,
    }
    response = await client.post("/api/dashboard/agents", json=body, headers=tenant.key)
    assert response.status == 201, await response.text()
    return Line(tenant, await response.json(), number)


def stream_path(params: dict[str, str]) -> str:
    """The stream URL's path for the call of ``params`` (``parse_twiml(...)["params"]``)."""
    return f"/api/twilio/stream/{params['callId']}/{params['token']}"


def call_params(to: str, call_sid: str | None = None, account_sid: str = "AC" + "0" * 32) -> dict[str, str]:
    return {
        "CallSid": call_sid or "CA" + secrets.token_hex(16),
        "AccountSid": account_sid,
        "From": "+15005550001",
        "To": to,
        "CallStatus": "ringing",
        "ApiVersion": "2010-04-01",
        "Direction": "inbound",
        "Caller": "+15005550001",
        "Called": to,
        "FromCity": "",
        "FromState": "",
        "CallerName": "",
    }


async def post_signed(
    client, path_qs: str, params: dict[str, str], token: str = AUTH_TOKEN, signature: str | None = None
):
    url = f"{client.server.scheme}://{client.server.host}:{client.server.port}{path_qs}"
    if signature is None:
        signature = RequestValidator(token).compute_signature(url, params)
    return await client.post(path_qs, data=params, headers={"X-Twilio-Signature": signature})


def parse_twiml(text: str) -> dict[str, Any]:
    """What the TwiML says; for a stream, ``params`` holds the call id and the token of its URL's path
    (``…/api/twilio/stream/{callId}/{token}``) with the <Parameter>s."""
    root = ET.fromstring(text)
    stream = root.find("./Connect/Stream")
    if stream is not None:
        url = str(stream.get("url"))
        call_id, token = urlsplit(url).path.split("/")[-2:]
        params = {
            "callId": call_id,
            "token": token,
            **{p.get("name"): p.get("value") for p in stream.findall("Parameter")},
        }
        return {"stream": url, "params": params, "hangup_after": root.find("Hangup") is not None}
    say = root.find("Say")
    return {"say": say.text if say is not None else None, "hangup": root.find("Hangup") is not None}


async def hold_slots(client, line: Line, count: int) -> list[dict[str, str]]:
    """Admit ``count`` calls whose streams never start: each holds one of the org's concurrent-call slots."""
    held = []
    for _ in range(count):
        params = call_params(line.number)
        answer = parse_twiml(
            await (await post_signed(client, f"/api/twilio/voice?api_key={line.tenant.api_key}", params)).text()
        )
        assert "stream" in answer, answer
        held.append(params)
    return held


def spoken(text: str) -> CallerAudio:
    """``text`` spoken (espeak-ng), cut to its first and last speech frames: no silence around the words."""
    clip = caller_audio(synthesize(text))
    speech = [i for i, s in enumerate(clip.speech) if s]
    return CallerAudio(clip.frames[speech[0] : speech[-1] + 1], clip.speech[speech[0] : speech[-1] + 1])


def with_pause(first: CallerAudio, second: CallerAudio, pause_ms: int) -> CallerAudio:
    """One utterance: ``first``, exactly ``pause_ms`` of line silence, ``second``."""
    gap = pause_ms // 20
    return CallerAudio(
        first.frames + [ULAW_SILENCE_FRAME] * gap + second.frames, first.speech + [False] * gap + second.speech
    )
