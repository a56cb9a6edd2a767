"""``voicex demo``: the whole product in one command, offline.

Starts the server on the embedded database with the embedded offline providers, creates (idempotently) a
demo organization, admin, API key and agent, places a simulated Twilio call in which the caller says a
couple of things (synthesized now, nothing large committed), then prints the transcript with per-turn
latencies and writes what the caller heard to a WAV.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from bson import ObjectId

import providers.local as local_stack
from voicex.agents.migration import SCHEMA_VERSION
from voicex.platform.embedded_db import free_port
from voicex.platform.errors import VoicexError
from voicex.platform.passwords import hash_password
from voicex.platform.services import Services
from voicex.platform.settings import Settings
from voicex.server.admin import create_platform_admin
from voicex.server.app import create_app
from voicex.server.runtime import Runtime
from voicex.store import api_keys, organizations, users
from voicex.store.agents import AgentDoc, save_demo_agent
from voicex.store.calls import CallDoc, get_call
from voicex.store.organizations import TwilioCredentials
from voicex.store.providers import list_globals_of_type
from voicex.web.auth import api_key_prefix, hash_api_key, new_api_key

DEMO_ORG = "Voicex Demo"
DEMO_EMAIL = "demo@voicex.local"
DEMO_ACCOUNT_SID = "AC" + "de" * 16  # the demo org's Twilio account: its simulated calls say they come from it
UTTERANCES = ("Hi! What time do you open tomorrow?", "Great, thank you. Goodbye!")
PERSONA = {
    "systemPrompt": "You are the friendly receptionist of Sunny Dental Clinic. The clinic opens at 8 am and closes"
    " at 6 pm on weekdays. Answer in one short sentence.",
    "greeting": "Hello, Sunny Dental Clinic. How can I help you?",
    "language": "en",
}


def _load_simulator() -> Any:
    """The simulated caller lives in scripts/ (a test tool, not part of the server): the source tree's, or the
    working directory's (the Docker image copies it to /app)."""
    roots = [Path(__file__).resolve().parents[2], Path.cwd()]
    root = next((r for r in roots if (r / "scripts" / "twilio_sim").is_dir()), None)
    if root is None:
        raise VoicexError("voicex demo needs the source checkout (scripts/twilio_sim is missing)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import scripts.twilio_sim as sim

    return sim


async def _state(settings: Settings) -> dict[str, str]:
    path = settings.data_dir / "demo.json"
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _save_state(settings: Settings, state: dict[str, str]) -> None:
    path = settings.data_dir / "demo.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle)


async def ensure_demo_tenant(svc: Services, provider_key: str) -> tuple[str, str, AgentDoc]:
    """The demo org (active), its admin, an API key, Twilio credentials and agent; returns (key, token, agent)."""
    db, now = svc.db, dt.datetime.now(dt.UTC)
    state = await _state(svc.settings)
    org = await organizations.find_demo(db)
    if org is None:
        org = await organizations.insert(
            db,
            {
                "name": DEMO_ORG,
                "status": "active",
                "planSlug": "starter",
                "demo": True,
                "createdAt": now,
                "updatedAt": now,
            },
        )
    if not await users.email_taken(db, DEMO_EMAIL):
        await users.insert(
            db,
            {
                "orgId": org["_id"],
                "email": DEMO_EMAIL,
                "name": "Demo admin",
                "role": "admin",
                "platformAdmin": False,
                "passwordHash": hash_password(secrets.token_urlsafe(16)),
                "createdAt": now,
            },
        )
    if not await users.platform_admin_exists(db):
        await create_platform_admin(db, "admin@voicex.local", secrets.token_urlsafe(16))
    raw_key = state.get("apiKey", "")
    key = await api_keys.find_by_hash(db, hash_api_key(raw_key)) if raw_key else None
    if key is None or key["orgId"] != org["_id"]:
        raw_key = new_api_key()
        await api_keys.insert(
            db,
            {
                "orgId": org["_id"],
                "name": "demo",
                "keyHash": hash_api_key(raw_key),
                "keyPrefix": api_key_prefix(raw_key),
                "createdAt": now,
                "lastUsedAt": None,
                "createdBy": None,
            },
        )
    token = state.get("twilioAuthToken") or secrets.token_hex(16)
    box = svc.box
    twilio: TwilioCredentials = {"accountSid": DEMO_ACCOUNT_SID, "authToken": box.encrypt(token)}
    await organizations.activate_with_twilio(db, org["_id"], twilio)
    agent = await _ensure_agent(svc, org["_id"], provider_key, now)
    _save_state(svc.settings, {"apiKey": raw_key, "twilioAuthToken": token})
    return raw_key, token, agent


async def _ensure_agent(svc: Services, org_id: ObjectId, provider_key: str, now: dt.datetime) -> AgentDoc:
    globals_ = {p["category"]: p for p in await list_globals_of_type(svc.db, provider_key)}
    if set(globals_) != {"stt", "llm", "tts"}:
        raise VoicexError(f"the global '{provider_key}' providers are missing")
    defaults = svc.catalog.turn_taking.defaults()
    fields: AgentDoc = {
        "name": "Demo receptionist",
        "persona": PERSONA,
        "openingMode": "agent_first",
        "active": True,
        "phoneNumbers": ["+15005550006"],
        "llmConfig": {"temperature": 0.3, "maxTokens": 48},
        "ttsConfig": {"speed": 1.0},
        "fallbacks": {"llm": [], "tts": [], "stt": []},
        "thresholds": {
            name: defaults[name]
            for name in ("endpointingMs", "idleTimeoutMs", "interruptionSensitivity", "vad", "maxCallDurationSec")
        }
        | {"silenceTimeoutMs": 400},  # the caller's turn ends after 400 ms of silence (the default is 700)
        "sttProviderId": globals_["stt"]["_id"],
        "sttModelId": globals_["stt"]["models"][0]["modelId"],
        "llmProviderId": globals_["llm"]["_id"],
        "llmModelId": globals_["llm"]["models"][0]["modelId"],
        "ttsProviderId": globals_["tts"]["_id"],
        "ttsModelId": globals_["tts"]["models"][0]["modelId"],
        "schemaVersion": SCHEMA_VERSION,  # written with today's meanings: the start-up migration leaves it alone
        "updatedAt": now,
    }
    return await save_demo_agent(svc.db, org_id, fields, now)


async def _wait_finalized(svc: Services, call_id: str, timeout: float = 60.0) -> CallDoc | None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        call = await get_call(svc.db, ObjectId(call_id))
        if call is not None and call.get("status") != "active":
            return call
        await asyncio.sleep(0.2)
    return None


async def run_demo(settings: Settings, port: int | None, wav_path: Path | None) -> int:
    sim = _load_simulator()
    port = port or free_port()
    local = local_stack.installed()
    settings = settings.model_copy(
        update={
            "host": "127.0.0.1",
            "port": port,
            "public_url": f"http://127.0.0.1:{port}",
            "enable_scripted_providers": settings.enable_scripted_providers or not local,
        }
    )
    provider_key = "local" if local else "scripted"
    if not local:
        print(
            "The embedded offline models are not installed (pip install 'voicex[local]'): using the scripted"
            " test providers instead."
        )
    runtime = await Runtime.start(settings)
    runner = web.AppRunner(create_app(runtime.services), access_log=None)
    try:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print(f"Voicex is running on http://127.0.0.1:{port} (data in {settings.data_dir.resolve()})")
        api_key, token, agent = await ensure_demo_tenant(runtime.services, provider_key)
        if local:
            print("Loading the offline models…", flush=True)
            await local_stack.warm_up()
        call = sim.SimulatedCall(
            sim.CallConfig(
                base_url=settings.public_url,
                api_key=api_key,
                auth_token=token,
                account_sid=DEMO_ACCOUNT_SID,
                agent_id=str(agent["_id"]),
                timeout_s=30,
            )
        )
        print("Calling the demo agent…", flush=True)
        if not await call.dial():
            print(f"The call did not connect: {call.error or call.twiml}")
            return 1
        await call.wait_for_agent_silence(timeout=30)
        for text in UTTERANCES:
            print(f"  caller says: {text}", flush=True)
            await call.say(sim.synthesize(text))
            await call.wait_for_agent_silence(timeout=30)
        await call.hangup()
        wav = wav_path or settings.data_dir / "demo-call.wav"
        seconds = call.write_wav(wav)
        result = call.result()
        await call.close()
        record = await _wait_finalized(runtime.services, result.custom_parameters.get("callId", ""))
        _print_report(record, result, wav, seconds)
        return 0 if record is not None and result.violations == [] else 1
    finally:
        await runner.cleanup()
        await runtime.close()


def _print_report(record: CallDoc | None, result: Any, wav: Path, seconds: float) -> None:
    print("\nTranscript")
    for entry in (record or {}).get("transcript", []):
        if entry["role"] in ("user", "assistant"):
            who = "caller" if entry["role"] == "user" else "agent "
            print(f"  {who}: {entry['text']}{'  [interrupted]' if entry.get('interrupted') else ''}")
    print("\nPer turn (caller speech end → first agent audio heard)")
    server_turns = (record or {}).get("turns", [])
    for index, turn in enumerate(result.turns):
        latency = f"{turn.latency_ms:.0f} ms" if turn.latency_ms is not None else "no answer"
        detail = ""
        if index < len(server_turns):
            st = server_turns[index]
            parts = [
                f"{name} {st[key]:.0f} ms"
                for key, name in (
                    ("stt_final_latency", "stt"),
                    ("llm_ttft", "llm"),
                    ("llm_first_sentence", "first sentence"),
                    ("tts_ttfb", "tts"),
                )
                if st.get(key) is not None
            ]
            detail = f"  ({', '.join(parts)})" if parts else ""
        print(f"  turn {turn.index}: {latency}{detail}")
    if record is not None:
        print(
            f"\nCall {record['_id']}: {record['status']}, {record.get('durationSec', 0):.1f} s,"
            f" end reason {record.get('endReason')}, sentiment {record.get('sentiment')}"
        )
        if record.get("summary"):
            print(f"Summary: {record['summary']}")
    print(f"Protocol violations seen by the simulated Twilio: {len(result.violations)}")
    print(f"What the caller heard ({seconds:.1f} s): {wav.resolve()}")
