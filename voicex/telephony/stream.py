"""``GET /api/twilio/stream/{callId}/{token}``: one Twilio Media Stream (WebSocket) carrying one call.

The upgrade is checked before the 101 (voicex/telephony/handshake.py: path token, call, signature, pending cap).
Then ``start`` must come within VOICEX_STREAM_START_TIMEOUT_SEC with the documented media format, and the
call goes to the transport-neutral :class:`~voicex.calls.runner.CallRunner` over a
:class:`~voicex.telephony.transport.TwilioTransport`.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from voicex.calls.runner import CallRunner
from voicex.platform.services import Services, services
from voicex.store.calls import attach_stream
from voicex.telephony import protocol
from voicex.telephony.handshake import PENDING, Admitted, check_upgrade
from voicex.telephony.liveness import SEND_BUFFER_BYTES, bound_send_buffers, close_socket
from voicex.telephony.transport import MessageReader, TwilioTransport
from voicex.telephony.twiml import STREAM_PREFIX

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

MAX_MESSAGE_BYTES = 64 * 1024
_RUNNING: set[asyncio.Task[None]] = set()


class StreamRefused(Exception):
    """The stream may not carry this call (no start, bad format); it is closed before any audio."""


@routes.get(STREAM_PREFIX + "/{call_id}/{token}", allow_head=False)
async def media_stream(request: web.Request) -> web.WebSocketResponse:
    svc = services(request)
    admitted = await check_upgrade(svc, request)  # 403/503 before upgrading; holds a pending place
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, heartbeat=None, writer_limit=SEND_BUFFER_BYTES)
    try:
        await ws.prepare(request)
    except BaseException:
        PENDING.release()
        raise
    bound_send_buffers(request.transport)
    handler = StreamHandler(svc, ws, admitted, request.transport)
    # aiohttp cancels a handler whose client vanished; the call must still be finalized, so the stream's
    # life runs in its own task that the handler only waits for.
    task = asyncio.create_task(handler.run())
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    await asyncio.shield(task)
    return ws


class StreamHandler:
    def __init__(
        self, svc: Services, ws: web.WebSocketResponse, admitted: Admitted, transport: asyncio.BaseTransport | None
    ) -> None:
        self.svc = svc
        self.ws = ws
        self.admitted = admitted
        self.transport = transport
        self.reader = MessageReader()

    async def run(self) -> None:
        try:
            try:
                start = await asyncio.wait_for(self._await_start(), self.svc.settings.stream_start_timeout_sec)
            finally:
                PENDING.release()
            await self._accept(start)
        except (TimeoutError, StreamRefused) as exc:
            log.warning("media stream refused", extra={"reason": str(exc) or "no start message"})
            await close_socket(self.ws, self.transport)
            return
        except Exception:
            log.exception("media stream could not start")  # the janitor finalizes a claimed call
            await close_socket(self.ws, self.transport)
            return
        wire = TwilioTransport(
            self.ws, start.stream_sid, self.reader, self.svc.settings.stream_idle_timeout_sec, self.transport
        )
        call, org, agent = self.admitted.call, self.admitted.org, self.admitted.agent
        try:
            await CallRunner(self.svc, call, org, agent, wire).run()
        finally:
            self.svc.metrics.stream_malformed.inc(self.reader.malformed)

    async def _await_start(self) -> protocol.Start:
        async for message in self.ws:
            event = self.reader.parse(message)
            if isinstance(event, protocol.Start):
                return event
            if isinstance(event, protocol.Stop):
                raise StreamRefused("stopped before start")
        raise StreamRefused("closed before start")

    async def _accept(self, start: protocol.Start) -> None:
        """The ``start`` of the claimed call: the documented media format, recorded with its streamSid."""
        if (start.encoding, start.sample_rate, start.channels) != ("audio/x-mulaw", 8000, 1):
            raise StreamRefused(f"unsupported media format {start.encoding}/{start.sample_rate}/{start.channels}")
        if not await attach_stream(self.svc.db, self.admitted.call["_id"], start.stream_sid):
            raise StreamRefused("the call ended before its stream started")
        self.admitted.call["streamSid"] = start.stream_sid
