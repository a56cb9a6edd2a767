"""A tiny stand-in Voicex server for testing the simulated Twilio caller (scripts/twilio_sim) on its own.

It answers the voice webhook with TwiML pointing the stream at itself, checks both signatures with the twilio
package's RequestValidator, checks every stream message against TWILIO.md §1.2 independently of the simulator's
own builders, and plays a scripted agent: a reply after the caller stops talking, an optional greeting, a clear
when the caller talks over it, deliberately bad messages. Everything it sees is logged with loop times.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse

from pipelines.audio import pcm16_to_ulaw, tone, ulaw_to_pcm16

AUTH_TOKEN = "sim-test-auth-token-0123456789abcdef"
SID = re.compile(r"^(AC|CA|MZ)[0-9a-f]{32}$")
LOUD = 2000


def reply_audio(ms: int, freq: float = 600.0) -> bytes:
    return pcm16_to_ulaw(tone(freq, ms, amplitude=0.4))


@dataclass
class Behaviour:
    reply_delay_ms: int = 150  # after the first quiet frame that follows caller speech
    reply_ms: int = 300  # 0: never reply
    chunk_ms: int = 100  # reply sent at once as chunks of this size, a mark ("r1", "r2", ...) after each
    idle_mark: bool = False  # a mark "idle" right after start, with nothing buffered
    greeting_ms: int = 0  # audio right after start, as chunks of greeting_chunk_ms with marks "g1", "g2", ...
    greeting_chunk_ms: int = 500
    clear_on_speech: bool = False  # first loud caller frame → clear
    bad_messages: list[str | bytes] = field(default_factory=list)  # sent right after start, then a good 100 ms + "ok"
    close_on_echo: str | None = None  # close the socket when this mark comes back


@dataclass
class WebhookLog:
    signature_ok: bool
    form: dict[str, str]
    query: dict[str, str]
    user_agent: str


@dataclass
class StreamLog:
    signature_ok: bool
    headers: dict[str, str]
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sent: dict[str, float] = field(default_factory=dict)  # "media:r1" / "mark:r1" / "clear" → send time
    echoes: dict[str, float] = field(default_factory=dict)  # mark name → time it came back
    first_loud_rx: float | None = None
    last_loud_rx: float | None = None
    stream_sid: str | None = None

    def events(self) -> list[str]:
        return [m["event"] for _, m in self.messages]


class StandIn:
    """Serves /api/twilio/voice and /api/twilio/stream/{callId}/{token} on 127.0.0.1; ``public_url`` fakes a
    proxy's URL."""

    def __init__(self, behaviour: Behaviour | None = None, public_url: str | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.public_url = public_url
        self.webhooks: list[WebhookLog] = []
        self.streams: list[StreamLog] = []
        self.parameters = {"callId": "0123456789abcdef01234567"}
        self.stream_path = "/api/twilio/stream/0123456789abcdef01234567/tok.123.abc"  # Voicex's shape: id, token
        self._validator = RequestValidator(AUTH_TOKEN)
        app = web.Application()
        app.router.add_post("/api/twilio/voice", self._voice)
        app.router.add_get("/api/twilio/stream/{call_id}/{token}", self._stream)
        self._server = TestServer(app, host="127.0.0.1")
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> StandIn:
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await self._server.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def stream_url(self) -> str:
        public = self.public_url or self.base_url
        return public.replace("https://", "wss://").replace("http://", "ws://") + self.stream_path

    async def _voice(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        url = (self.public_url or self.base_url) + request.raw_path
        ok = self._validator.validate(url, form, request.headers.get("X-Twilio-Signature", ""))
        self.webhooks.append(WebhookLog(ok, form, dict(request.query), request.headers.get("User-Agent", "")))
        response = VoiceResponse()
        if request.query.get("api_key") == "refuse":
            response.say("This number is not in service.")
            response.hangup()
        else:
            connect, stream = Connect(), Stream(url=self.stream_url)
            for name, value in self.parameters.items():
                stream.parameter(name=name, value=value)
            connect.append(stream)
            response.append(connect)
        return web.Response(text=str(response.to_xml()), content_type="text/xml")

    async def _stream(self, request: web.Request) -> web.WebSocketResponse:
        signature = request.headers.get("X-Twilio-Signature", "")
        log = StreamLog(self._validator.validate(self.stream_url, {}, signature), dict(request.headers))
        self.streams.append(log)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                log.problems.append(f"non-text frame {msg.type}")
                continue
            now = loop.time()
            message = json.loads(msg.data)
            self._check(log, message)
            log.messages.append((now, message))
            await self._act(ws, log, message, now)
        return ws

    def _check(self, log: StreamLog, m: dict[str, Any]) -> None:
        """TWILIO.md §1.2 shapes, exact fields, string numbering: anything off is a problem."""
        problems = log.problems
        index, event = len(log.messages), m.get("event")
        expected_keys = {
            "connected": {"event", "protocol", "version"},
            "start": {"event", "sequenceNumber", "start", "streamSid"},
            "media": {"event", "sequenceNumber", "media", "streamSid"},
            "dtmf": {"event", "streamSid", "sequenceNumber", "dtmf"},
            "mark": {"event", "sequenceNumber", "streamSid", "mark"},
            "stop": {"event", "sequenceNumber", "stop", "streamSid"},
        }.get(str(event))
        if expected_keys is None or set(m) != expected_keys:
            problems.append(f"#{index} {event}: keys {sorted(m)}")
            return
        if (index == 0) != (event == "connected") or (index == 1) != (event == "start"):
            problems.append(f"#{index} {event} out of order")
        if event == "connected":
            if m != {"event": "connected", "protocol": "Call", "version": "1.0.0"}:
                problems.append(f"connected: {m}")
            return
        if m["sequenceNumber"] != str(index):
            problems.append(f"#{index} {event}: sequenceNumber {m['sequenceNumber']!r}")
        if event == "start":
            s = m["start"]
            log.stream_sid = m["streamSid"]
            fmt = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
            keys = {"accountSid", "streamSid", "callSid", "tracks", "mediaFormat", "customParameters"}
            if set(s) != keys or s["tracks"] != ["inbound"] or s["mediaFormat"] != fmt:
                problems.append(f"start: {s}")
            if s["streamSid"] != m["streamSid"] or s["customParameters"] != self.parameters:
                problems.append(f"start: streamSid/customParameters {s}")
            if not all(SID.match(str(s[k])) for k in ("accountSid", "streamSid", "callSid")):
                problems.append(f"start: SIDs {s}")
            return
        if m["streamSid"] != log.stream_sid:
            problems.append(f"#{index} {event}: streamSid {m['streamSid']!r}")
        if event == "media":
            self._check_media(log, m["media"], index)
        elif event == "dtmf" and (set(m["dtmf"]) != {"track", "digit"} or m["dtmf"]["track"] != "inbound_track"):
            problems.append(f"dtmf: {m['dtmf']}")
        elif event == "mark" and set(m["mark"]) != {"name"}:
            problems.append(f"mark: {m['mark']}")
        elif event == "stop" and set(m["stop"]) != {"accountSid", "callSid"}:
            problems.append(f"stop: {m['stop']}")

    @staticmethod
    def _check_media(log: StreamLog, media: dict[str, Any], index: int) -> None:
        chunks = [m["media"] for _, m in log.messages if m["event"] == "media"]
        if set(media) != {"track", "chunk", "timestamp", "payload"} or media["track"] != "inbound":
            log.problems.append(f"#{index} media: {sorted(media)}")
            return
        if not all(isinstance(media[k], str) for k in ("chunk", "timestamp", "payload")):
            log.problems.append(f"#{index} media: non-string fields")
            return
        if media["chunk"] != str(len(chunks) + 1):
            log.problems.append(f"#{index} media: chunk {media['chunk']!r} after {len(chunks)}")
        previous = int(chunks[-1]["timestamp"]) if chunks else None
        timestamp = int(media["timestamp"])
        if (previous is None and timestamp != 155) or (previous is not None and timestamp - previous != 20):
            log.problems.append(f"#{index} media: timestamp {timestamp} after {previous}")
        if len(base64.b64decode(media["payload"], validate=True)) != 160:
            log.problems.append(f"#{index} media: payload is not 160 bytes")

    async def _act(self, ws: web.WebSocketResponse, log: StreamLog, m: dict[str, Any], now: float) -> None:
        b, sid = self.behaviour, log.stream_sid
        if m["event"] == "start":
            if b.idle_mark:
                await self._send_mark(ws, log, "idle")
            if b.greeting_ms:
                await self._send_audio(ws, log, "g", b.greeting_ms, b.greeting_chunk_ms)
            for bad in b.bad_messages:
                await (ws.send_bytes(bad) if isinstance(bad, bytes) else ws.send_str(bad.replace("{SID}", sid or "")))
            if b.bad_messages:
                await ws.send_str(json.dumps({"event": "media", "streamSid": sid, "media": {"payload": _b64(100)}}))
                await self._send_mark(ws, log, "ok")
        elif m["event"] == "media":
            pcm = np.frombuffer(ulaw_to_pcm16(base64.b64decode(m["media"]["payload"])), dtype="<i2")
            loud = int(np.abs(pcm.astype(np.int32)).max()) > LOUD
            if loud:
                if log.first_loud_rx is None and b.clear_on_speech:
                    await ws.send_str(json.dumps({"event": "clear", "streamSid": sid}))
                    log.sent["clear"] = asyncio.get_running_loop().time()
                log.first_loud_rx = log.first_loud_rx or now
                log.last_loud_rx = now
            elif log.last_loud_rx is not None and "reply" not in log.sent and b.reply_ms:
                log.sent["reply"] = now  # end of turn detected; the reply goes out after the delay
                task = asyncio.create_task(self._reply(ws, log))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        elif m["event"] == "mark":
            log.echoes[m["mark"]["name"]] = now
            if m["mark"]["name"] == b.close_on_echo:
                await ws.close()

    async def _reply(self, ws: web.WebSocketResponse, log: StreamLog) -> None:
        await asyncio.sleep(self.behaviour.reply_delay_ms / 1000)
        await self._send_audio(ws, log, "r", self.behaviour.reply_ms, self.behaviour.chunk_ms)

    async def _send_audio(self, ws: web.WebSocketResponse, log: StreamLog, prefix: str, ms: int, chunk: int) -> None:
        audio = reply_audio(ms)
        size = chunk * 8
        for i, offset in enumerate(range(0, len(audio), size), start=1):
            payload = base64.b64encode(audio[offset : offset + size]).decode()
            await ws.send_str(
                json.dumps({"event": "media", "streamSid": log.stream_sid, "media": {"payload": payload}})
            )
            log.sent[f"media:{prefix}{i}"] = asyncio.get_running_loop().time()
            await self._send_mark(ws, log, f"{prefix}{i}")

    @staticmethod
    async def _send_mark(ws: web.WebSocketResponse, log: StreamLog, name: str) -> None:
        await ws.send_str(json.dumps({"event": "mark", "streamSid": log.stream_sid, "mark": {"name": name}}))
        log.sent[f"mark:{name}"] = asyncio.get_running_loop().time()


def _b64(ms: int) -> str:
    return base64.b64encode(reply_audio(ms)).decode()
