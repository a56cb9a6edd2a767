"""Test tenants: an organization with a signed-in admin (JWT) and an API key, made through the real API."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId

from voicex.platform.services import Services
from voicex.web.auth import api_key_prefix, hash_api_key, new_api_key

_counter = itertools.count(1)


@dataclass
class Tenant:
    org_id: str
    user_id: str
    token: str
    api_key: str
    email: str
    password: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def jwt(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def key(self) -> dict[str, str]:
        return {"x-api-key": self.api_key}


async def make_tenant(client: Any, services: Services, plan: str = "starter", status: str = "active") -> Tenant:
    """Sign up through the API, then set status and plan directly (as a platform admin would)."""
    n = next(_counter)
    email, password = f"owner{n}@tenant{n}.example.com", f"password-{n}-long"
    response = await client.post(
        "/api/auth/signup", json={"name": f"Owner {n}", "email": email, "password": password, "orgName": f"Org {n}"}
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    org_id = body["organization"]["_id"]
    await services.db.organizations.update_one(
        {"_id": ObjectId(org_id)}, {"$set": {"status": status, "planSlug": plan}}
    )
    raw = new_api_key()
    await services.db.api_keys.insert_one(
        {
            "orgId": ObjectId(org_id),
            "name": "test key",
            "keyHash": hash_api_key(raw),
            "keyPrefix": api_key_prefix(raw),
            "createdAt": dt.datetime.now(dt.UTC),
            "lastUsedAt": None,
        }
    )
    return Tenant(org_id, body["user"]["_id"], body["token"], raw, email, password)
