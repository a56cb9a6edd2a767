"""Sign-up, sign-in, sessions and API keys as a user meets them, including the attacks they must stop."""

from __future__ import annotations

import base64
import datetime as dt
import json

import jwt
from bson import ObjectId

from tests.factories import make_tenant
from voicex.server.admin import create_platform_admin

SIGNUP = {"name": "Ann Lee", "email": "  Ann@Example.COM ", "password": "s3cret-pass", "orgName": "Acme"}


async def test_signup_creates_pending_org_with_admin_user_and_token(client, services) -> None:
    response = await client.post("/api/auth/signup", json=SIGNUP)
    assert response.status == 201
    body = await response.json()
    assert body["user"]["email"] == "ann@example.com"
    assert body["user"]["role"] == "admin"
    assert body["organization"]["status"] == "pending"
    assert body["organization"]["planSlug"] == "free"
    assert "passwordHash" not in json.dumps(body)
    stored = await services.db.users.find_one({"email": "ann@example.com"})
    assert stored["passwordHash"].startswith("$argon2id$")
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status == 200
    assert (await me.json())["organization"]["name"] == "Acme"


async def test_duplicate_email_is_409_whatever_its_case(client) -> None:
    assert (await client.post("/api/auth/signup", json=SIGNUP)).status == 201
    again = await client.post("/api/auth/signup", json={**SIGNUP, "email": "ANN@example.com"})
    assert again.status == 409
    assert await again.json() == {"error": "email already registered"}


async def test_signup_validation_names_the_field(client) -> None:
    short = await client.post("/api/auth/signup", json={**SIGNUP, "password": "short"})
    assert short.status == 400
    assert (await short.json())["error"].startswith("password:")
    missing = await client.post("/api/auth/signup", json={"email": "x@example.com", "password": "long enough"})
    assert missing.status == 400
    assert (await missing.json())["error"].startswith(("name:", "orgName:"))
    bad_email = await client.post("/api/auth/signup", json={**SIGNUP, "email": "not-an-email"})
    assert (await bad_email.json())["error"] == "email: email must be a valid email address"


async def test_signin_unknown_email_and_wrong_password_look_the_same(client) -> None:
    await client.post("/api/auth/signup", json=SIGNUP)
    wrong_password = await client.post("/api/auth/signin", json={"email": "ann@example.com", "password": "nope-nope"})
    unknown_email = await client.post("/api/auth/signin", json={"email": "who@example.com", "password": "nope-nope"})
    assert wrong_password.status == unknown_email.status == 401
    assert await wrong_password.json() == await unknown_email.json() == {"error": "invalid email or password"}
    ok = await client.post("/api/auth/signin", json={"email": "ANN@example.com ", "password": "s3cret-pass"})
    assert ok.status == 200
    body = await ok.json()
    assert body["organization"]["status"] == "pending" and body["token"]


async def test_pending_org_is_403_on_dashboard_until_an_admin_activates_it(client, services) -> None:
    body = await (await client.post("/api/auth/signup", json=SIGNUP)).json()
    headers = {"Authorization": f"Bearer {body['token']}"}
    pending = await client.get("/api/dashboard/organization", headers=headers)
    assert pending.status == 403
    assert await pending.json() == {"error": "organization pending"}

    await create_platform_admin(services.db, "root@example.com", "root-password")
    admin = await (
        await client.post("/api/auth/signin", json={"email": "root@example.com", "password": "root-password"})
    ).json()
    admin_headers = {"Authorization": f"Bearer {admin['token']}"}
    listed = await (await client.get("/api/admin/organizations?status=pending", headers=admin_headers)).json()
    assert [org["name"] for org in listed["items"]] == ["Acme"]
    org_id = body["organization"]["_id"]
    patched = await client.patch(f"/api/admin/organizations/{org_id}", json={"status": "active"}, headers=admin_headers)
    assert patched.status == 200 and (await patched.json())["status"] == "active"
    assert (await client.get("/api/dashboard/organization", headers=headers)).status == 200

    suspended = await client.patch(
        f"/api/admin/organizations/{org_id}", json={"status": "suspended"}, headers=admin_headers
    )
    assert suspended.status == 200
    blocked = await client.get("/api/dashboard/organization", headers=headers)
    assert await blocked.json() == {"error": "organization suspended"}
    assert (await client.get("/api/auth/me", headers=headers)).status == 200  # still allowed


