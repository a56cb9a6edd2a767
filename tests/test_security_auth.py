"""Issue 14, the auth findings: password hashing off the event loop (2), revocable sessions (5), rate limits behind
a proxy with growing sign-in delays and fail-closed auth limits (6), and limits per organization (10, in part).

Clients are told apart through a trusted proxy: the test server's peer is always 127.0.0.1, so a test that needs
two clients trusts 127.0.0.1 and names them in ``X-Forwarded-For``, as a reverse proxy would.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.factories import make_tenant
from voicex.platform.embedded_db import EmbeddedMongo
from voicex.server.admin import reset_password
from voicex.server.looplag import monitor
from voicex.store.db import Database
from voicex.web.client_ip import client_address, group_key, parse_networks
from voicex.web.signin_guard import delay_after

pytestmark = pytest.mark.scripted_providers

CLIENT_A, CLIENT_B = {"X-Forwarded-For": "203.0.113.5"}, {"X-Forwarded-For": "203.0.113.9"}


def trust_loopback_proxy(services: Any, **limits: int) -> None:
    services.settings = services.settings.model_copy(update={"trusted_proxies": ["127.0.0.1/32"], **limits})


async def signin(client: Any, email: str, password: str, headers: dict[str, str] | None = None) -> Any:
    return await client.post("/api/auth/signin", json={"email": email, "password": password}, headers=headers)


# --- finding 2: argon2 off the event loop ---------------------------------------------------------------------


class Lateness:
    """Collects what voicex/server/looplag.py's monitor measures: how late each wake-up of the loop was."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def observe(self, seconds: float) -> None:
        self.samples.append(seconds)


# Generous on purpose (2 cores shared with other test runs showed ~60 ms spikes with no sign-ins at all, ~110 ms
# during the burst); before the fix the loop stalls for whole argon2 checks back to back, about a second here.
STALL_BOUND_S = 0.2


async def test_a_burst_of_signins_leaves_health_and_the_event_loop_responsive(client, services) -> None:
    """16 sign-ins with unknown emails at once: health probes and the loop's timers stay on time throughout.

    A probe is sent every 20 ms as an outside prober would, and its latency counted from when it was due: the
    test's client shares the server's loop, so a stalled loop delays the sending too and must count."""
    loop = asyncio.get_running_loop()
    assert (await client.get("/api/health")).status == 200  # connection and first request out of the way
    lag = Lateness()
    lag_task = asyncio.create_task(monitor(lag, interval=0.005))  # type: ignore[arg-type]
    health: list[float] = []
    burst_done = asyncio.Event()

    async def probe(due: float) -> None:
        await asyncio.sleep(max(0.0, due - loop.time()))
        response = await client.get("/api/health")
        assert response.status == 200
        await response.read()
        health.append(loop.time() - due)

    async def probe_every(period: float) -> list[asyncio.Task[None]]:
        probes, due = [], loop.time()
        while not burst_done.is_set():
            probes.append(asyncio.create_task(probe(due)))
            due += period
            await asyncio.sleep(max(0.0, due - loop.time()))
        return probes

    prober = asyncio.create_task(probe_every(0.02))
    burst_started = loop.time()
    answers = await asyncio.gather(*(signin(client, f"nobody-{n}@example.com", "wrong-password") for n in range(16)))
    burst_s = loop.time() - burst_started
    burst_done.set()
    await asyncio.gather(*await prober)
    lag_task.cancel()
    assert [answer.status for answer in answers] == [401] * 16  # each did its argon2 check (~250 ms of CPU)
    assert burst_s > 0.5 and len(health) >= 20  # the probes ran while the hashes did
    assert max(health) < STALL_BOUND_S, f"/api/health answered up to {max(health) * 1000:.0f} ms late"
    assert max(lag.samples) < STALL_BOUND_S, f"the event loop stalled up to {max(lag.samples) * 1000:.0f} ms"


