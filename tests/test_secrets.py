"""Secrets never leave the server: not in any response body, not in any log line."""

from __future__ import annotations

import io
import logging

from bson import ObjectId

from tests.factories import make_tenant
from voicex.platform.logs import configure_logging
from voicex.web.auth import hash_api_key

PROVIDER_SECRET = "sk-provider-secret-7f3a9c1e5b"
TWILIO_TOKEN = "twilio-auth-token-5e8d2c4b1a9f"


class Recorder:
    """Wraps the test client and keeps every response body."""

    def __init__(self, client) -> None:
        self.client = client
        self.bodies: list[str] = []

    async def call(self, method: str, path: str, **kwargs) -> tuple[int, str]:
        response = await self.client.request(method, path, **kwargs)
        text = await response.text()
        self.bodies.append(text)
        return response.status, text


async def test_no_response_or_log_line_carries_a_secret(client, services) -> None:
    log_buffer = io.StringIO()
    root = logging.getLogger()
    previous = (root.level, list(root.handlers))
    configure_logging("DEBUG", stream=log_buffer)  # the server's own set-up, at its most verbose
    try:
        tenant = await make_tenant(client, services)
        http = Recorder(client)
        await http.call("POST", "/api/auth/signin", json={"email": tenant.email, "password": tenant.password})
        await http.call(
            "POST", "/api/auth/signin", json={"email": tenant.email, "password": "wrong-" + tenant.password}
        )
        await http.call("GET", "/api/auth/me", headers=tenant.jwt)
        status, created = await http.call(
            "POST",
            "/api/dashboard/providers",
            headers=tenant.jwt,
            json={
                "category": "tts",
                "providerKey": "elevenlabs",
                "name": "Voices",
                "credentials": {"apiKey": PROVIDER_SECRET},
            },
        )
        assert status == 201
        provider_id = created.split('"_id":"')[1][:24]
        await http.call(
            "PATCH",
            f"/api/dashboard/providers/{provider_id}",
            headers=tenant.key,
            json={"credentials": {"apiKey": PROVIDER_SECRET}},
        )
        await http.call(
            "POST",
            "/api/dashboard/providers",
            headers=tenant.jwt,
            json={
                "category": "tts",
                "providerKey": "elevenlabs",
                "name": "Voices",
                "credentials": {"apiKey": PROVIDER_SECRET},
            },
        )  # 409
        await http.call("GET", "/api/dashboard/providers", headers=tenant.key)
        await http.call("GET", f"/api/dashboard/providers/{provider_id}", headers=tenant.key)
        await http.call(
            "PATCH",
            "/api/dashboard/organization",
            headers=tenant.jwt,
            json={"twilio": {"accountSid": "AC" + "a" * 32, "authToken": TWILIO_TOKEN}},
        )
        await http.call("GET", "/api/dashboard/organization", headers=tenant.jwt)
        status, new_key = await http.call("POST", "/api/dashboard/api-keys", headers=tenant.jwt, json={"name": "ci"})
        assert status == 201
        raw_key = new_key.split('"rawKey":"')[1][:51]
        http.bodies.pop()  # the one response that shows a raw key, by design
        await http.call("GET", "/api/dashboard/api-keys", headers={"x-api-key": raw_key})
        await http.call("GET", "/api/dashboard/organization", headers={"x-api-key": raw_key[:-1] + "0"})
        await http.call("GET", "/api/openapi.json")
    finally:
        for handler in list(root.handlers):
            if handler not in previous[1]:
                root.removeHandler(handler)
        root.setLevel(previous[0])

    user = await services.db.users.find_one({"_id": ObjectId(tenant.user_id)})
    stored_provider = await services.db.providers.find_one({"_id": ObjectId(provider_id)})
    secrets = {
        "password": tenant.password,
        "password hash": user["passwordHash"],
        "raw API key": tenant.api_key,
        "new raw API key": raw_key,
        "API key hash": hash_api_key(tenant.api_key),
        "new API key hash": hash_api_key(raw_key),
        "provider credential": PROVIDER_SECRET,
        "encrypted provider credential": stored_provider["credentials"],
        "Twilio auth token": TWILIO_TOKEN,
        "JWT secret": services.settings.jwt_secret,
        "encryption key": services.settings.encryption_key,
    }
    logs = log_buffer.getvalue()
    assert "voicex.access" in logs  # the capture works
    for name, secret in secrets.items():
        assert secret not in logs, f"{name} found in the logs"
        for body in http.bodies:
            assert secret not in body, f"{name} found in a response: {body[:200]}"
    assert PROVIDER_SECRET not in str(stored_provider) and TWILIO_TOKEN not in str(
        await services.db.organizations.find_one({"_id": ObjectId(tenant.org_id)})
    )
