"""The embedded models are loaded at start only when an active agent uses them; otherwise the server stays small."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from bson import ObjectId

import providers.local as local_stack
from tests.voicex_process import clean_env, start_serve
from voicex.platform.settings import load_settings
from voicex.server.demo import ensure_demo_tenant
from voicex.server.runtime import Runtime
from voicex.server.warmup import local_models_in_use

needs_local = pytest.mark.skipif(not local_stack.installed(), reason="the local extra is not installed")
IDLE_RSS_LIMIT_MB = 300  # measured: ~90 MB without the models, ~700 MB with them


async def _global(services, key: str, category: str) -> ObjectId:
    return (await services.db.providers.find_one({"orgId": None, "providerKey": key, "category": category}))["_id"]


@pytest.mark.scripted_providers
async def test_only_an_active_agent_with_a_local_provider_in_a_slot_or_fallback_counts(services) -> None:
    scripted = {slot: await _global(services, "scripted", slot) for slot in ("stt", "llm", "tts")}
    agent = {"orgId": ObjectId(), "active": True, **{f"{slot}ProviderId": pid for slot, pid in scripted.items()}}
    await services.db.agents.insert_one(dict(agent))
    assert not await local_models_in_use(services.db)
    local_tts = {"providerId": await _global(services, "local", "tts"), "modelId": "piper-joe-medium"}
    await services.db.agents.insert_one({**agent, "active": False, "fallbacks": {"tts": [local_tts]}})
    assert not await local_models_in_use(services.db)
    await services.db.agents.insert_one({**agent, "fallbacks": {"tts": [local_tts]}})
    assert await local_models_in_use(services.db)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
@needs_local
def test_serve_with_no_local_agent_does_not_load_the_embedded_models(tmp_path: Path, mongo_uri: str) -> None:
    env = clean_env(
        VOICEX_MONGODB_URI=mongo_uri, VOICEX_DB_NAME=f"warm_{uuid.uuid4().hex[:8]}", VOICEX_LOG_LEVEL="INFO"
    )
    server = start_serve(env, tmp_path)
    try:
        server.wait_for_log("no active agent uses the embedded models")
        assert _rss_mb(server.process.pid) < IDLE_RSS_LIMIT_MB
    finally:
        assert server.stop() == 0
    assert '"embedded models ready"' not in server.log()


async def _seed_local_agent(settings) -> None:
    runtime = await Runtime.start(settings)
    try:
        await ensure_demo_tenant(runtime.services, "local")
    finally:
        await runtime.close()


@pytest.mark.slow
@needs_local
async def test_serve_warms_the_embedded_models_at_start_when_an_agent_uses_them(tmp_path: Path, mongo_uri: str) -> None:
    db_name = f"warm_{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path / "data"  # shared with the server below, so it reads the same generated secrets
    await _seed_local_agent(load_settings(mongodb_uri=mongo_uri, db_name=db_name, data_dir=data_dir))
    env = clean_env(
        VOICEX_MONGODB_URI=mongo_uri, VOICEX_DB_NAME=db_name, VOICEX_DATA_DIR=str(data_dir), VOICEX_LOG_LEVEL="INFO"
    )
    server = await asyncio.to_thread(start_serve, env, tmp_path)
    try:
        ready = await asyncio.to_thread(server.wait_for_log, '"embedded models ready"')
    finally:
        assert await asyncio.to_thread(server.stop) == 0
    assert '"ms":' in ready
