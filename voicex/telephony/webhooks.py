"""Twilio's webhooks: the voice URL (answer with TwiML) and call status callbacks. Both are signed."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from aiohttp import web
from bson import ObjectId
from bson.errors import InvalidId
from multidict import MultiDictProxy

from pipelines.call_config import CallResult
from voicex.calls.admission import admit
from voicex.platform.errors import ApiError
from voicex.platform.logs import bind_call
from voicex.platform.services import Services, services
from voicex.store import calls, organizations
from voicex.store.agents import AgentDoc, agent_for_number, get_agent
from voicex.store.calls import NEVER_CONNECTED, create_call, finalize_call
from voicex.store.organizations import Organization
from voicex.store.slots import release_slot
from voicex.telephony import tokens, twiml
from voicex.telephony.account import twilio_token
from voicex.telephony.signature import public_request_url, public_url_hints, redacted, valid_webhook
from voicex.web.auth import API_KEY_PATTERN, hash_api_key

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

_TERMINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


def _xml(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml")


async def _org_for_key(svc: Services, raw_key: str | None) -> Organization:
    if not raw_key or not API_KEY_PATTERN.match(raw_key):
        raise ApiError(403, "invalid or missing api_key")
    org = await organizations.find_by_api_key(svc.db, hash_api_key(raw_key))
    if org is None:
        raise ApiError(403, "invalid or missing api_key")
    return org


async def _check_signature(request: web.Request, svc: Services, org: Organization, form: MultiDictProxy[Any]) -> None:
    if not svc.settings.twilio_validate_signature:
        return
    token = twilio_token(svc, org)
    if not token:
        log.warning(
            "Twilio request refused: no auth token configured; store one with PATCH"
            " /api/dashboard/organization {twilio: {accountSid, authToken}} or set VOICEX_TWILIO_AUTH_TOKEN",
            extra={"orgId": str(org["_id"])},
        )
        raise ApiError(403, "no Twilio auth token configured")
    url = public_request_url(svc.settings.base_url, request.raw_path)
    if not valid_webhook(token, url, form, request.headers.get("X-Twilio-Signature")):
        hints = public_url_hints(svc.settings.public_url, url, request.headers)
        shown = redacted(url)
        log.warning(
            "Twilio signature refused (403): checked against %s; %s", shown, "; ".join(hints),
            extra={"orgId": str(org["_id"]), "checkedUrl": shown},
        )  # fmt: skip
        raise ApiError(403, "invalid Twilio signature")


async def signed_request(request: web.Request) -> tuple[Services, Organization, MultiDictProxy[Any]]:
    """Every Twilio webhook's preamble: the org of the URL's API key, the form, and Twilio's signature over both
    (403 when any fails). The CallSid tags this request's later log lines."""
    svc = services(request)
    org = await _org_for_key(svc, request.query.get("api_key"))
    form = await request.post()
    bind_call(call_sid=form.get("CallSid"))
    await _check_signature(request, svc, org, form)
    return svc, org, form


async def _find_agent(svc: Services, org: Organization, agent_id: str | None, to: str) -> AgentDoc | None:
    if agent_id:
        try:
            return await get_agent(svc.db, org["_id"], ObjectId(agent_id))
        except InvalidId:
            return None
    if to:
        return await agent_for_number(svc.db, org["_id"], to)
    return None


@routes.post("/api/twilio/voice")
async def voice(request: web.Request) -> web.Response:
    """Answer an incoming call: admit it and open a Media Stream, or say why not and hang up."""
    svc, org, form = await signed_request(request)
    agent = await _find_agent(svc, org, request.query.get("agentId"), str(form.get("To", "")))
    if agent is None:
        to, agent_id = str(form.get("To", "")), request.query.get("agentId")
        wanted = f"agentId {agent_id}" if agent_id else f"the number {to}"
        log.warning("call refused: no agent for %s", wanted, extra={"orgId": str(org["_id"]), "to": to})
        return _xml(twiml.refuse("Sorry, this number is not connected to an agent. Goodbye."))
    call_id = ObjectId()
    bind_call(call_id)
    refusal = await admit(svc, org, agent, call_id)
    if refusal is not None:
        level = logging.INFO if refusal.reason == "busy" else logging.WARNING  # busy is the plan working
        context = {"orgId": str(org["_id"]), "agentId": str(agent["_id"]), "reason": refusal.reason}
        log.log(level, "call refused: %s", refusal.reason, extra=context)
        return _xml(twiml.refuse(refusal.spoken))
    call = {
        "_id": call_id,
        "orgId": org["_id"],
        "agentId": agent["_id"],
        "callSid": str(form.get("CallSid", "")),
        "from": str(form.get("From", "")),
        "to": str(form.get("To", "")),
        "direction": str(form.get("Direction", "inbound")),
    }
    try:
        await create_call(svc.db, call, dt.datetime.now(dt.UTC))
    except Exception:
        await release_slot(svc.db, call_id)
        raise
    token = tokens.issue(svc.jwt_secret, str(call_id))
    url = twiml.stream_url(svc.settings.base_url)
    return _xml(twiml.connect_stream(url, {"callId": str(call_id), "token": token}))


@routes.post("/api/twilio/status")
async def status_callback(request: web.Request) -> web.Response:
    """Record Twilio's call progress idempotently, in whatever order the callbacks arrive."""
    svc, org, form = await signed_request(request)
    call_sid, status = str(form.get("CallSid", "")), str(form.get("CallStatus", ""))
    try:
        sequence = int(str(form.get("SequenceNumber", "0")))
    except ValueError:
        sequence = 0
    call = await calls.find_by_sid(svc.db, org["_id"], call_sid)
    bind_call(call["_id"] if call else None, call_sid)
    if call is None:
        return web.Response(status=204)
    event = {"status": status, "sequence": sequence, "duration": str(form.get("CallDuration", "")) or None}
    await calls.record_twilio_status(svc.db, call["_id"], event)
    if status in _TERMINAL and call.get("status") == "active" and not call.get("streamSid"):
        # The call ended and its Media Stream never opened: nothing else will finalize it. Answered ("completed")
        # means Twilio kept the caller on a silent line, usually a proxy that drops the WebSocket upgrade.
        reason = "stream_never_connected" if status == "completed" else f"twilio_{status.replace('-', '_')}"
        if reason == "stream_never_connected":
            context = {"callId": str(call["_id"]), "callSid": call_sid, "twilioDurationSec": event["duration"]}
            log.warning(NEVER_CONNECTED, extra={**context, "streamUrl": twiml.stream_url(svc.settings.base_url)})
        await finalize_call(svc.db, call["_id"], CallResult(end_reason=reason), dt.datetime.now(dt.UTC))
    return web.Response(status=204)