async def test_signin_and_signup_have_their_own_tight_limit_per_address(client, services) -> None:
    services.settings = services.settings.model_copy(update={"auth_ip_per_minute": 3})
    statuses = [(await signin(client, f"x{n}@example.com", "wrong-password")).status for n in range(4)]
    assert statuses == [401, 401, 401, 429]
    refused = await signin(client, "x9@example.com", "wrong-password")
    assert (await refused.json())["error"].startswith("too many sign-in attempts from this address")
    assert int(refused.headers["Retry-After"]) >= 1
    assert (await client.get("/api/plans")).status == 200  # the general per-address limit is another bucket
    signups = []
    for n in range(4):
        body = {"name": "N", "email": f"new{n}@example.com", "password": "long-password", "orgName": "O"}
        signups.append((await client.post("/api/auth/signup", json=body)).status)
    assert signups == [201, 201, 201, 429]


# --- finding 5: revocable sessions -------------------------------------------------------------------------------


async def test_logout_ends_every_session_of_the_user(client, services) -> None:
    tenant = await make_tenant(client, services)
    other_device = {
        "Authorization": f"Bearer {(await (await signin(client, tenant.email, tenant.password)).json())['token']}"
    }
    assert (await client.get("/api/dashboard/organization", headers=other_device)).status == 200
    out = await client.post("/api/auth/logout", headers=tenant.jwt)
    assert out.status == 200 and await out.json() == {"loggedOut": True}
    for headers in (tenant.jwt, other_device):
        gone = await client.get("/api/dashboard/organization", headers=headers)
        assert gone.status == 401 and await gone.json() == {"error": "session ended: sign in again"}
    assert (await client.get("/api/dashboard/organization", headers=tenant.key)).status == 200  # keys are not sessions
    by_key = await client.post("/api/auth/logout", headers=tenant.key)
    assert by_key.status == 403 and "signed-in user" in (await by_key.json())["error"]
    again = await signin(client, tenant.email, tenant.password)
    fresh = {"Authorization": f"Bearer {(await again.json())['token']}"}
    assert (await client.get("/api/auth/me", headers=fresh)).status == 200


async def test_a_password_change_ends_other_sessions_and_returns_a_fresh_token(client, services) -> None:
    tenant = await make_tenant(client, services)
    wrong = await client.post(
        "/api/auth/password", headers=tenant.jwt, json={"currentPassword": "not-it-at-all", "newPassword": "n" * 12}
    )
    assert wrong.status == 403 and await wrong.json() == {"error": "current password is incorrect"}
    short = await client.post(
        "/api/auth/password", headers=tenant.jwt, json={"currentPassword": tenant.password, "newPassword": "short"}
    )
    assert short.status == 400
    changed = await client.post(
        "/api/auth/password",
        headers=tenant.jwt,
        json={"currentPassword": tenant.password, "newPassword": "a-brand-new-password"},
    )
    assert changed.status == 200
    fresh = {"Authorization": f"Bearer {(await changed.json())['token']}"}
    old = await client.get("/api/dashboard/organization", headers=tenant.jwt)
    assert old.status == 401 and await old.json() == {"error": "session ended: sign in again"}
    assert (await client.get("/api/dashboard/organization", headers=fresh)).status == 200
    assert (await signin(client, tenant.email, tenant.password)).status == 401
    assert (await signin(client, tenant.email, "a-brand-new-password")).status == 200


