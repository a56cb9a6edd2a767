"""The organization's API keys: list, create (the raw key is shown once), rotate and revoke.

Only the key's sha256 hash and a short display prefix are stored, so a leaked database does not leak keys
and a lost key cannot be shown again: the user creates a new one and deletes the old. A key made with
``scopes: ["twilio"]`` only admits calls on Twilio's webhooks (voicex/store/api_keys.py); rotating a key replaces it
with a new one of the same name and scopes and revokes it at once (for a leaked key; a planned change is
create, switch the URL in Twilio's console, delete).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r201, r400, r401, r403, r404
from pydantic import BaseModel, ConfigDict, Field, field_validator

from voicex.api.openapi import ErrorOut, endpoint
from voicex.api.schemas import Deleted, Out
from voicex.platform.errors import forbidden, not_found
from voicex.platform.fields import NonBlank
from voicex.platform.ids import path_id
from voicex.platform.services import services
from voicex.store import api_keys
from voicex.store.api_keys import FULL, ApiKey, Scope, scopes_of
from voicex.web.auth import AuthContext, api_key_prefix, auth, hash_api_key, new_api_key
from voicex.web.http import json_response
from voicex.web.presenters import public_api_key

routes = web.RouteTableDef()

# Keys are cheap to make and each one is a credential to keep track of; an org needing more than this is
# almost certainly leaking them (e.g. one per deploy, never deleted). Checked before insert, so concurrent
# creations may overshoot by a few, which is harmless.
MAX_API_KEYS_PER_ORG = 100


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: NonBlank[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        description="a label to tell keys apart, e.g. 'production'"
    )
    scopes: list[Scope] = Field(
        default_factory=lambda: [FULL],
        min_length=1,
        max_length=2,
        description="'full' (default: the dashboard API and Twilio's webhooks) or 'twilio' (only Twilio's webhooks:"
        " the recommended key for the webhook URLs in Twilio's console)",
    )

    @field_validator("scopes")
    @classmethod
    def _normalized(cls, value: list[Scope]) -> list[Scope]:
        return [FULL] if FULL in value else sorted(set(value))


class ApiKeyOut(Out):
    id: str = Field(alias="_id")
    name: str
    keyPrefix: str = Field(description="'vx_' and the key's first 8 hex digits")
    createdAt: str
    lastUsedAt: str | None = Field(description="updated at most once a minute")
    scopes: list[Scope] = Field(description="'full' or 'twilio' (Twilio's webhooks only)")


class ApiKeyCreatedOut(ApiKeyOut):
    rawKey: str = Field(pattern=r"^vx_[0-9a-f]{48}$", description="send as 'x-api-key'; shown only this once")


@routes.get("/api/dashboard/api-keys", allow_head=False)
@endpoint
async def list_api_keys(request: web.Request) -> r200[list[ApiKeyOut]] | r401[ErrorOut] | r403[ErrorOut]:
    """The organization's API keys, newest first, by name and prefix (never the key or its hash).

    Tags: api-keys
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The keys
    """
    context = auth(request)
    keys = await api_keys.list_for_org(services(request).db, context.org_id)
    return json_response([_present(key) for key in keys])


def _present(key: ApiKey) -> dict[str, Any]:
    return {**public_api_key(key), "scopes": scopes_of(key)}


def _require_admin(context: AuthContext) -> None:
    """Keys are the org's credentials: org admins (or a full key, itself an admin credential) manage them."""
    if context.user is not None and context.user.get("role") != "admin":
        raise forbidden("only organization admins manage API keys")


def _new_key(context: AuthContext, name: str, scopes: list[Scope]) -> tuple[str, ApiKey]:
    raw = new_api_key()
    key: ApiKey = {
        "orgId": context.org_id,
        "name": name,
        "keyHash": hash_api_key(raw),
        "keyPrefix": api_key_prefix(raw),
        "createdAt": dt.datetime.now(dt.UTC),
        "lastUsedAt": None,
        "createdBy": context.user_id,
        "scopes": scopes,
    }
    return raw, key


@routes.post("/api/dashboard/api-keys")
@endpoint
async def create_api_key(
    request: web.Request, body: ApiKeyIn
) -> r201[ApiKeyCreatedOut] | r400[ErrorOut] | r401[ErrorOut] | r403[ErrorOut]:
    """Create an API key. The response is the only time the raw key is shown; store it now.

    Tags: api-keys
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        201: The new key, with rawKey
        400: name is missing, blank or longer than 100 characters
        403: The organization already has the maximum number of keys (100)
    """
    context = auth(request)
    _require_admin(context)
    db = services(request).db
    if await api_keys.count_for_org(db, context.org_id) >= MAX_API_KEYS_PER_ORG:
        raise forbidden(f"API key limit reached: at most {MAX_API_KEYS_PER_ORG} per organization; delete unused keys")
    raw, key = _new_key(context, body.name, body.scopes)
    key = await api_keys.insert(db, key)
    return json_response({**_present(key), "rawKey": raw}, status=201)


@routes.post("/api/dashboard/api-keys/{id}/rotate")
@endpoint
async def rotate_api_key(
    request: web.Request, id: str, /
) -> r201[ApiKeyCreatedOut] | r401[ErrorOut] | r403[ErrorOut] | r404[ErrorOut]:
    """Replace a key (e.g. one that leaked): a new key with the same name and scopes; the old one stops now.

    Update every place that uses the old key (Twilio's console for a webhook key) with the new rawKey.

    Tags: api-keys
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        201: The new key, with rawKey; the old key is revoked
        404: No such key in this organization
    """
    context = auth(request)
    _require_admin(context)
    db = services(request).db
    old = await api_keys.get(db, context.org_id, path_id(id, "API key"))
    if old is None:
        raise not_found("API key")
    raw, key = _new_key(context, old["name"], scopes_of(old))
    key = await api_keys.insert(db, key)
    await api_keys.delete(db, context.org_id, old["_id"])
    return json_response({**_present(key), "rawKey": raw}, status=201)


@routes.delete("/api/dashboard/api-keys/{id}")
@endpoint
async def delete_api_key(
    request: web.Request, id: str, /
) -> r200[Deleted] | r401[ErrorOut] | r403[ErrorOut] | r404[ErrorOut]:
    """Revoke an API key; requests with it are refused (401) from now on, including the key deleting itself.

    Tags: api-keys
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The key is deleted
        404: No such key in this organization
    """
    context = auth(request)
    _require_admin(context)
    key_id = path_id(id, "API key")
    if not await api_keys.delete(services(request).db, context.org_id, key_id):
        raise not_found("API key")
    return json_response({"deleted": True})
