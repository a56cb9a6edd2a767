"""The organization's API keys: list, create (the raw key is shown once) and revoke.

Only the key's sha256 hash and a short display prefix are stored, so a leaked database does not leak keys
and a lost key cannot be shown again: the user creates a new one and deletes the old.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r201, r400, r401, r403, r404
from pydantic import BaseModel, ConfigDict, Field

from voicex.api.openapi import ErrorOut, endpoint
from voicex.api.schemas import Deleted, Out
from voicex.platform.errors import forbidden, not_found
from voicex.platform.fields import NonBlank
from voicex.platform.ids import path_id
from voicex.platform.services import services
from voicex.store import api_keys
from voicex.store.api_keys import ApiKey
from voicex.web.auth import api_key_prefix, auth, hash_api_key, new_api_key
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


class ApiKeyOut(Out):
    id: str = Field(alias="_id")
    name: str
    keyPrefix: str = Field(description="'vx_' and the key's first 8 hex digits")
    createdAt: str
    lastUsedAt: str | None = Field(description="updated at most once a minute")


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
    return json_response([public_api_key(key) for key in keys])


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
    db = services(request).db
    if await api_keys.count_for_org(db, context.org_id) >= MAX_API_KEYS_PER_ORG:
        raise forbidden(f"API key limit reached: at most {MAX_API_KEYS_PER_ORG} per organization; delete unused keys")
    raw = new_api_key()
    key: ApiKey = {
        "orgId": context.org_id,
        "name": body.name,
        "keyHash": hash_api_key(raw),
        "keyPrefix": api_key_prefix(raw),
        "createdAt": dt.datetime.now(dt.UTC),
        "lastUsedAt": None,
        "createdBy": context.user_id,
    }
    key = await api_keys.insert(db, key)
    return json_response({**public_api_key(key), "rawKey": raw}, status=201)


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
    key_id = path_id(id, "API key")
    if not await api_keys.delete(services(request).db, context.org_id, key_id):
        raise not_found("API key")
    return json_response({"deleted": True})
