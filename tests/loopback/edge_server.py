"""A loopback Microsoft Edge "read aloud" TTS service: the WebSocket exchange the ``edge-tts`` package speaks.

The client connects to ``/consumer/speech/synthesize/readaloud/edge/v1?TrustedClientToken=…&Sec-MS-GEC=…``,
sends a ``Path:speech.config`` text message (output format) and a ``Path:ssml`` one (voice, prosody, text).
The service answers ``turn.start``, ``response``, binary ``Path:audio`` messages (a 2-byte big-endian header
length, the headers, then MP3 bytes), an empty audio message that ends the audio, a sentence boundary
``audio.metadata`` message and ``turn.end``. ``tone_mp3`` makes real MP3 audio for it at test time.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Literal

import av
import numpy as np
from aiohttp import web
from edge_tts.constants import TRUSTED_CLIENT_TOKEN

PATH = "/consumer/speech/synthesize/readaloud/edge/v1"
Mode = Literal["ok", "reject", "stall", "drop_close", "drop_abort", "bad_frame", "not_mp3", "no_audio"]


def tone_mp3(seconds: float, freq: float = 440.0, rate: int = 24000, bitrate: int = 48000) -> tuple[bytes, int]:
    """Raw MP3 frames (no container, as Edge streams them) of a sine tone, and its sample count."""
    count = round(seconds * rate)
    pcm = (0.3 * 32767 * np.sin(2 * math.pi * freq * np.arange(count) / rate)).astype(np.int16)
    encoder = av.CodecContext.create("libmp3lame", "w")
    encoder.sample_rate, encoder.layout, encoder.format, encoder.bit_rate = rate, "mono", "s16p", bitrate
    encoder.open()
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16p", layout="mono")
    frame.sample_rate, frame.pts = rate, 0
    fifo = av.AudioFifo()
    fifo.write(frame)
    packets = []
    while (part := fifo.read(encoder.frame_size, partial=True)) is not None:
        packets += encoder.encode(part)
    packets += encoder.encode(None)
    return b"".join(bytes(packet) for packet in packets), count


def _text(path: str, request_id: str, body: str) -> str:
    return f"X-RequestId:{request_id}\r\nContent-Type:application/json; charset=utf-8\r\nPath:{path}\r\n\r\n{body}"


def _binary(request_id: str, data: bytes, path: str = "audio", content_type: str | None = "audio/mpeg") -> bytes:
    headers = f"X-RequestId:{request_id}\r\n"
    if content_type:
        headers += f"Content-Type:{content_type}\r\n"
    headers += f"X-StreamId:{uuid.uuid4().hex.upper()}\r\nPath:{path}\r\n"
    encoded = headers.encode()
    return len(encoded).to_bytes(2, "big") + encoded + data


@dataclass
class EdgeRequest:
    query: dict[str, str]
    headers: dict[str, str]
    speech_config: dict[str, object] | None = None
    ssml: str = ""

    def ssml_attribute(self, name: str) -> str:
        match = re.search(rf"{name}='([^']*)'", self.ssml)
        return match.group(1) if match else ""

    @property
    def text(self) -> str:
        match = re.search(r"<prosody[^>]*>(.*)</prosody>", self.ssml, re.S)
        return match.group(1) if match else ""


@dataclass
class EdgeServer:
    audio: bytes = b""  # MP3 bytes sent for every request
    chunk_size: int = 720  # bytes of MP3 per audio message (five 48 kbps frames)
    mode: Mode = "ok"
    reject_status: int = 500
    gate: asyncio.Event | None = None  # when set up, audio after the first message waits for it
    requests: list[EdgeRequest] = field(default_factory=list)
    finished_sending: bool = False

    def __post_init__(self) -> None:
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.wss_url = ""

    async def start(self) -> EdgeServer:
        app = web.Application()
        app.router.add_get(PATH, self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        # What edge_tts.communicate.WSS_URL holds, pointed here; the SDK appends "&ConnectionId=…".
        self.wss_url = f"ws://{host}:{port}{PATH}?TrustedClientToken={TRUSTED_CLIENT_TOKEN}"
        return self

    async def close(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        record = EdgeRequest(dict(request.query), dict(request.headers))
        self.requests.append(record)
        if record.query.get("TrustedClientToken") != TRUSTED_CLIENT_TOKEN or not record.query.get("Sec-MS-GEC"):
            return web.Response(status=403, text="missing token")
        if self.mode == "reject":
            return web.Response(status=self.reject_status, text="rejected")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type != web.WSMsgType.TEXT:
                break
            head, _, body = message.data.partition("\r\n\r\n")
            if "Path:speech.config" in head:
                record.speech_config = json.loads(body)
            elif "Path:ssml" in head:
                record.ssml = body
                request_id = re.search(r"X-RequestId:(\w+)", head)
                await self._answer(ws, request, request_id.group(1) if request_id else "")
                break
        await ws.close()
        return ws

    async def _answer(self, ws: web.WebSocketResponse, request: web.Request, rid: str) -> None:
        if self.mode == "stall":
            try:
                await asyncio.wait_for(self._release.wait(), 30)
            except TimeoutError:
                pass
            return
        await ws.send_str(_text("turn.start", rid, '{"context":{"serviceTag":"loopback"}}'))
        await ws.send_str(_text("response", rid, '{"context":{"serviceTag":"loopback"},"audio":{"type":"inline"}}'))
        if self.mode == "bad_frame":
            await ws.send_bytes(_binary(rid, self.audio[: self.chunk_size], path="video"))
            return
        audio = b"\x00garbage, not mp3\xff" * 100 if self.mode == "not_mp3" else self.audio
        chunks = [] if self.mode == "no_audio" else range(0, len(audio), self.chunk_size)
        for index, start in enumerate(chunks):
            await ws.send_bytes(_binary(rid, audio[start : start + self.chunk_size]))
            if index == 0 and self.mode == "drop_close":
                return  # a clean close frame, but no turn.end: the audio is cut short
            if index == 0 and self.mode == "drop_abort":
                await asyncio.sleep(0.05)
                assert request.transport is not None
                request.transport.abort()
                return
            if index == 0 and self.gate is not None:
                await self.gate.wait()
        await ws.send_bytes(_binary(rid, b"", content_type=None))
        boundary = {"Offset": 1000000, "Duration": 5000000, "text": {"Text": "", "Length": 0}}
        metadata = {"Metadata": [{"Type": "SentenceBoundary", "Data": boundary}]}
        await ws.send_str(_text("audio.metadata", rid, json.dumps(metadata)))
        await ws.send_str(_text("turn.end", rid, "{}"))
        self.finished_sending = True
