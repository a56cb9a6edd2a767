"""The engine's MediaSink over a Twilio Media Stream: media, mark and clear, with send timeouts.

A slow or dead socket must never block other calls: every send is bounded, and a send that fails or times out
tells the stream handler, which ends the call and drops the connection (see :mod:`voicex.telephony.liveness`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from pipelines.output import MediaSink
from voicex.telephony import protocol

log = logging.getLogger(__name__)

SEND_TIMEOUT_SEC = 2.0


class TwilioSink(MediaSink):
    def __init__(
        self, ws: web.WebSocketResponse, stream_sid: str, on_broken: Callable[[str], None] | None = None
    ) -> None:
        self.ws = ws
        self.stream_sid = stream_sid
        self.broken = False
        self._on_broken = on_broken

    async def _send(self, text: str) -> None:
        if self.broken or self.ws.closed:
            return
        try:
            # asyncio.timeout, not wait_for: wait_for wraps every send in a new task (~4x the cost, 20 sends/s a call)
            async with asyncio.timeout(SEND_TIMEOUT_SEC):
                await self.ws.send_str(text)
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            self.broken = True
            log.warning("media stream send failed; ending the call", extra={"error": type(exc).__name__})
            if self._on_broken is not None:
                self._on_broken("send_timeout" if isinstance(exc, TimeoutError) else "socket_closed")

    async def send_audio(self, payload: bytes) -> None:
        await self._send(protocol.media_message(self.stream_sid, payload))

    async def send_mark(self, name: str) -> None:
        await self._send(protocol.mark_message(self.stream_sid, name))

    async def send_clear(self) -> None:
        await self._send(protocol.clear_message(self.stream_sid))

    async def close(self, reason: str) -> None:
        """Nothing to do: the stream handler closes the socket (bounded) once the session has ended."""
