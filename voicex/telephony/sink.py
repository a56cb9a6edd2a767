"""The engine's MediaSink over a Twilio Media Stream: media, mark and clear, with send timeouts.

A slow or dead socket must never block other calls: every send that can block is bounded, and a send that fails
or times out tells the stream handler, which ends the call and drops the connection (see
:mod:`voicex.telephony.liveness`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import WSMsgType, web

from pipelines.output import MediaSink
from voicex.telephony import protocol

log = logging.getLogger(__name__)

SEND_TIMEOUT_SEC = 2.0


class TwilioSink(MediaSink):
    def __init__(
        self,
        ws: web.WebSocketResponse,
        stream_sid: str,
        on_broken: Callable[[str], None] | None = None,
        transport: asyncio.BaseTransport | None = None,
    ) -> None:
        self.ws = ws
        self.stream_sid = stream_sid
        self.broken = False
        self._on_broken = on_broken
        self._messages = protocol.Outbound(stream_sid)
        # The socket's transport, when known, tells which sends cannot block (see _send).
        self._transport = transport if isinstance(transport, asyncio.WriteTransport) else None

    def _cannot_block(self, size: int) -> bool:
        """True when a send of ``size`` bytes completes without waiting, so it needs no timeout.

        aiohttp's send waits only while the transport has paused writing (its buffer went over the high-water
        mark and has not drained to the low one). An empty buffer means not paused, and a message below the
        high-water mark cannot pause it either. That is the usual case; a timer per send cost ~6 µs.
        """
        transport = self._transport
        return (
            transport is not None
            and transport.get_write_buffer_size() == 0
            and size < transport.get_write_buffer_limits()[1]
        )

    async def _send(self, data: bytes) -> None:
        if self.broken or self.ws.closed:
            return
        try:
            if self._cannot_block(len(data)):
                await self.ws.send_frame(data, WSMsgType.TEXT)
            else:
                # asyncio.timeout, not wait_for: wait_for wraps each send in a new task (~4x the cost)
                async with asyncio.timeout(SEND_TIMEOUT_SEC):
                    await self.ws.send_frame(data, WSMsgType.TEXT)
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            self.broken = True
            log.warning("media stream send failed; ending the call", extra={"error": type(exc).__name__})
            if self._on_broken is not None:
                self._on_broken("send_timeout" if isinstance(exc, TimeoutError) else "socket_closed")

    async def send_audio(self, payload: bytes) -> None:
        await self._send(self._messages.media(payload))

    async def send_mark(self, name: str) -> None:
        await self._send(self._messages.mark(name))

    async def send_clear(self) -> None:
        await self._send(self._messages.clear)

    async def close(self, reason: str) -> None:
        """Nothing to do: the stream handler closes the socket (bounded) once the session has ended."""
