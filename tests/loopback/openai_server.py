"""A loopback server speaking OpenAI's (and Groq's and Ollama's) HTTP wire protocol, for the real SDKs.

Emulates ``POST /v1/chat/completions`` (OpenAI, Ollama), ``POST /openai/v1/chat/completions`` (the path the
``groq`` SDK appends to ``https://api.groq.com``) and ``POST /v1/audio/speech``. Chat replies are SSE
``data: {chunk}`` lines in the vendors' chunk shapes ending in ``data: [DONE]``; OpenAI sends usage in an extra
``choices: []`` chunk when ``stream_options.include_usage`` is set, Groq in ``x_groq.usage`` on the finishing
chunk (or top-level ``usage``, per ``groq_usage``). Speech replies are raw PCM in chunks.

``mode`` switches the failure a test wants; every request is recorded so tests can assert what was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

Mode = Literal[
    "ok",  # the whole reply
    "unauthorized",  # 401 with the vendor's error JSON
    "server_error",  # 500 with the vendor's error JSON
    "stall_headers",  # accept the request, then send nothing
    "stall",  # send the first piece of the reply, then nothing
    "drop",  # send the first piece of the reply, then close the connection
    "cut_short",  # chat: send the first words, then a clean ``data: [DONE]`` with no finishing chunk
    "malformed",  # a broken SSE data line (chat) or an HTML page with status 200 (speech)
    "hold",  # send the first piece, wait for ``release``, then the rest
    "endless",  # keep sending until the client goes away, then set ``disconnected``
]

_OPENAI_401 = {
    "error": {
        "message": "Incorrect API key provided: sk-bad. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}
_GROQ_401 = {"error": {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}}
_SERVER_500 = {
    "error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]


class OpenAILoopback:
    """One server for all three vendors; ``openai_base_url`` and ``groq_base_url`` are what the SDKs take."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host  # any 127.x address: egress tests tell loopback addresses apart
        self.mode: Mode = "ok"
        self.tokens: list[str] = ["Hello", " there", "! How", " can I", " help?"]
        self.prompt_tokens = 17
        self.groq_usage: Literal["x_groq", "usage", "both", "none"] = "x_groq"
        self.honor_include_usage = True  # False: like an OpenAI-compatible server that ignores stream_options
        self.audio = bytes(range(256)) * 40  # 10240 bytes of recognisable "PCM"
        self.audio_chunk_bytes = 1001  # odd on purpose: network chunks need not hold whole samples
        self.stall_seconds = 30.0
        self.requests: list[RecordedRequest] = []
        self.release = asyncio.Event()
        self.disconnected = asyncio.Event()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.root_url = ""

    @property
    def openai_base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def groq_base_url(self) -> str:
        return self.root_url

    async def start(self) -> OpenAILoopback:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai_chat)
        app.router.add_post("/openai/v1/chat/completions", self._groq_chat)
        app.router.add_post("/v1/audio/speech", self._speech)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.root_url = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        self._closing.set()
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- handlers ---------------------------------------------------------------------------------------

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, groq=False)

    async def _groq_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._chat(request, groq=True)

    async def _chat(self, request: web.Request, *, groq: bool) -> web.StreamResponse:
        body = await self._record(request)
        if (failure := self._failure(groq=groq)) is not None:
            return failure
        if self.mode == "stall_headers":
            await self._pause(self.stall_seconds)
            return web.Response(status=504)  # the client has long given up
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        chunks = self._groq_chunks(body) if groq else self._openai_chunks(body)
        lines = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks]
        if self.mode == "malformed":
            lines.insert(2, b'data: {"id": "chatcmpl-loop", "choices": [{"delta": {"content": "oops\n\n')
        lines.append(b"data: [DONE]\n\n")
        if self.mode == "endless":
            await response.write(lines[0])
            await self._write_until_gone(response, lines[1])
            return response
        for index, line in enumerate(lines):
            if index == 2 and not await self._interrupt(request, response):
                return response
            await response.write(line)
        await response.write_eof()
        return response

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if (failure := self._failure(groq=False)) is not None:
            return failure
        if self.mode == "stall_headers":
            await self._pause(self.stall_seconds)
            return web.Response(status=504)  # the client has long given up
        if self.mode == "malformed":
            return web.Response(status=200, text="<html><body>Gateway login</body></html>", content_type="text/html")
        response = web.StreamResponse(headers={"Content-Type": "audio/pcm"})
        await response.prepare(request)
        size = self.audio_chunk_bytes
        pieces = [self.audio[start : start + size] for start in range(0, len(self.audio), size)]
        if self.mode == "endless":
            await self._write_until_gone(response, pieces[0])
            return response
        for index, piece in enumerate(pieces):
            if index == 1 and not await self._interrupt(request, response):
                return response
            await response.write(piece)
        await response.write_eof()
        return response

    # --- helpers ----------------------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body = await request.json()
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.requests.append(RecordedRequest(request.path, headers, body))
        return body

    def _failure(self, *, groq: bool) -> web.Response | None:
        if self.mode == "unauthorized":
            return web.json_response(_GROQ_401 if groq else _OPENAI_401, status=401)
        if self.mode == "server_error":
            return web.json_response(_SERVER_500, status=500)
        return None

    async def _interrupt(self, request: web.Request, response: web.StreamResponse) -> bool:
        """Apply a mid-stream mode after the first piece of the reply; False when the reply must stop here."""
        if self.mode == "stall":
            await self._pause(self.stall_seconds)
            return False
        if self.mode == "drop":
            assert request.transport is not None
            request.transport.close()  # no terminating chunk: the body ends early
            return False
        if self.mode == "cut_short":
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            return False
        if self.mode == "hold":
            await self.release.wait()
        return not self._closing.is_set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _write_until_gone(self, response: web.StreamResponse, piece: bytes) -> None:
        try:
            while not self._closing.is_set():
                await response.write(piece)
                await asyncio.sleep(0.01)
        except ConnectionError:
            self.disconnected.set()

    def _chunk(self, body: dict[str, Any], choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": "chatcmpl-loopback",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "system_fingerprint": "fp_loopback",
            "choices": choices,
            **extra,
        }

    def _deltas(self) -> list[tuple[dict[str, Any], str | None]]:
        first = ({"role": "assistant", "content": ""}, None)
        words = [({"content": token}, None) for token in self.tokens]
        return [first, *words, ({}, "stop")]

    def _usage(self) -> dict[str, int]:
        completion = len(self.tokens)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def _openai_chunks(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        include_usage = self.honor_include_usage and bool((body.get("stream_options") or {}).get("include_usage"))
        extra: dict[str, Any] = {"usage": None} if include_usage else {}
        chunks = [
            self._chunk(body, [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra)
            for delta, finish in self._deltas()
        ]
        if include_usage:
            chunks.append(self._chunk(body, [], usage=self._usage()))
        return chunks

    def _groq_chunks(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        chunks = []
        deltas = self._deltas()
        for index, (delta, finish) in enumerate(deltas):
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            x_groq: dict[str, Any] = {"id": "req_loopback"}
            extra: dict[str, Any] = {}
            if index == len(deltas) - 1:
                usage = {**self._usage(), "queue_time": 0.01, "prompt_time": 0.002, "completion_time": 0.02}
                if self.groq_usage in ("x_groq", "both"):
                    x_groq["usage"] = usage
                if self.groq_usage in ("usage", "both"):
                    extra["usage"] = usage
            if index in (0, len(deltas) - 1):
                extra["x_groq"] = x_groq
            chunks.append(self._chunk(body, [choice], **extra))
        return chunks
