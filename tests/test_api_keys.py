"""API keys as a developer meets them: create one, use it, see it listed by prefix only, revoke it."""

from __future__ import annotations

import datetime as dt
import re

from bson import ObjectId

from tests.factories import make_tenant
from voicex.api.api_keys import MAX_API_KEYS_PER_ORG
from voicex.web.auth import hash_api_key


async def test_created_key_works_is_listed_by_prefix_only_and_stops_working_once_deleted(client, services) -> None:
    tenant = await make_tenant(client, services)
    created = await client.post("/api/dashboard/api-keys", json={"name": "  production  "}, headers=tenant.jwt)
    assert created.status == 201
    body = await created.json()
    raw = body["rawKey"]
    assert re.fullmatch(r"vx_[0-9a-f]{48}", raw)
    assert body["name"] == "production"
    assert body["keyPrefix"] == raw[:11]
    assert body["lastUsedAt"] is None
    assert "keyHash" not in body

    org = await client.get("/api/dashboard/organization", headers={"x-api-key": raw})
    assert org.status == 200
    assert (await org.json())["_id"] == tenant.org_id

    listed = await client.get("/api/dashboard/api-keys", headers=tenant.jwt)
    assert listed.status == 200
    text = await listed.text()
    assert raw not in text and hash_api_key(raw) not in text and tenant.api_key not in text
    items = await listed.json()
    assert [item["name"] for item in items] == ["production", "test key"]  # newest first
    assert set(items[0]) == {"_id", "name", "keyPrefix", "createdAt", "lastUsedAt", "scopes"}
    assert items[0]["_id"] == body["_id"] and items[0]["keyPrefix"] == raw[:11]

    stored = await services.db.api_keys.find_one({"_id": ObjectId(body["_id"])})
    assert stored["keyHash"] == hash_api_key(raw)
    assert stored["createdBy"] == ObjectId(tenant.user_id)
    assert raw not in str(stored)

    deleted = await client.delete(f"/api/dashboard/api-keys/{body['_id']}", headers=tenant.jwt)
    assert deleted.status == 200
    assert await deleted.json() == {"deleted": True}
    refused = await client.get("/api/dashboard/organization", headers={"x-api-key": raw})
    assert refused.status == 401
    assert await refused.json() == {"error": "invalid API key"}
    remaining = await (await client.get("/api/dashboard/api-keys", headers=tenant.key)).json()
    assert [item["name"] for item in remaining] == ["test key"]
    again = await client.delete(f"/api/dashboard/api-keys/{body['_id']}", headers=tenant.jwt)
    assert again.status == 404


async def test_last_used_at_is_set_when_the_key_is_used(client, services) -> None:
    tenant = await make_tenant(client, services)
    body = await (await client.post("/api/dashboard/api-keys", json={"name": "ci"}, headers=tenant.jwt)).json()
    before = dt.datetime.now(dt.UTC)
    assert (await client.get("/api/dashboard/plan", headers={"x-api-key": body["rawKey"]})).status == 200
    items = await (await client.get("/api/dashboard/api-keys", headers=tenant.jwt)).json()
    used = next(item for item in items if item["_id"] == body["_id"])
    assert used["lastUsedAt"] is not None
    last_used = dt.datetime.fromisoformat(used["lastUsedAt"].replace("Z", "+00:00"))
    assert before - dt.timedelta(seconds=1) <= last_used <= dt.datetime.now(dt.UTC)


async def test_key_created_with_an_api_key_has_no_creator_and_can_revoke_itself(client, services) -> None:
    tenant = await make_tenant(client, services)
    created = await client.post("/api/dashboard/api-keys", json={"name": "made by a key"}, headers=tenant.key)
    assert created.status == 201
    body = await created.json()
    stored = await services.db.api_keys.find_one({"_id": ObjectId(body["_id"])})
    assert stored["createdBy"] is None
    own = {"x-api-key": body["rawKey"]}
    assert (await client.delete(f"/api/dashboard/api-keys/{body['_id']}", headers=own)).status == 200
    assert (await client.get("/api/dashboard/api-keys", headers=own)).status == 401


async def test_another_organizations_key_is_invisible_and_cannot_be_deleted(client, services) -> None:
    owner = await make_tenant(client, services)
    other = await make_tenant(client, services)
    key = await services.db.api_keys.find_one({"orgId": ObjectId(owner.org_id)})
    response = await client.delete(f"/api/dashboard/api-keys/{key['_id']}", headers=other.jwt)
    assert response.status == 404
    assert await response.json() == {"error": "API key not found"}
    assert (await client.get("/api/dashboard/organization", headers=owner.key)).status == 200
    items = await (await client.get("/api/dashboard/api-keys", headers=other.jwt)).json()
    assert str(key["_id"]) not in [item["_id"] for item in items]
    assert (await client.delete("/api/dashboard/api-keys/not-an-id", headers=other.jwt)).status == 404


async def test_name_is_validated_and_named_in_the_error(client, services) -> None:
    tenant = await make_tenant(client, services)
    for payload in ({"name": ""}, {"name": "   "}, {"name": "x" * 101}, {}):
        response = await client.post("/api/dashboard/api-keys", json=payload, headers=tenant.jwt)
        assert response.status == 400, payload
        assert (await response.json())["error"].startswith("name:"), payload
    extra = await client.post("/api/dashboard/api-keys", json={"name": "ok", "keyHash": "x"}, headers=tenant.jwt)
    assert extra.status == 400
    assert "keyHash" in (await extra.json())["error"]
    assert (await client.post("/api/dashboard/api-keys", json={"name": "x" * 100}, headers=tenant.jwt)).status == 201


async def test_keys_per_organization_are_capped(client, services) -> None:
    tenant = await make_tenant(client, services)
    now = dt.datetime.now(dt.UTC)
    await services.db.api_keys.insert_many(
        [
            {
                "orgId": ObjectId(tenant.org_id),
                "name": f"k{n}",
                "keyHash": f"{n:064x}",
                "keyPrefix": "vx_00000000",
                "createdAt": now,
                "lastUsedAt": None,
                "createdBy": None,
            }
            for n in range(MAX_API_KEYS_PER_ORG - 1)
        ]
    )
    refused = await client.post("/api/dashboard/api-keys", json={"name": "one too many"}, headers=tenant.jwt)
    assert refused.status == 403
    assert "at most 100" in (await refused.json())["error"]
    other = await make_tenant(client, services)
    assert (await client.post("/api/dashboard/api-keys", json={"name": "fine"}, headers=other.jwt)).status == 201


async def test_api_keys_need_an_active_signed_in_organization(client, services) -> None:
    assert (await client.get("/api/dashboard/api-keys")).status == 401
    pending = await make_tenant(client, services, status="pending")
    response = await client.post("/api/dashboard/api-keys", json={"name": "x"}, headers=pending.jwt)
    assert response.status == 403
    assert await response.json() == {"error": "organization pending"}