async def test_session_tokens_last_12_hours_and_an_admin_reset_ends_them(client, services) -> None:
    tenant = await make_tenant(client, services)
    claims = jwt.decode(tenant.token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 12 * 3600
    services.settings = services.settings.model_copy(update={"session_lifetime_hours": 1.5})
    shorter = jwt.decode(
        (await (await signin(client, tenant.email, tenant.password)).json())["token"],
        options={"verify_signature": False},
    )
    assert shorter["exp"] - shorter["iat"] == 90 * 60
    now = int(time.time())  # tokens of before this change: no version, 7 days; the session lifetime applies to them
    week_long = {"sub": tenant.user_id, "exp": now + 6 * 86400}
    recent = jwt.encode({**week_long, "iat": now - 3600}, services.settings.jwt_secret, algorithm="HS256")
    stale = jwt.encode({**week_long, "iat": now - 2 * 3600}, services.settings.jwt_secret, algorithm="HS256")
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {recent}"})).status == 200
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {stale}"})).status == 401
    await reset_password(services.db, tenant.email, "reset-by-the-operator")  # `voicex admin reset-password`
    gone = await client.get("/api/auth/me", headers=tenant.jwt)
    assert gone.status == 401 and await gone.json() == {"error": "session ended: sign in again"}
    assert (await signin(client, tenant.email, "reset-by-the-operator")).status == 200


async def test_logout_and_password_change_are_in_the_openapi_document(client) -> None:
    paths = (await (await client.get("/api/openapi.json")).json())["paths"]
    assert {"requestBody", "responses"} <= set(paths["/api/auth/password"]["post"])
    assert set(paths["/api/auth/password"]["post"]["responses"]) >= {"200", "400", "401", "403", "429"}
    assert set(paths["/api/auth/logout"]["post"]["responses"]) >= {"200", "401", "403"}


# --- finding 6: clients behind a proxy, sign-in delays, failing closed ------------------------------------------


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(client, services) -> None:
    trust_loopback_proxy(services, rate_limit_ip_per_minute=3)
    first = [(await client.get("/api/plans", headers=CLIENT_A)).status for _ in range(4)]
    assert first == [200, 200, 200, 429]
    assert (await client.get("/api/plans", headers=CLIENT_B)).status == 200
    spoofed = {"X-Forwarded-For": "198.51.100.77, 203.0.113.5"}  # client A writing another address to its left
    assert (await client.get("/api/plans", headers=spoofed)).status == 429


async def test_an_untrusted_peers_forwarded_for_is_ignored(client, services) -> None:
    services.settings = services.settings.model_copy(update={"rate_limit_ip_per_minute": 3})
    statuses = [
        (await client.get("/api/plans", headers={"X-Forwarded-For": f"203.0.113.{n}"})).status for n in range(4)
    ]
    assert statuses == [200, 200, 200, 429]  # one peer, one bucket, whatever it claims


async def test_ipv6_clients_are_grouped_by_their_64(client, services) -> None:
    trust_loopback_proxy(services, rate_limit_ip_per_minute=3)
    for _ in range(3):
        assert (await client.get("/api/plans", headers={"X-Forwarded-For": "2001:db8:1:2::1"})).status == 200
    same_64 = await client.get("/api/plans", headers={"X-Forwarded-For": "2001:db8:1:2:ffff:ee:dd:9"})
    assert same_64.status == 429
    assert (await client.get("/api/plans", headers={"X-Forwarded-For": "2001:db8:1:3::1"})).status == 200


async def test_bad_passwords_slow_the_guessing_address_not_the_owner(client, services) -> None:
    tenant = await make_tenant(client, services)
    trust_loopback_proxy(services)
    free = services.settings.signin_attempts_per_15min
    for _ in range(free):
        assert (await signin(client, tenant.email, "a-wrong-guess", CLIENT_A)).status == 401
    refused = await signin(client, tenant.email, tenant.password, CLIENT_A)
    assert refused.status == 429 and 25 <= int(refused.headers["Retry-After"]) <= 30
    owner = await signin(client, tenant.email, tenant.password, CLIENT_B)  # the real user, from elsewhere
    assert owner.status == 200 and "token" in await owner.json()
    # the first delay runs out; the next wrong guess from the same address earns a longer one
    await services.db.rate_limits.update_many({"failures": {"$gte": 1}}, {"$set": {"blockedUntil": _past()}})
    assert (await signin(client, tenant.email, "another-guess", CLIENT_A)).status == 401
    longer = await signin(client, tenant.email, tenant.password, CLIENT_A)
    assert longer.status == 429 and 55 <= int(longer.headers["Retry-After"]) <= 60


def _past() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)


