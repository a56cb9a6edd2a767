"""A Twilio Media Stream as a call transport (voicex/calls/runner.py): the wire loop and nothing else.

It parses Twilio's messages (docs/twilio-protocol.md §1), cuts media payloads into 20 ms frames for the call,
hands mark echoes and keypresses over, and ends with the reason its wire ended: the caller hung up (``stop``),
the socket closed, the line went idle (Twilio sends a frame every 20 ms, so a quiet socket is a dead line), or
the peer stopped reading what the call sends (:class:`~voicex.telephony.sink.TwilioSink`).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from pipelines.audio import FRAME_BYTES_ULAW, Framer
from voicex.calls.runner import CallInput
from voicex.telephony import protocol
from voicex.telephony.liveness import close_socket, watch_idle
from voicex.telephony.sink import TwilioSink

log = logging.getLogger(__name__)


class MessageReader:
    """Parses one socket's messages; a malformed one is counted, logged (a few, then every 1000th) and skipped."""

    def __init__(self) -> None:
        self.malformed = 0

    def parse(self, message: object) -> protocol.Inbound | None:
        kind = getattr(message, "type", None)
        if kind != WSMsgType.TEXT:
            if kind == WSMsgType.BINARY:
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


class TwilioTransport:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        stream_sid: str,
        reader: MessageReader,
        idle_sec: float,
        transport: asyncio.BaseTransport | None = None,
    ) -> None:
        self.ws, self.reader, self.idle_sec, self._transport = ws, reader, idle_sec, transport
        self.sink = TwilioSink(ws, stream_sid, on_broken=self._stop, transport=transport)
        self._ended: asyncio.Future[str] | None = None
        self._heard_at = 0.0  # loop time of the peer's last message (the idle watchdog reads it)

    @property
    def broken(self) -> bool:
        return self.sink.broken

    @property
    def problems(self) -> list[str]:
        """What the call's record should say about the wire."""
        count = self.reader.malformed
        return [f"{count} malformed messages skipped"] if count else []

    async def receive(self, into: CallInput) -> str:
        loop = asyncio.get_running_loop()
        self._ended = loop.create_future()
        self._heard_at = loop.time()
        pump = asyncio.create_task(self._pump(into))
        idle = asyncio.create_task(watch_idle(lambda: self._heard_at, self.idle_sec, lambda: self._stop("stream_idle")))
        try:
            await asyncio.wait({pump, self._ended}, return_when=asyncio.FIRST_COMPLETED)
            if self._ended.done():
                return self._ended.result()
            return pump.result()  # raises what the pump raised: the call ends as an error
        finally:
            for task in (pump, idle):
                task.cancel()
            await asyncio.gather(pump, idle, return_exceptions=True)

    def _stop(self, reason: str) -> None:
        """End ``receive`` from this side (idle line, peer not reading)."""
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(reason)

    async def _pump(self, into: CallInput) -> str:
        # Twilio sends 160-byte payloads, but any size must reach the VAD as whole 20 ms frames.
        reframer = Framer(FRAME_BYTES_ULAW)
        loop_time = asyncio.get_running_loop().time
        parse, on_audio = self.reader.parse, into.on_audio
        async for message in self.ws:
            self._heard_at = loop_time()
            event = parse(message)
            if event is None:
                continue
            if isinstance(event, protocol.Media):
                for frame in reframer.push(event.payload):
                    on_audio(frame)
            elif isinstance(event, protocol.Mark):
                into.on_mark(event.name)
            elif isinstance(event, protocol.Dtmf):
                into.on_dtmf(event.digit)
            elif isinstance(event, protocol.Stop):
                return "caller_hangup"
        return "socket_closed"

    async def close(self) -> None:
        """Close within a bound (no handshake with a peer that stopped reading); Twilio then hangs up."""
        await close_socket(self.ws, self._transport, polite=not self.sink.broken)
        if not self.ws.closed:
            await self.ws.close()
