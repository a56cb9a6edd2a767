"""The organization's call records, read side: list, count and one call in full.

The telephony layer writes calls; here they are only read, always scoped by ``orgId`` so another
organization's call is a 404 and never appears in a list.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r400, r401, r403, r404
from bson import ObjectId
from pydantic import Field

from voicex.api.openapi import ErrorOut, endpoint
from voicex.api.schemas import Limit, Out, Page, Skip, page
from voicex.platform.errors import not_found
from voicex.platform.ids import body_id, path_id
from voicex.platform.services import services
from voicex.store import calls
from voicex.web.auth import auth
from voicex.web.http import json_response
from voicex.web.presenters import public_call, public_call_summary

routes = web.RouteTableDef()

CallStatus = Literal["active", "completed", "failed"]


class CallSummaryOut(Out):
    id: str = Field(alias="_id")
    agentId: str | None
    callSid: str | None
    from_: str | None = Field(alias="from")
    to: str | None
    direction: str | None = Field(description="e.g. 'inbound'")
    status: CallStatus
    startedAt: str | None
    endedAt: str | None = Field(description="null while the call is active")
    durationSec: float | None
    endReason: str | None
    sentiment: str | None


class TranscriptEntryOut(Out):
    role: str = Field(description="'user' or 'assistant'")
    text: str
    at: str | None = None


class TurnOut(Out):
    """One caller turn, in milliseconds (names as pipelines/metrics.py); null when the step did not happen."""

    turn: int
    end_of_turn_delay: float | None = Field(description="caller speech end → end of turn decided")
    stt_final_latency: float | None
    llm_ttft: float | None
    llm_first_sentence: float | None
    tts_ttfb: float | None
    e2e_latency: float | None = Field(description="caller speech end → first agent audio")
    interrupted: bool
    preemptive: bool


class CallOut(CallSummaryOut):
    transcript: list[TranscriptEntryOut]
    summary: str | None
    metrics: dict[str, Any] | None = Field(description="the call's latency percentiles and counters")
    turns: list[TurnOut] = Field(description="per-turn latencies, in order")
    usage: dict[str, Any] | None = Field(description="tokens, ttsChars and minutes the call used")
    errors: list[str] = Field(description="what went wrong during the call: provider faults, fallbacks taken")


class CallsPage(Page):
    items: list[CallSummaryOut]


class CountOut(Out):
    count: int


def _agent_filter(agent_id: str | None) -> ObjectId | None:
    return body_id(agent_id, "agentId") if agent_id is not None else None


# Registered before /calls/{id} so "count" is never taken for an id.
@routes.get("/api/dashboard/calls/count", allow_head=False)
@endpoint
async def count_calls(
    request: web.Request, agentId: str | None = None, status: CallStatus | None = None
) -> r200[CountOut] | r400[ErrorOut] | r401[ErrorOut] | r403[ErrorOut]:
    """How many of the organization's calls match the filters (for badges and paging).

    Tags: calls
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The count
        400: agentId is not an id or status is unknown
    """
    count = await calls.count_calls(services(request).db, auth(request).org_id, _agent_filter(agentId), status)
    return json_response({"count": count})


@routes.get("/api/dashboard/calls", allow_head=False)
@endpoint
async def list_calls(
    request: web.Request,
    agentId: str | None = None,
    status: CallStatus | None = None,
    skip: Skip = 0,
    limit: Limit = 20,
) -> r200[CallsPage] | r400[ErrorOut] | r401[ErrorOut] | r403[ErrorOut]:
    """The organization's calls, newest first, without transcripts (fetch one call for those).

    Tags: calls
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: A page of calls
        400: A filter or skip/limit is invalid
    """
    db, org_id = services(request).db, auth(request).org_id
    found, total = await calls.list_calls(db, org_id, _agent_filter(agentId), status, skip, limit)
    return json_response(page([public_call_summary(call) for call in found], total, skip, limit))


@routes.get("/api/dashboard/calls/{id}", allow_head=False)
@endpoint
async def get_call(
    request: web.Request, id: str, /
) -> r200[CallOut] | r401[ErrorOut] | r403[ErrorOut] | r404[ErrorOut]:
    """One call in full: transcript, summary, sentiment, per-turn metrics, usage and the faults it met.

    Tags: calls
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The call
        404: No such call in this organization
    """
    call_id = path_id(id, "call")
    call = await calls.get_call(services(request).db, call_id, auth(request).org_id)
    if call is None:
        raise not_found("call")
    return json_response(public_call(call))