@pytest.mark.slow
async def test_auth_limits_fail_closed_while_the_database_is_down(tmp_path: Path, make_client, services) -> None:
    database = EmbeddedMongo(tmp_path / "outage-db")
    await asyncio.to_thread(database.start)
    shared_db, services.db = services.db, Database(database.uri, "outage", server_selection_timeout_ms=1000)
    client = await make_client()
    try:
        assert (await signin(client, "who@example.com", "wrong-password")).status == 401
        await asyncio.to_thread(database.stop)
        signup = {"name": "N", "email": "new@example.com", "password": "long-password", "orgName": "O"}
        for response in (
            await signin(client, "who@example.com", "wrong-password"),
            await client.post("/api/auth/signup", json=signup),
        ):
            assert response.status == 503
            assert (await response.json())["error"].startswith("temporarily unavailable: the database does not answer")
            assert int(response.headers["Retry-After"]) >= 1
        assert (await client.get("/api/plans")).status == 200  # the general limits still fail open
    finally:
        await services.db.close()
        services.db = shared_db
        await asyncio.to_thread(database.stop)


def test_the_client_is_the_nearest_untrusted_hop() -> None:
    proxies = parse_networks(("10.0.0.0/8", "2001:db8:ffff::/48"))
    assert client_address("10.1.2.3", ["198.51.100.1, 203.0.113.5, 10.9.9.9"], proxies) == "203.0.113.5"
    assert client_address("10.1.2.3", ["198.51.100.1", "203.0.113.5:4711"], proxies) == "203.0.113.5"
    assert client_address("192.0.2.1", ["203.0.113.5"], proxies) == "192.0.2.1"  # an untrusted peer
    assert client_address("10.1.2.3", ["not-an-ip, 10.4.4.4"], proxies) == "10.4.4.4"  # garbage picks no bucket
    assert client_address("10.1.2.3", [], proxies) == "10.1.2.3"
    assert client_address("2001:db8:ffff::1", ["[2001:db8:5::7]:443"], proxies) == "2001:db8:5::7"
    assert client_address("::ffff:10.0.0.1", ["203.0.113.5"], proxies) == "203.0.113.5"  # v4-mapped peer
    assert group_key("2001:db8:5:6:7::1") == "2001:db8:5:6::/64" and group_key("203.0.113.5") == "203.0.113.5"


def test_sign_in_delays_grow_from_30_seconds_to_15_minutes() -> None:
    assert [delay_after(n, 10) for n in (1, 9, 10, 11, 12, 14, 15, 40)] == [0, 0, 30, 60, 120, 480, 900, 900]


# --- finding 10 (part): limits per organization ----------------------------------------------------------------


async def test_the_keys_and_users_of_one_org_share_its_limit(client, services) -> None:
    tenant = await make_tenant(client, services)
    other = await make_tenant(client, services)
    created = await client.post("/api/dashboard/api-keys", json={"name": "second"}, headers=tenant.jwt)
    second_key = {"x-api-key": (await created.json())["rawKey"]}
    await services.db.rate_limits.delete_many({})  # start the org's count afresh (the POST above counted)
    services.settings = services.settings.model_copy(update={"rate_limit_per_minute": 4})
    statuses = [
        (await client.get("/api/dashboard/organization", headers=headers)).status
        for headers in (tenant.key, second_key, tenant.jwt, tenant.key, second_key)
    ]
    assert statuses == [200, 200, 200, 200, 429]
    assert (await client.get("/api/dashboard/organization", headers=other.key)).status == 200


async def test_the_11th_provider_test_of_an_org_in_a_minute_is_429(client, services) -> None:
    tenant = await make_tenant(client, services, plan="pro")
    other = await make_tenant(client, services, plan="pro")
    providers = await (await client.get("/api/dashboard/providers", headers=tenant.key)).json()
    scripted = next(p["_id"] for p in providers if p["providerKey"] == "scripted" and p["category"] == "llm")
    path = f"/api/dashboard/providers/{scripted}/test"
    statuses = [(await client.post(path, headers=tenant.key)).status for _ in range(10)]
    assert statuses == [200] * 10
    refused = await client.post(path, headers=tenant.jwt)  # a user of the org shares the keys' count
    assert refused.status == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert (await refused.json())["error"].startswith("too many provider tests for this organization")
    assert (await client.get("/api/dashboard/providers", headers=tenant.key)).status == 200  # other routes go on
    assert (await client.post(path, headers=other.key)).status == 200  # another org has its own count
