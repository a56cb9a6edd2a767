"""The Media Stream's upgrade request, checked before the 101: path token, call, signature, pending cap.

Twilio opens ``wss://host/api/twilio/stream/{callId}/{token}`` (a ``<Stream>`` url may carry no query string)
and signs that URL in ``X-Twilio-Signature``. So whoever upgrades must hold the call's unexpired, unused token,
and (unless signatures are off) Twilio's signature over it; anything else is answered 403 without upgrading.
Upgraded streams still waiting for ``start`` are capped per process (503 beyond), and the call is claimed at
the upgrade, so one token opens one socket.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web
from bson import ObjectId
from bson.errors import InvalidId

from voicex.platform.errors import ApiError
from voicex.platform.logs import bind_call
from voicex.platform.services import Services
from voicex.store import organizations
from voicex.store.agents import AgentDoc, get_agent
from voicex.store.calls import CallDoc, claim_for_upgrade, get_call
from voicex.store.organizations import Organization
from voicex.telephony import tokens
from voicex.telephony.account import twilio_token
from voicex.telephony.signature import public_url_hints, valid_upgrade
from voicex.telephony.twiml import stream_url

log = logging.getLogger(__name__)


class PendingStreams:
    """Upgraded streams of this process that have not sent ``start`` yet (each holds a socket and a task)."""

    def __init__(self) -> None:
        self.count = 0

    def acquire(self, limit: int) -> bool:
        if self.count >= limit:
            return False
        self.count += 1
        return True

    def release(self) -> None:
        self.count = max(0, self.count - 1)


PENDING = PendingStreams()


@dataclass
class Admitted:
    """What an accepted upgrade carries: the call claimed for it, its org and agent. Holds one pending place."""

    call: CallDoc
    org: Organization
    agent: AgentDoc


def _refused(status: int, message: str, reason: str) -> ApiError:
    log.warning("media stream refused before upgrading", extra={"reason": reason, "status": status})
    return ApiError(status, message)


async def check_upgrade(svc: Services, request: web.Request) -> Admitted:
    """The call this upgrade may carry, claimed for it, with one pending place taken; ApiError otherwise."""
    call_id_text, token = request.match_info["call_id"], request.match_info["token"]
    problem = tokens.verify(svc.jwt_secret, token, call_id_text)
    if problem is not None:
        raise _refused(403, "invalid stream token", problem)
    try:
        call_id = ObjectId(call_id_text)
    except InvalidId:
        raise _refused(403, "invalid stream token", "no call id") from None
    call = await get_call(svc.db, call_id)
    if call is None or call.get("status") != "active" or call.get("streamTokenUsed"):
        raise _refused(403, "stream token already used or call ended", "token used or call ended")
    bind_call(call_id, call.get("callSid"))  # every later log line of this stream, the engine's too
    org = await organizations.find_by_id(svc.db, call["orgId"])
    agent = await get_agent(svc.db, call["orgId"], call["agentId"])
    if org is None or agent is None:
        raise _refused(403, "the call's organization or agent is gone", "org or agent gone")
    if svc.settings.twilio_validate_signature:
        auth_token = twilio_token(svc, org)
        checked = stream_url(svc.settings.base_url, request.raw_path)
        if not auth_token or not valid_upgrade(auth_token, checked, request.headers.get("X-Twilio-Signature")):
            shown = _shown(checked)
            hints = "; ".join(public_url_hints(svc.settings.public_url, shown, request.headers))
            raise _refused(403, "invalid Twilio signature", f"invalid signature, checked against {shown}; {hints}")
    if not PENDING.acquire(svc.settings.stream_pending_max):
        raise _refused(503, "too many media streams waiting to start; try again", "pending streams at the cap")
    try:
        claimed = await claim_for_upgrade(svc.db, call_id)
    except BaseException:
        PENDING.release()
        raise
    if claimed is None:
        PENDING.release()
        raise _refused(403, "stream token already used or call ended", "token used or call ended")
    return Admitted(claimed, org, agent)


def _shown(url: str) -> str:
    """``url`` for a log line: the token's MAC cut to its first 8 digits."""
    head, dot, mac = url.rpartition(".")
    return f"{head}{dot}{mac[:8]}…" if dot and len(mac) > 8 else url