async def test_admin_endpoints_are_for_platform_admins_only(client, services) -> None:
    tenant = await make_tenant(client, services)
    for headers in (tenant.jwt, tenant.key):
        response = await client.get("/api/admin/organizations", headers=headers)
        assert response.status == 403
        assert await response.json() == {"error": "platform admin only"}
    assert (await client.get("/api/admin/organizations")).status == 401
    await create_platform_admin(services.db, "root@example.com", "root-password")
    admin = await (
        await client.post("/api/auth/signin", json={"email": "root@example.com", "password": "root-password"})
    ).json()
    headers = {"Authorization": f"Bearer {admin['token']}"}
    bad_plan = await client.patch(
        f"/api/admin/organizations/{tenant.org_id}", json={"planSlug": "gold"}, headers=headers
    )
    assert bad_plan.status == 400 and "planSlug" in (await bad_plan.json())["error"]
    missing = await client.patch(f"/api/admin/organizations/{ObjectId()}", json={"status": "active"}, headers=headers)
    assert missing.status == 404


def _forge(payload: dict[str, object], header: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}."


async def test_forged_expired_and_tampered_tokens_are_401(client, services) -> None:
    tenant = await make_tenant(client, services)
    now = dt.datetime.now(dt.UTC)
    claims = {"sub": tenant.user_id, "iat": int(now.timestamp()), "exp": int((now + dt.timedelta(hours=1)).timestamp())}
    secret = services.settings.jwt_secret
    header, payload, signature = tenant.token.split(".")
    tampered_claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered_claims["sub"] = str(ObjectId())
    tampered_payload = base64.urlsafe_b64encode(json.dumps(tampered_claims).encode()).rstrip(b"=").decode()
    bad_tokens = {
        "alg none": _forge(claims, {"alg": "none", "typ": "JWT"}),
        "wrong key": jwt.encode(claims, "x" * 48, algorithm="HS256"),
        "HS512": jwt.encode(claims, secret, algorithm="HS512"),
        "expired": jwt.encode({**claims, "exp": int((now - dt.timedelta(seconds=5)).timestamp())}, secret),
        "tampered": f"{header}.{tampered_payload}.{signature}",
        "garbage": "not.a.token",
        "unknown user": jwt.encode({**claims, "sub": str(ObjectId())}, secret, algorithm="HS256"),
    }
    for name, token in bad_tokens.items():
        response = await client.get("/api/dashboard/organization", headers={"Authorization": f"Bearer {token}"})
        assert response.status == 401, name
        assert "error" in await response.json()
    assert (await client.get("/api/dashboard/organization", headers=tenant.jwt)).status == 200
    basic = await client.get("/api/dashboard/organization", headers={"Authorization": "Basic abc"})
    assert basic.status == 401


async def test_api_keys_are_checked_by_hash_and_shape(client, services) -> None:
    tenant = await make_tenant(client, services)
    assert (await client.get("/api/dashboard/organization", headers=tenant.key)).status == 200
    wrong = "vx_" + "0" * 48
    for raw in (wrong, "vx_short", tenant.api_key.upper(), ""):
        response = await client.get("/api/dashboard/organization", headers={"x-api-key": raw})
        assert response.status == 401, raw
    stored = await services.db.api_keys.find_one({"orgId": ObjectId(tenant.org_id)})
    assert tenant.api_key not in json.dumps(stored, default=str)
    me = await (await client.get("/api/auth/me", headers=tenant.key)).json()
    assert me["user"] is None and me["organization"]["_id"] == tenant.org_id
