"""The organization, its plan and the public plans list."""

from __future__ import annotations

import json

from bson import ObjectId

from tests.factories import make_tenant


async def test_public_plans_hide_custom_plans_and_model_lists(client) -> None:
    response = await client.get("/api/plans")
    assert response.status == 200
    plans = await response.json()
    assert [plan["slug"] for plan in plans] == ["free", "starter", "pro"]
    assert all("models" not in plan for plan in plans)
    assert plans[1]["limits"]["maxConcurrentCalls"] == 10
    assert plans[1]["pricing"] == {"monthly": 49, "annual": 490, "maxDiscountPercent": 10}


async def test_dashboard_plan_includes_models_and_features(client, services) -> None:
    tenant = await make_tenant(client, services, plan="free")
    plan = await (await client.get("/api/dashboard/plan", headers=tenant.key)).json()
    assert plan["slug"] == "free"
    assert plan["features"] == {"customProviders": False, "maxCustomProviders": 0}
    assert "local/smollm2-135m-instruct" in plan["models"]["llm"]
    assert "deepgram/nova-3" not in plan["models"]["stt"]


async def test_organization_reports_plan_limits_and_status(client, services) -> None:
    tenant = await make_tenant(client, services, plan="pro")
    org = await (await client.get("/api/dashboard/organization", headers=tenant.jwt)).json()
    assert org["_id"] == tenant.org_id
    assert (org["planSlug"], org["planName"], org["status"]) == ("pro", "Pro", "active")
    assert org["limits"]["maxAgents"] == 25
    assert org["twilio"] == {"accountSid": None, "authTokenSet": False}


async def test_twilio_credentials_are_write_only_and_encrypted(client, services) -> None:
    tenant = await make_tenant(client, services)
    token = "f" * 32
    sid = "AC" + "0123456789abcdef" * 2
    response = await client.patch(
        "/api/dashboard/organization",
        json={"name": "  Renamed  ", "twilio": {"accountSid": sid, "authToken": token}},
        headers=tenant.jwt,
    )
    assert response.status == 200
    body = await response.json()
    assert body["name"] == "Renamed"
    assert body["twilio"] == {"accountSid": sid, "authTokenSet": True}
    assert token not in await response.text()
    again = await client.get("/api/dashboard/organization", headers=tenant.jwt)
    assert token not in await again.text()
    raw = await services.db.organizations.find_one({"_id": ObjectId(tenant.org_id)})
    assert token not in json.dumps(raw, default=str)


async def test_organization_patch_validation(client, services) -> None:
    tenant = await make_tenant(client, services)
    empty = await client.patch("/api/dashboard/organization", json={}, headers=tenant.jwt)
    assert empty.status == 400
    bad_sid = await client.patch(
        "/api/dashboard/organization", json={"twilio": {"accountSid": "XX1", "authToken": "f" * 32}}, headers=tenant.jwt
    )
    assert bad_sid.status == 400
    assert (await bad_sid.json())["error"] == "twilio.accountSid: use the Account SID: AC and 32 hex digits"
    unknown = await client.patch("/api/dashboard/organization", json={"planSlug": "pro"}, headers=tenant.jwt)
    assert unknown.status == 400 and "planSlug" in (await unknown.json())["error"]
