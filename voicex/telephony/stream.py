"""``GET /api/twilio/stream``: one Twilio Media Stream (WebSocket) carrying one call.

Reads ``connected``/``start`` (token, signature and media format checked before any audio is processed),
feeds every ``media`` frame to the call session, returns marks and DTMF, and finalizes the call exactly
once however it ends: ``stop``, socket close, the agent ending the call, or an error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Mapping

from aiohttp import WSMsgType, web
from bson import ObjectId
from bson.errors import InvalidId

from pipelines.announce import Announcement
from pipelines.audio import FRAME_BYTES_ULAW, Framer
from pipelines.session import CallSession
from providers.base import ProviderError
from voicex.calls.admission import UNAVAILABLE
from voicex.calls.builder import build_parts, emergency_voice
from voicex.platform.logs import bind_call
from voicex.platform.services import Services, services
from voicex.store.calls import CallOutcome, finalize_call
from voicex.store.db import Document
from voicex.store.instances import INSTANCE_ID
from voicex.telephony import protocol, tokens
from voicex.telephony.liveness import SEND_BUFFER_BYTES, bound_send_buffers, close_socket, watch_idle
from voicex.telephony.signature import public_url_hints, valid_upgrade
from voicex.telephony.sink import TwilioSink
from voicex.telephony.twiml import stream_url
from voicex.telephony.webhooks import twilio_token

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

MAX_MESSAGE_BYTES = 64 * 1024
APOLOGY_TIMEOUT_SEC = 15.0  # longest the caller of an agent that cannot run is kept to hear why
_RUNNING: set[asyncio.Task[None]] = set()


class StreamRefused(Exception):
    """The stream may not carry this call (bad token, signature, format); it is closed before any audio."""


@routes.get("/api/twilio/stream", allow_head=False)
async def media_stream(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, heartbeat=None, writer_limit=SEND_BUFFER_BYTES)
    await ws.prepare(request)
    bound_send_buffers(request.transport)
    handler = StreamHandler(
        services(request), ws, request.headers.get("X-Twilio-Signature"), request.transport, headers=request.headers
    )
    # aiohttp cancels a handler whose client vanished; the call must still be finalized, so the stream's
    # life runs in its own task that the handler only waits for.
    task = asyncio.create_task(handler.run())
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    await asyncio.shield(task)
    return ws


class StreamHandler:
    def __init__(
        self,
        svc: Services,
        ws: web.WebSocketResponse,
        signature: str | None,
        transport: asyncio.BaseTransport | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.svc = svc
        self.ws = ws
        self.transport = transport
        self.signature = signature
        self.headers = headers or {}  # the upgrade's: where the proxy says Twilio sent it
        self.call: Document | None = None
        self.session: CallSession | None = None
        self.sink: TwilioSink | None = None
        self.malformed = 0
        self.end_reason = "socket_closed"
        self.pump: asyncio.Task[None] | None = None
        self.heard_at = 0.0  # loop time of the peer's last message (the idle watchdog reads it)

    async def run(self) -> None:
        try:
            start = await asyncio.wait_for(self._await_start(), self.svc.settings.stream_start_timeout_sec)
            await self._accept(start)
        except (TimeoutError, StreamRefused) as exc:
            log.warning("media stream refused", extra={"reason": str(exc) or "no start message"})
            await close_socket(self.ws, self.transport)
            return
        except Exception:
            log.exception("media stream could not start")  # the janitor finalizes a claimed call
            await close_socket(self.ws, self.transport)
            return
        self.svc.metrics.active_calls.inc()
        assert self.session is not None and self.call is not None
        self.heard_at = asyncio.get_running_loop().time()
        self.pump = asyncio.create_task(self._pump())
        idle_sec = self.svc.settings.stream_idle_timeout_sec
        call_id = self.call["_id"]
        self.svc.leases.add(call_id)  # the process-wide renewer keeps its lease (and slot) ahead until finalized
        tasks = [
            asyncio.create_task(self._watch_agent_end()),
            asyncio.create_task(watch_idle(lambda: self.heard_at, idle_sec, lambda: self._end("stream_idle"))),
        ]
        try:
            await asyncio.wait([self.pump])
            if not self.pump.cancelled() and self.pump.exception() is not None:
                log.error("media stream failed", exc_info=self.pump.exception())
                self.end_reason = "error"
        finally:
            for task in [*tasks, self.pump]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.svc.metrics.active_calls.dec()
            try:
                await self._finish()
            finally:
                self.svc.leases.discard(call_id)

    async def _await_start(self) -> protocol.Start:
        async for message in self.ws:
            event = self._parse(message)
            if isinstance(event, protocol.Start):
                return event
            if isinstance(event, protocol.Stop):
                raise StreamRefused("stopped before start")
        raise StreamRefused("closed before start")

    def _parse(self, message: object) -> protocol.Inbound | None:
        kind = getattr(message, "type", None)
        if kind != WSMsgType.TEXT:
            if kind in (WSMsgType.BINARY,):
                self.malformed += 1
            return None
        try:
            return protocol.parse(message.data)  # type: ignore[attr-defined]
        except protocol.ProtocolError as exc:
            self.malformed += 1
            if self.malformed <= 5 or self.malformed % 1000 == 0:
                log.warning(
                    "malformed media stream message skipped", extra={"error": str(exc), "count": self.malformed}
                )
            return None

    async def _accept(self, start: protocol.Start) -> None:
        if (start.encoding, start.sample_rate, start.channels) != ("audio/x-mulaw", 8000, 1):
            raise StreamRefused(f"unsupported media format {start.encoding}/{start.sample_rate}/{start.channels}")
        call_id_text = start.custom_parameters.get("callId", "")
        try:
            call_id = ObjectId(call_id_text)
        except (InvalidId, TypeError):
            raise StreamRefused("no call id") from None
        problem = tokens.verify(
            self.svc.settings.jwt_secret or "", start.custom_parameters.get("token", ""), call_id_text
        )
        if problem:
            raise StreamRefused(problem)
        org_agent = await self._load(call_id)
        org, agent = org_agent
        if self.svc.settings.twilio_validate_signature:
            token = twilio_token(self.svc, org)
            checked = stream_url(self.svc.settings.base_url)
            if not token or not valid_upgrade(token, checked, self.signature):
                hints = "; ".join(public_url_hints(self.svc.settings.public_url, checked, self.headers))
                raise StreamRefused(
                    f"invalid Twilio signature on the stream upgrade, checked against {checked}; {hints}"
                )
        claimed = await self.svc.db.calls.find_one_and_update(
            {"_id": call_id, "status": "active", "streamTokenUsed": False},
            {"$set": {"streamTokenUsed": True, "streamSid": start.stream_sid, "serverId": INSTANCE_ID}},
        )
        if claimed is None:
            raise StreamRefused("stream token already used or call ended")
        self.call = claimed
        self.sink = TwilioSink(self.ws, start.stream_sid, on_broken=self._end, transport=self.transport)
        try:
            parts = await build_parts(self.svc, agent, org)
        except ProviderError as exc:
            log.warning("agent cannot run: the caller hears why and the call ends", extra={"error": str(exc)})
            await self._apologize(UNAVAILABLE)
            await self._fail_call(f"provider_error: {exc}")
            raise StreamRefused(f"cannot build the agent's providers: {exc}") from exc
        self.session = CallSession(
            parts.config,
            stt=parts.stt,
            llm=parts.llm,
            tts=parts.tts,
            sink=self.sink,
            vad=parts.vad,
            on_turn=self.svc.metrics.observe_turn,
        )
        await self.session.start()

    async def _load(self, call_id: ObjectId) -> tuple[Document, Document]:
        call = await self.svc.db.calls.find_one({"_id": call_id})
        if call is None or call.get("status") != "active":
            raise StreamRefused("unknown or finished call")
        bind_call(call_id, call.get("callSid"))  # every later log line of this stream, the engine's too
        org = await self.svc.db.organizations.find_one({"_id": call["orgId"]})
        agent = await self.svc.db.agents.find_one({"_id": call["agentId"], "orgId": call["orgId"]})
        if org is None or agent is None:
            raise StreamRefused("the call's organization or agent is gone")
        return org, agent

    async def _pump(self) -> None:
        session = self.session
        assert session is not None
        observe_frame = self.svc.metrics.frame_handling.observe
        clock = time.perf_counter
        # Twilio sends 160-byte payloads, but any size must reach the VAD as whole 20 ms frames.
        reframer = Framer(FRAME_BYTES_ULAW)
        loop_time = asyncio.get_running_loop().time
        async for message in self.ws:
            self.heard_at = loop_time()
            event = self._parse(message)
            if event is None:
                continue
            if isinstance(event, protocol.Media):
                began = clock()
                for frame in reframer.push(event.payload):
                    session.push_audio(frame)
                observe_frame(clock() - began)
            elif isinstance(event, protocol.Mark):
                session.on_mark(event.name)
            elif isinstance(event, protocol.Dtmf):
                session.on_dtmf(event.digit)
            elif isinstance(event, protocol.Stop):
                self.end_reason = "caller_hangup"
                return

    async def _watch_agent_end(self) -> None:
        assert self.session is not None
        self.end_reason = await self.session.wait_ended()
        self._end(self.end_reason)  # _finish closes the socket; Twilio then runs what follows </Connect>

    def _end(self, reason: str) -> None:
        """End the call from this side (agent hung up, idle line, peer not reading): stop the pump."""
        if self.pump is not None and not self.pump.done():
            self.end_reason = reason
            self.pump.cancel()

    async def _finish(self) -> None:
        assert self.session is not None and self.call is not None
        # First, and bounded: a caller who is gone or not reading must not hold up the call's record.
        await close_socket(self.ws, self.transport, polite=not (self.sink and self.sink.broken))
        result = await self.session.close(self.end_reason)
        self.svc.metrics.stream_malformed.inc(self.malformed)
        outcome = CallOutcome(
            end_reason=result.end_reason,
            transcript=result.transcript,
            turns=result.turns,
            metrics=result.metrics,
            summary=result.summary,
            sentiment=result.sentiment,
            tokens=result.usage["tokens"],
            tts_chars=result.usage["ttsChars"],
            errors=result.errors + ([f"{self.malformed} malformed messages skipped"] if self.malformed else []),
        )
        await finalize_call(self.svc.db, self.call["_id"], outcome, dt.datetime.now(dt.UTC))
        if not self.ws.closed:
            await self.ws.close()

    async def _apologize(self, text: str) -> None:
        """Say ``text`` with the emergency voice (the caller hears why, never silence), reading echoed marks."""
        voice = emergency_voice()
        if voice is None or self.sink is None:
            return
        announcement = Announcement(self.sink, voice, text)

        async def route_marks() -> None:
            async for message in self.ws:
                event = self._parse(message)
                if isinstance(event, protocol.Mark):
                    announcement.on_mark(event.name)
                elif isinstance(event, protocol.Stop):
                    return

        reader = asyncio.create_task(route_marks())
        try:
            await announcement.play(timeout=APOLOGY_TIMEOUT_SEC)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await voice.aclose()

    async def _fail_call(self, reason: str) -> None:
        assert self.call is not None
        await finalize_call(
            self.svc.db,
            self.call["_id"],
            CallOutcome(end_reason="provider_error", errors=[reason]),
            dt.datetime.now(dt.UTC),
        )
