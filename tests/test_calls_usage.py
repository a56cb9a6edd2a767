"""Call history, usage analytics and dashboard stats, read back over HTTP from documents the telephony
layer would write (inserted directly here); plus the OpenAPI document covering these endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Any

from bson import ObjectId
from openapi_spec_validator import validate

from tests.factories import Tenant, make_tenant
from voicex.store.usage import COUNTED_KEPT, USAGE_SHARDS, add_usage, day_key

BASE = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


async def insert_call(services: Any, tenant: Tenant, agent_id: ObjectId, minutes_after: int, **fields: Any) -> str:
    started = BASE + dt.timedelta(minutes=minutes_after)
    status = fields.pop("status", "completed")
    duration = fields.pop("durationSec", 60)
    call = {
        "orgId": ObjectId(tenant.org_id),
        "agentId": agent_id,
        "callSid": f"CA{ObjectId()}",
        "from": "+15550001111",
        "to": "+15550002222",
        "direction": "inbound",
        "status": status,
        "startedAt": started,
        "endedAt": None if status == "active" else started + dt.timedelta(seconds=duration or 0),
        "durationSec": None if status == "active" else duration,
        "endReason": None if status == "active" else "caller_hangup",
        "transcript": [
            {"role": "assistant", "text": "Hello, how can I help?", "at": started},
            {"role": "user", "text": "I'd like to book a table.", "at": started + dt.timedelta(seconds=3)},
        ],
        "summary": "Caller booked a table.",
        "sentiment": "positive",
        "metrics": {"turns": 2, "avgLatencyMs": 640},
        "usage": {"tokens": 120, "ttsChars": 80, "minutes": 1.0},
        "leaseExpiresAt": started,
        **fields,
    }
    return str((await services.db.calls.insert_one(call)).inserted_id)


async def get_json(client: Any, path: str, headers: dict[str, str], status: int = 200) -> Any:
    response = await client.get(path, headers=headers)
    assert response.status == status, await response.text()
    return await response.json()


async def test_calls_list_is_newest_first_filterable_pageable_and_without_transcripts(client, services) -> None:
    tenant = await make_tenant(client, services)
    other = await make_tenant(client, services)
    agent_a, agent_b = ObjectId(), ObjectId()
    ids = [
        await insert_call(services, tenant, agent_a, 0),
        await insert_call(services, tenant, agent_b, 10, status="failed", durationSec=5),
        await insert_call(services, tenant, agent_a, 20, status="active"),
        await insert_call(services, tenant, agent_b, 30),
        await insert_call(services, tenant, agent_a, 40),
    ]
    foreign = await insert_call(services, other, agent_a, 50)

    page = await get_json(client, "/api/dashboard/calls", tenant.key)
    assert [item["_id"] for item in page["items"]] == ids[::-1]
    assert (page["total"], page["skip"], page["limit"]) == (5, 0, 20)
    first = page["items"][0]
    assert set(first) == {
        "_id",
        "agentId",
        "callSid",
        "from",
        "to",
        "direction",
        "status",
        "startedAt",
        "endedAt",
        "durationSec",
        "endReason",
        "sentiment",
    }
    assert first["startedAt"] == "2026-03-01T12:40:00.000Z" and first["agentId"] == str(agent_a)
    assert foreign not in str(page)

    by_agent = await get_json(client, f"/api/dashboard/calls?agentId={agent_b}", tenant.jwt)
    assert [item["_id"] for item in by_agent["items"]] == [ids[3], ids[1]] and by_agent["total"] == 2
    failed = await get_json(client, "/api/dashboard/calls?status=failed", tenant.jwt)
    assert [item["_id"] for item in failed["items"]] == [ids[1]]
    both = await get_json(client, f"/api/dashboard/calls?agentId={agent_a}&status=completed", tenant.jwt)
    assert [item["_id"] for item in both["items"]] == [ids[4], ids[0]]
    paged = await get_json(client, "/api/dashboard/calls?skip=1&limit=2", tenant.jwt)
    assert [item["_id"] for item in paged["items"]] == [ids[3], ids[2]]
    assert (paged["total"], paged["skip"], paged["limit"]) == (5, 1, 2)
    beyond = await get_json(client, "/api/dashboard/calls?skip=10", tenant.jwt)
    assert beyond["items"] == [] and beyond["total"] == 5
    assert (await get_json(client, "/api/dashboard/calls", other.jwt))["total"] == 1


async def test_calls_list_rejects_bad_parameters_naming_them(client, services) -> None:
    tenant = await make_tenant(client, services)
    for query, field in (
        ("limit=101", "limit"),
        ("limit=0", "limit"),
        ("skip=-1", "skip"),
        ("limit=ten", "limit"),
        ("agentId=nope", "agentId"),
        ("status=ringing", "status"),
    ):
        body = await get_json(client, f"/api/dashboard/calls?{query}", tenant.jwt, status=400)
        assert body["error"].startswith(field), (query, body)
    body = await get_json(client, "/api/dashboard/calls/count?agentId=123", tenant.jwt, status=400)
    assert body["error"].startswith("agentId")
    assert (await get_json(client, "/api/dashboard/calls?limit=100", tenant.jwt))["limit"] == 100


async def test_call_count_uses_the_same_filters_and_is_not_taken_for_an_id(client, services) -> None:
    tenant = await make_tenant(client, services)
    other = await make_tenant(client, services)
    agent = ObjectId()
    await insert_call(services, tenant, agent, 0)
    await insert_call(services, tenant, agent, 1, status="active")
    await insert_call(services, tenant, ObjectId(), 2, status="active")
    await insert_call(services, other, agent, 3, status="active")
    assert await get_json(client, "/api/dashboard/calls/count", tenant.key) == {"count": 3}
    assert await get_json(client, "/api/dashboard/calls/count?status=active", tenant.key) == {"count": 2}
    assert await get_json(client, f"/api/dashboard/calls/count?agentId={agent}&status=active", tenant.key) == {
        "count": 1
    }
    assert await get_json(client, "/api/dashboard/calls/count?status=failed", tenant.key) == {"count": 0}


async def test_call_detail_has_the_transcript_and_other_orgs_calls_are_404(client, services) -> None:
    tenant = await make_tenant(client, services)
    other = await make_tenant(client, services)
    call_id = await insert_call(services, tenant, ObjectId(), 0, durationSec=95)
    call = await get_json(client, f"/api/dashboard/calls/{call_id}", tenant.jwt)
    assert call["_id"] == call_id and call["durationSec"] == 95 and call["status"] == "completed"
    assert [entry["text"] for entry in call["transcript"]] == ["Hello, how can I help?", "I'd like to book a table."]
    assert call["transcript"][1]["at"] == "2026-03-01T12:00:03.000Z"
    assert call["summary"] == "Caller booked a table." and call["sentiment"] == "positive"
    assert call["metrics"] == {"turns": 2, "avgLatencyMs": 640}
    assert call["usage"] == {"tokens": 120, "ttsChars": 80, "minutes": 1.0}
    assert "leaseExpiresAt" not in call and "orgId" not in call
    assert await get_json(client, f"/api/dashboard/calls/{call_id}", other.jwt, status=404) == {
        "error": "call not found"
    }
    await get_json(client, f"/api/dashboard/calls/{ObjectId()}", tenant.jwt, status=404)
    await get_json(client, "/api/dashboard/calls/not-an-id", tenant.jwt, status=404)
    assert (await client.get(f"/api/dashboard/calls/{call_id}")).status == 401


async def test_usage_analytics_is_one_zero_filled_record_per_utc_day_oldest_first(client, services) -> None:
    tenant = await make_tenant(client, services)
    other = await make_tenant(client, services)
    org_id = ObjectId(tenant.org_id)
    now = dt.datetime.now(dt.UTC)
    await add_usage(services.db, org_id, now, calls=2, minutes=3.5, tokens=900, ttsChars=400)
    await add_usage(services.db, org_id, now, calls=1, minutes=1.25, tokens=100, ttsChars=100)
    await add_usage(services.db, org_id, now - dt.timedelta(days=3), calls=4, minutes=10, tokens=50, ttsChars=7)
    await add_usage(services.db, org_id, now - dt.timedelta(days=29), calls=1, minutes=0.5, tokens=1, ttsChars=1)
    await add_usage(services.db, org_id, now - dt.timedelta(days=30), calls=9, minutes=9, tokens=9, ttsChars=9)
    await add_usage(services.db, org_id, now - dt.timedelta(days=40), calls=7, minutes=70, tokens=7, ttsChars=7)
    await add_usage(services.db, ObjectId(other.org_id), now, calls=50, minutes=500, tokens=5, ttsChars=5)

    items = await get_json(client, "/api/dashboard/analytics/usage?days=30", tenant.key)
    assert isinstance(items, list) and len(items) == 30  # a bare array of days, as in the API reference
    expected_dates = [day_key(now - dt.timedelta(days=back)) for back in range(29, -1, -1)]
    assert [item["date"] for item in items] == expected_dates
    by_date = {item["date"]: item for item in items}
    assert by_date[day_key(now)] == {"date": day_key(now), "calls": 3, "minutes": 4.75, "tokens": 1000, "ttsChars": 500}
    assert by_date[day_key(now - dt.timedelta(days=3))]["minutes"] == 10
    assert items[0] == {"date": expected_dates[0], "calls": 1, "minutes": 0.5, "tokens": 1, "ttsChars": 1}
    assert sum(item["calls"] for item in items) == 3 + 4 + 1  # not the 30- and 40-day-old days, not the other org
    assert items[1] == {"date": expected_dates[1], "calls": 0, "minutes": 0, "tokens": 0, "ttsChars": 0}

    default = await get_json(client, "/api/dashboard/analytics/usage", tenant.jwt)
    assert default == items
    longer = await get_json(client, "/api/dashboard/analytics/usage?days=45", tenant.jwt)
    assert len(longer) == 45 and sum(item["calls"] for item in longer) == 3 + 4 + 1 + 9 + 7
    today_only = await get_json(client, "/api/dashboard/analytics/usage?days=1", tenant.jwt)
    assert [item["date"] for item in today_only] == [day_key(now)]
    for bad in ("0", "366", "week"):
        body = await get_json(client, f"/api/dashboard/analytics/usage?days={bad}", tenant.jwt, status=400)
        assert body["error"].startswith("days"), body


async def test_stats_count_calls_active_agents_and_finished_minutes(client, services) -> None:
    tenant = await make_tenant(client, services)
    other = await make_tenant(client, services)
    empty = await get_json(client, "/api/dashboard/stats", tenant.key)
    assert empty == {"totalCalls": 0, "activeAgents": 0, "totalMinutes": 0, "averageDurationSec": 0}

    now = dt.datetime.now(dt.UTC)
    await services.db.agents.insert_many(
        [
            {"orgId": ObjectId(tenant.org_id), "name": f"a{n}", "active": active, "createdAt": now}
            for n, active in enumerate((True, True, False))
        ]
        + [{"orgId": ObjectId(other.org_id), "name": "theirs", "active": True, "createdAt": now}]
    )
    agent = ObjectId()
    await insert_call(services, tenant, agent, 0, durationSec=60)
    await insert_call(services, tenant, agent, 1, status="failed", durationSec=30)
    await insert_call(services, tenant, agent, 2, durationSec=95)
    await insert_call(services, tenant, agent, 3, status="active")
    await insert_call(services, other, agent, 4, durationSec=1000)

    stats = await get_json(client, "/api/dashboard/stats", tenant.jwt)
    assert stats == {"totalCalls": 4, "activeAgents": 2, "totalMinutes": 3.08, "averageDurationSec": 61.67}
    theirs = await get_json(client, "/api/dashboard/stats", other.jwt)
    assert theirs == {"totalCalls": 1, "activeAgents": 1, "totalMinutes": 16.67, "averageDurationSec": 1000}


async def test_openapi_document_lists_these_endpoints_and_validates(client) -> None:
    spec = await get_json(client, "/api/openapi.json", {})
    validate(spec)
    paths = spec["paths"]
    expected = {
        "/api/dashboard/api-keys": {"get", "post"},
        "/api/dashboard/api-keys/{id}": {"delete"},
        "/api/dashboard/calls": {"get"},
        "/api/dashboard/calls/count": {"get"},
        "/api/dashboard/calls/{id}": {"get"},
        "/api/dashboard/analytics/usage": {"get"},
        "/api/dashboard/stats": {"get"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    list_params = {param["name"] for param in paths["/api/dashboard/calls"]["get"]["parameters"]}
    assert list_params >= {"agentId", "status", "skip", "limit"}
    assert paths["/api/dashboard/api-keys"]["post"]["security"] == [{"bearerAuth": []}, {"apiKeyAuth": []}]


async def test_a_busy_days_usage_is_exact_and_no_document_grows_with_the_days_calls(client, services) -> None:
    """300 calls of one org and day, each counted twice (a retry): analytics shows each once, and the ids kept
    for idempotency are spread over the day's shards instead of one list that every call's end rewrites."""
    tenant = await make_tenant(client, services)
    org_id, now = ObjectId(tenant.org_id), dt.datetime.now(dt.UTC)
    calls = [ObjectId() for _ in range(300)]
    for call_id in calls:
        assert await add_usage(services.db, org_id, now, once=call_id, calls=1, minutes=0.5, tokens=10)
    for call_id in calls[-50:]:  # retries arrive while the call is among the recent ones
        assert not await add_usage(services.db, org_id, now, once=call_id, calls=1, minutes=0.5, tokens=10)
    body = await (await client.get("/api/dashboard/analytics/usage?days=2", headers=tenant.key)).json()
    assert body[-1] == {"date": day_key(now), "calls": 300, "minutes": 150.0, "tokens": 3000, "ttsChars": 0}
    docs = await services.db.usage_daily.find({"orgId": org_id}).to_list()
    # 16 documents of at most 64 ids, whatever the number of calls (one document held all 300 before).
    assert len(docs) == USAGE_SHARDS == 16 and max(len(doc["counted"]) for doc in docs) <= COUNTED_KEPT == 64
