"""``GET /api/twilio/stream``: one Twilio Media Stream (WebSocket) carrying one call.

Reads ``connected``/``start``, checks the stream token, the upgrade's signature and the media format before any
audio is processed, claims the admitted call for this stream, and hands it to the transport-neutral
:class:`~voicex.calls.runner.CallRunner` over a :class:`~voicex.telephony.transport.TwilioTransport`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from aiohttp import web
from bson import ObjectId
from bson.errors import InvalidId

from voicex.calls.runner import CallRunner
from voicex.platform.logs import bind_call
from voicex.platform.services import Services, services
from voicex.store import organizations
from voicex.store.agents import AgentDoc, get_agent
from voicex.store.calls import CallDoc, claim_for_stream, get_call
from voicex.store.organizations import Organization
from voicex.telephony import protocol, tokens
from voicex.telephony.account import twilio_token
from voicex.telephony.liveness import SEND_BUFFER_BYTES, bound_send_buffers, close_socket
from voicex.telephony.signature import public_url_hints, valid_upgrade
from voicex.telephony.transport import MessageReader, TwilioTransport
from voicex.telephony.twiml import stream_url

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

MAX_MESSAGE_BYTES = 64 * 1024
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
        self.reader = MessageReader()

    async def run(self) -> None:
        try:
            start = await asyncio.wait_for(self._await_start(), self.svc.settings.stream_start_timeout_sec)
            call, org, agent = await self._accept(start)
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

    async def _accept(self, start: protocol.Start) -> tuple[CallDoc, Organization, AgentDoc]:
        """The call this stream may carry, claimed for it, with its org and agent; StreamRefused otherwise."""
        if (start.encoding, start.sample_rate, start.channels) != ("audio/x-mulaw", 8000, 1):
            raise StreamRefused(f"unsupported media format {start.encoding}/{start.sample_rate}/{start.channels}")
        call_id_text = start.custom_parameters.get("callId", "")
        try:
            call_id = ObjectId(call_id_text)
        except (InvalidId, TypeError):
            raise StreamRefused("no call id") from None
        problem = tokens.verify(self.svc.jwt_secret, start.custom_parameters.get("token", ""), call_id_text)
        if problem:
            raise StreamRefused(problem)
        org, agent = await self._load(call_id)
        if self.svc.settings.twilio_validate_signature:
            token = twilio_token(self.svc, org)
            checked = stream_url(self.svc.settings.base_url)
            if not token or not valid_upgrade(token, checked, self.signature):
                hints = "; ".join(public_url_hints(self.svc.settings.public_url, checked, self.headers))
                raise StreamRefused(
                    f"invalid Twilio signature on the stream upgrade, checked against {checked}; {hints}"
                )
        claimed = await claim_for_stream(self.svc.db, call_id, start.stream_sid)
        if claimed is None:
            raise StreamRefused("stream token already used or call ended")
        return claimed, org, agent

    async def _load(self, call_id: ObjectId) -> tuple[Organization, AgentDoc]:
        call = await get_call(self.svc.db, call_id)
        if call is None or call.get("status") != "active":
            raise StreamRefused("unknown or finished call")
        bind_call(call_id, call.get("callSid"))  # every later log line of this stream, the engine's too
        org = await organizations.find_by_id(self.svc.db, call["orgId"])
        agent = await get_agent(self.svc.db, call["orgId"], call["agentId"])
        if org is None or agent is None:
            raise StreamRefused("the call's organization or agent is gone")
        return org, agent
