"""A loopback ElevenLabs HTTP API: the streaming text-to-speech endpoint the official SDK calls.

``POST /v1/text-to-speech/{voice_id}/stream?output_format=...`` with a JSON body (text, model_id,
language_code, voice_settings) and the ``xi-api-key`` header, answered with chunked audio bytes, or with
ElevenLabs' error shape ``{"detail": {"status": ..., "message": ...}}``. The test chooses the behaviour
(``mode``) and reads back what the SDK sent (``requests``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Mode = Literal["ok", "error", "stall_before_headers", "stall_mid_stream", "drop", "json_200", "empty"]


@dataclass
class RecordedRequest:
    voice_id: str
    query: dict[str, str]
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class ElevenLabsServer:
    api_key: str = "xi-test-key"
    audio: bytes = b""
    chunk_size: int = 160  # 20 ms of 8 kHz μ-law per write
    mode: Mode = "ok"
    error_status: int = 500
    error_body: dict[str, Any] = field(
        default_factory=lambda: {"detail": {"status": "internal_error", "message": "Something went wrong"}}
    )
    gate: asyncio.Event | None = None  # when set up, audio after the first chunk waits for it
    requests: list[RecordedRequest] = field(default_factory=list)
    other_paths: list[str] = field(default_factory=list)  # requests to any other path (answered 404)
    finished_sending: bool = False

    def __post_init__(self) -> None:
        self._release = asyncio.Event()  # set at close: ends any stalled handler
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> ElevenLabsServer:
        app = web.Application()
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream", self._stream)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self

    async def _other(self, request: web.Request) -> web.Response:
        self.other_paths.append(request.path_qs)
        return web.json_response({"detail": {"status": "not_found", "message": "no such endpoint"}}, status=404)

    async def close(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _stall(self) -> None:
        try:
            await asyncio.wait_for(self._release.wait(), 30)
        except TimeoutError:
            pass

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(
            RecordedRequest(request.match_info["voice_id"], dict(request.query), body, dict(request.headers))
        )
        if request.headers.get("xi-api-key") != self.api_key:
            detail = {"status": "invalid_api_key", "message": "Invalid API key"}
            return web.json_response({"detail": detail}, status=401)
        if self.mode == "error":
            return web.json_response(self.error_body, status=self.error_status)
        if self.mode == "stall_before_headers":
            await self._stall()
            return web.Response(status=204)
        if self.mode == "json_200":
            return web.json_response({"detail": "this is not audio"})
        response = web.StreamResponse(headers={"Content-Type": "audio/basic"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if self.mode == "empty":
            await response.write_eof()
            return response
        chunks = [self.audio[i : i + self.chunk_size] for i in range(0, len(self.audio), self.chunk_size)]
        for index, chunk in enumerate(chunks):
            await response.write(chunk)
            if index == 0 and self.mode == "stall_mid_stream":
                await self._stall()
                return response
            if index == 0 and self.mode == "drop":
                await asyncio.sleep(0.05)  # let the first chunk reach the client before the connection dies
                assert request.transport is not None
                request.transport.close()
                return response
            if index == 0 and self.gate is not None:
                await self.gate.wait()
        self.finished_sending = True
        await response.write_eof()
        return response
