"""Usage analytics (per UTC day, from ``usage_daily``) and the dashboard's headline stats (from ``calls``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r400, r401, r403
from pydantic import Field

from voicex.api.openapi import ErrorOut, endpoint
from voicex.api.schemas import Out
from voicex.platform.services import services
from voicex.store.agents import count_active_agents
from voicex.store.calls import totals
from voicex.store.usage import day_key, usage_by_day
from voicex.web.auth import auth
from voicex.web.http import json_response

routes = web.RouteTableDef()

# Calls that have ended; an active call has no final duration yet.
FINISHED_STATUSES = ("completed", "failed")


class UsageDayOut(Out):
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="UTC day")
    calls: int
    minutes: float
    tokens: int
    ttsChars: int


class StatsOut(Out):
    totalCalls: int
    activeAgents: int
    totalMinutes: float = Field(description="minutes of finished calls, 2 decimals")
    averageDurationSec: float = Field(description="mean duration of finished calls; 0 when none")


def _day_record(date: str, doc: dict[str, Any] | None) -> dict[str, Any]:
    doc = doc or {}
    return {
        "date": date,
        "calls": int(doc.get("calls") or 0),
        "minutes": round(float(doc.get("minutes") or 0), 2),
        "tokens": int(doc.get("tokens") or 0),
        "ttsChars": int(doc.get("ttsChars") or 0),
    }


@routes.get("/api/dashboard/analytics/usage", allow_head=False)
@endpoint
async def usage_analytics(
    request: web.Request, days: Annotated[int, Field(ge=1, le=365)] = 30
) -> r200[list[UsageDayOut]] | r400[ErrorOut] | r401[ErrorOut] | r403[ErrorOut]:
    """Calls, minutes, LLM tokens and TTS characters per UTC day for the last ``days`` days (today included).

    Tags: analytics
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: One record per UTC day, oldest first, ending today (zeros when idle)
        400: days is not between 1 and 365
    """
    org_id = auth(request).org_id
    today = dt.datetime.now(dt.UTC)
    dates = [day_key(today - dt.timedelta(days=back)) for back in range(days - 1, -1, -1)]
    by_date = await usage_by_day(services(request).db, org_id, dates)
    return json_response([_day_record(date, by_date.get(date)) for date in dates])


@routes.get("/api/dashboard/stats", allow_head=False)
@endpoint
async def stats(request: web.Request) -> r200[StatsOut] | r401[ErrorOut] | r403[ErrorOut]:
    """Headline numbers for the dashboard: calls, active agents, minutes talked and average call length.

    Tags: analytics
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The organization's stats
    """
    org_id = auth(request).org_id
    db = services(request).db
    calls, seconds, average = await totals(db, org_id, FINISHED_STATUSES)
    return json_response(
        {
            "totalCalls": calls,
            "activeAgents": await count_active_agents(db, org_id),
            "totalMinutes": round(seconds / 60, 2),
            "averageDurationSec": round(average, 2),
        }
    )
