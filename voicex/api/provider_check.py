"""``POST /api/dashboard/providers/:id/test``: one minimal real request, so users can check their keys.

The request is tiny on purpose (a global provider spends the platform's credit): a completion of at most
``PROBE_MAX_TOKENS`` tokens, one word of speech, a recognition session opened and closed without audio.
An org's own provider is reached through the outbound policy (providers/egress.py), and the answer is a short
classified reason, never the upstream's reply: the endpoint must not read internal pages for a tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from typing import cast

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r401, r403, r404
from pydantic import BaseModel, Field

from providers.base import (
    ChatMessage,
    FailureKind,
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
from voicex.calls.builder import provider_credentials, provider_egress
from voicex.platform.services import services
from voicex.web.auth import auth
from voicex.web.http import json_response

routes = web.RouteTableDef()
log = logging.getLogger(__name__)

CHECK_TIMEOUT_SEC = 15.0
PROBE_MAX_TOKENS = 3
PROBE_TEXT = "Test."
REASONS: dict[FailureKind, str] = {
    "unreachable": "unreachable: could not connect to the provider",
    "timeout": "timeout: the provider did not answer in time",
    "auth": "auth refused: the provider rejected the credentials",
    "bad_response": "bad response from the provider",
    "refused": "refused by the egress policy",
}


class ProviderCheckOut(BaseModel):
    ok: bool
    latencyMs: float | None = Field(description="time to the provider's first answer")
    error: str | None


async def _probe(provider: object, category: str) -> None:
    if category == "llm" and isinstance(provider, LLMProvider):
        messages = [ChatMessage("user", "Reply with the single word OK.")]
        options = LLMOptions(temperature=0, max_tokens=PROBE_MAX_TOKENS)
        reply = cast(AsyncGenerator[LLMChunk, None], provider.stream_chat(messages, options))
        async with contextlib.aclosing(reply) as tokens:
            async for token in tokens:
                if token.text:
                    return
        return
    if category == "tts" and isinstance(provider, TTSProvider):
        speech = cast(AsyncGenerator[bytes, None], provider.synthesize(PROBE_TEXT, TTSOptions()))
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
        200: The outcome; ``ok: false`` with a short classified reason when it failed (never the upstream's reply)
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
            provider_egress(svc, provider),
        )
    except ProviderError as exc:  # the server's own words about the configuration: nothing was sent
        return _result(False, None, exc.message)
    try:
        try:
            await asyncio.wait_for(_probe(adapter, provider["category"]), CHECK_TIMEOUT_SEC)
        finally:
            await adapter.aclose()
    except ProviderError as exc:
        log.info("provider test failed", extra={"provider": str(provider["_id"]), "error": str(exc)})
        return _result(False, None, failure_reason(exc))
    except TimeoutError:
        return _result(False, None, REASONS["timeout"])
    return _result(True, round((time.perf_counter() - started) * 1000, 1), None)


def failure_reason(exc: ProviderError) -> str:
    """What a tenant may read about a failed request: its class, our policy's reason, at most an HTTP status."""
    kind = exc.kind or "bad_response"
    if kind == "refused":
        return f"{REASONS[kind]}: {exc.message}"
    if kind == "bad_response" and exc.status is not None:
        return f"{REASONS[kind]} (HTTP {exc.status})"
    return REASONS[kind]


def _result(ok: bool, latency: float | None, error: str | None) -> web.Response:
    return json_response({"ok": ok, "latencyMs": latency, "error": error})
