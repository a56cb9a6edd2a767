"""Twilio's webhooks: the voice URL (answer with TwiML) and call status callbacks. Both are signed.

The URL's ``api_key`` names the org (a ``twilio``-scoped key is enough and is what the docs recommend); the
signature proves Twilio sent it; ``AccountSid`` must be the org's stored account when one is stored. A voice
webhook for a CallSid already seen (Twilio's retry, or a replay) is answered with the TwiML of the call it
admitted, and admits nothing (a unique index on the org and CallSid settles concurrent repeats).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from aiohttp import web
from bson import ObjectId
from bson.errors import InvalidId
from multidict import MultiDictProxy
from pymongo.errors import DuplicateKeyError

from pipelines.call_config import CallResult
from voicex.calls.admission import Refusal, admit
from voicex.platform.errors import ApiError
from voicex.platform.logs import bind_call
from voicex.platform.services import Services, services
from voicex.store import calls, organizations
from voicex.store.agents import AgentDoc, agent_for_number, get_agent
from voicex.store.calls import NEVER_CONNECTED, CallDoc, create_call, finalize_call, record_refused
from voicex.store.organizations import Organization
from voicex.store.slots import release_slot
from voicex.telephony import tokens, twiml
from voicex.telephony.account import twilio_token
from voicex.telephony.signature import public_request_url, public_url_hints, redacted, valid_webhook
from voicex.web.auth import API_KEY_PATTERN, hash_api_key

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

DRAINING = "Sorry, this line is busy right now. Please call again in a moment. Goodbye."
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
    _check_account(org, form)
    return svc, org, form


def _check_account(org: Organization, form: MultiDictProxy[Any]) -> None:
    """A request for another Twilio account than the org's (an Auth Token shared across accounts) is refused."""
    twilio = org.get("twilio")
    stored = twilio.get("accountSid") if twilio else None
    if stored and form.get("AccountSid") != stored:
        log.warning("Twilio request refused: AccountSid is not the organization's", extra={"orgId": str(org["_id"])})
        raise ApiError(403, "AccountSid does not match the organization's Twilio account")


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
    call_sid = str(form.get("CallSid", ""))
    if call_sid and (seen := await calls.find_by_sid(svc.db, org["_id"], call_sid)) is not None:
        return _repeat(svc, seen)
    if svc.live.draining:
        return _elsewhere(svc, request)
    agent = await _find_agent(svc, org, request.query.get("agentId"), str(form.get("To", "")))
    if agent is None:
        to, agent_id = str(form.get("To", "")), request.query.get("agentId")
        wanted = f"agentId {agent_id}" if agent_id else f"the number {to}"
        log.warning("call refused: no agent for %s", wanted, extra={"orgId": str(org["_id"]), "to": to})
        return _xml(twiml.refuse("Sorry, this number is not connected to an agent. Goodbye."))
    call_id = ObjectId()
    bind_call(call_id)
    call = {
        "_id": call_id,
        "orgId": org["_id"],
        "agentId": agent["_id"],
        "callSid": call_sid,
        "from": str(form.get("From", "")),
        "to": str(form.get("To", "")),
        "direction": str(form.get("Direction", "inbound")),
    }
    refusal = await admit(svc, org, agent, call_id)
    if refusal is not None:
        return await _refuse(svc, org, agent, call, refusal)
    try:
        await create_call(svc.db, call, dt.datetime.now(dt.UTC))
    except DuplicateKeyError:  # the same CallSid admitted by a concurrent request: answer as it did
        await release_slot(svc.db, call_id)
        seen = await calls.find_by_sid(svc.db, org["_id"], call_sid)
        if seen is None:
            raise
        return _repeat(svc, seen)
    except Exception:
        await release_slot(svc.db, call_id)
        raise
    return _xml(_stream_twiml(svc, call_id))


def _elsewhere(svc: Services, request: web.Request) -> web.Response:
    """This server is draining (voicex/server/drain.py): hand a new call to another instance, or say to call back."""
    target = svc.settings.drain_redirect_url
    log.info("new call while draining: %s", "redirected" if target else "refused (no VOICEX_DRAIN_REDIRECT_URL)")
    if target:
        return _xml(twiml.redirect(target + request.rel_url.path_qs))
    return _xml(twiml.refuse(DRAINING))


def _stream_twiml(svc: Services, call_id: ObjectId) -> str:
    token = tokens.for_call(svc.jwt_secret, call_id)
    url = twiml.stream_url(svc.settings.base_url, twiml.call_stream_path(str(call_id), token))
    return twiml.connect_stream(url, {"callId": str(call_id)})


def _repeat(svc: Services, call: CallDoc) -> web.Response:
    """The answer already given for this CallSid: the same call's TwiML (its token is single use), or its refusal."""
    bind_call(call["_id"], call.get("callSid"))
    log.info("voice webhook repeated for a known CallSid: answered as before, nothing admitted")
    refusal = call.get("refusal")
    if refusal is not None:
        return _xml(twiml.refuse(Refusal(refusal).spoken))
    return _xml(_stream_twiml(svc, call["_id"]))


async def _refuse(
    svc: Services, org: Organization, agent: AgentDoc, call: dict[str, Any], refusal: Refusal
) -> web.Response:
    level = logging.INFO if refusal.reason == "busy" else logging.WARNING  # busy is the plan working
    context = {"orgId": str(org["_id"]), "agentId": str(agent["_id"]), "reason": refusal.reason}
    log.log(level, "call refused: %s", refusal.reason, extra=context)
    if refusal.recorded:
        try:
            await record_refused(svc.db, call, refusal.reason, dt.datetime.now(dt.UTC))
        except DuplicateKeyError:
            pass  # a concurrent repeat recorded it
    return _xml(twiml.refuse(refusal.spoken))


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
