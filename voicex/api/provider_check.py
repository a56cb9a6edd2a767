"""``POST /api/dashboard/providers/:id/test``: one minimal real request, so users can check their keys."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from typing import cast

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r401, r403, r404
from pydantic import BaseModel, Field

from providers.base import (
    ChatMessage,
    LLMChunk,
    LLMOptions,
    LLMProvider,
    ProviderError,
    STTProvider,
    TTSOptions,
    TTSProvider,
)
from providers.registry import build
from voicex.api.openapi import ErrorOut, endpoint
from voicex.api.providers import visible_provider
from voicex.calls.builder import provider_credentials
from voicex.platform.services import services
from voicex.web.auth import auth
from voicex.web.http import json_response

routes = web.RouteTableDef()

CHECK_TIMEOUT_SEC = 15.0


class ProviderCheckOut(BaseModel):
    ok: bool
    latencyMs: float | None = Field(description="time to the provider's first answer")
    error: str | None


async def _probe(provider: object, category: str) -> None:
    if category == "llm" and isinstance(provider, LLMProvider):
        messages = [ChatMessage("user", "Reply with the single word OK.")]
        options = LLMOptions(temperature=0, max_tokens=3)
        reply = cast(AsyncGenerator[LLMChunk, None], provider.stream_chat(messages, options))
        async with contextlib.aclosing(reply) as tokens:
            async for token in tokens:
                if token.text:
                    return
        return
    if category == "tts" and isinstance(provider, TTSProvider):
        speech = cast(AsyncGenerator[bytes, None], provider.synthesize("Test.", TTSOptions()))
        async with contextlib.aclosing(speech) as audio:
            async for piece in audio:
                if piece:
                    return
        raise ProviderError(category, "no audio returned")
    if category == "stt" and isinstance(provider, STTProvider):
        session = await provider.open_session()
        await session.close()
        return
    raise ProviderError(category, "unsupported provider")


@routes.post("/api/dashboard/providers/{id}/test")
@endpoint
async def check_provider(
    request: web.Request, id: str, /
) -> r200[ProviderCheckOut] | r401[ErrorOut] | r403[ErrorOut] | r404[ErrorOut]:
    """Make one minimal request with the provider's credentials (a short completion, a word of speech,
    or opening a recognition session) and report whether it worked and how long it took.

    Tags: providers
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The outcome; ``ok: false`` with the provider's error when it failed
        404: No such provider for this organization
    """
    context = auth(request)
    svc = services(request)
    provider = await visible_provider(svc, context.org_id, id)
    model = next((m["modelId"] for m in provider.get("models") or []), "")
    started = time.perf_counter()
    try:
        adapter = build(
            provider["providerKey"],
            provider["category"],
            model,
            provider_credentials(svc, provider),
            provider.get("settings") or {},
        )
        try:
            await asyncio.wait_for(_probe(adapter, provider["category"]), CHECK_TIMEOUT_SEC)
        finally:
            await adapter.aclose()
    except ProviderError as exc:
        return _result(False, None, exc.message)
    except TimeoutError:
        return _result(False, None, f"no answer within {CHECK_TIMEOUT_SEC:g} s")
    return _result(True, round((time.perf_counter() - started) * 1000, 1), None)


def _result(ok: bool, latency: float | None, error: str | None) -> web.Response:
    return json_response({"ok": ok, "latencyMs": latency, "error": error})
