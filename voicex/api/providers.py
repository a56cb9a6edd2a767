"""Providers: the registry of supported provider types, the global providers, and an org's own ones.

Global providers (``orgId: None``) are visible to every org and read-only for them; an org's own providers
carry credentials encrypted with SecretBox, which never leave the server (responses say ``credentialsSet``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r201, r400, r401, r403, r404, r409
from bson import ObjectId
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import DuplicateKeyError

from providers.urls import is_path_segment
from voicex.agents.migration import SCHEMA_VERSION
from voicex.agents.schemas import Language
from voicex.api.openapi import ErrorOut, endpoint
from voicex.api.schemas import Deleted, Out
from voicex.calls.builder import egress_policy
from voicex.catalog.config import Catalog, Category, ProviderType, catalog_models
from voicex.platform.errors import bad_request, conflict, forbidden, not_found
from voicex.platform.fields import NonBlank
from voicex.platform.ids import path_id
from voicex.platform.services import Services, services
from voicex.store import quotas
from voicex.store.agents import list_agents_using
from voicex.store.providers import (
    ModelDoc,
    ProviderDoc,
    delete_own_provider,
    get_visible_provider,
    insert_provider,
    list_visible_providers,
    name_taken,
    update_own_provider,
)
from voicex.web.auth import auth
from voicex.web.http import json_response
from voicex.web.presenters import public_provider

routes = web.RouteTableDef()

SettingValue = str | int | float | bool | None
Credential = Annotated[str, Field(max_length=4096)]


# --- request and response shapes -----------------------------------------------------------------


class ModelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    modelId: str = Field(min_length=1, max_length=200, description="for TTS, a voice (e.g. an ElevenLabs voice id)")
    label: str | None = Field(None, max_length=200, description="defaults to modelId")
    language: Language | None = Field(None, description="what a TTS voice speaks (BCP 47)")


ProviderName = NonBlank[Annotated[str, Field(min_length=1, max_length=120)]]


class ProviderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: Category
    providerKey: str = Field(min_length=1, max_length=64, description="a providerKey from the registry")
    name: ProviderName = Field(description="unique in the organization")
    credentials: dict[str, Credential] = Field(default_factory=dict, description="write-only; stored encrypted")
    models: list[ModelIn] | None = Field(None, min_length=1, max_length=200, description="default: the catalog's")
    settings: dict[str, SettingValue] = Field(default_factory=dict)


class ProviderPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ProviderName | None = None
    active: bool | None = None
    credentials: dict[str, Credential] | None = Field(None, description="write-only; replaces the stored ones")
    models: list[ModelIn] | None = Field(None, min_length=1, max_length=200)
    settings: dict[str, SettingValue] | None = Field(None, description="merged into the current settings")


class ProviderModelOut(Out):
    modelId: str
    label: str
    language: str | None = Field(None, description="TTS voices: the language the voice speaks (BCP 47)")


class ProviderOut(Out):
    id: str = Field(alias="_id")
    category: Category
    providerKey: str
    name: str
    source: Literal["global", "client"]
    models: list[ProviderModelOut]
    settings: dict[str, SettingValue]
    active: bool
    credentialsSet: bool
    createdAt: str | None
    updatedAt: str | None


class AgentRefOut(Out):
    id: str = Field(alias="_id")
    name: str


class ProviderInUseOut(ErrorOut):
    agents: list[AgentRefOut]


# --- helpers ---------------------------------------------------------------------------------------


def _provider_type(catalog: Catalog, key: str, category: str) -> ProviderType:
    provider_type = catalog.provider_types.get(key)
    if provider_type is None:
        raise bad_request(f"providerKey: unknown provider {key!r} (see /api/dashboard/providers/registry)")
    if category not in provider_type.categories:
        supported = ", ".join(provider_type.categories)
        raise bad_request(f"category: {key} does not provide {category!r} (it provides: {supported})")
    return provider_type


def _reject_unknown(field: str, given: dict[str, Any], known: set[str], provider_key: str) -> None:
    for key in given:
        if key not in known:
            expected = ", ".join(sorted(known)) or "none"
            raise bad_request(f"{field}.{key}: not one of {provider_key}'s {field} (expected: {expected})")


def _check_credentials(provider_type: ProviderType, credentials: dict[str, str]) -> None:
    for field in provider_type.credentials:
        if not credentials.get(field.key, "").strip():
            raise bad_request(f"credentials.{field.key}: required")
    _reject_unknown("credentials", credentials, {c.key for c in provider_type.credentials}, provider_type.key)


def _check_base_url(svc: Services, settings: dict[str, SettingValue]) -> None:
    """An org's ``baseUrl`` is where the server will connect for it: refuse early what the policy never allows."""
    url = settings.get("baseUrl")
    if url is None:
        return
    if not isinstance(url, str):
        raise bad_request("settings.baseUrl: must be a URL string")
    problem = egress_policy(svc.settings).precheck(url)
    if problem is not None:
        raise bad_request(f"settings.baseUrl: {problem}")


def _models(models: list[ModelIn], category: str) -> list[ModelDoc]:
    """The stored model list; a TTS model is a voice, which adapters may put into a URL path."""
    seen: set[str] = set()
    out: list[ModelDoc] = []
    for index, model in enumerate(models):
        if model.modelId in seen:
            raise bad_request(f"models.{index}.modelId: duplicate {model.modelId!r}")
        if category == "tts" and not is_path_segment(model.modelId):
            raise bad_request(
                f"models.{index}.modelId: a voice id may hold only letters, digits and . _ ~ - (got {model.modelId!r})"
            )
        seen.add(model.modelId)
        entry: ModelDoc = {"modelId": model.modelId, "label": model.label or model.modelId}
        if model.language is not None:
            entry["language"] = model.language
        out.append(entry)
    return out


def _encrypt(svc: Services, credentials: dict[str, str]) -> str | None:
    return svc.box.encrypt(credentials) if credentials else None


async def visible_provider(svc: Services, org_id: ObjectId, id: str) -> ProviderDoc:
    """A global provider or one of the org's own; anything else (another org's included) is a 404."""
    provider = await get_visible_provider(svc.db, org_id, path_id(id, "provider"))
    if provider is None:
        raise not_found("provider")
    return provider


async def _own(svc: Services, org_id: ObjectId, id: str) -> ProviderDoc:
    provider = await visible_provider(svc, org_id, id)
    if provider.get("orgId") is None:
        raise forbidden("global providers are read-only")
    return provider


async def _name_free(svc: Services, org_id: ObjectId, name: str, except_id: ObjectId | None = None) -> None:
    if await name_taken(svc.db, org_id, name, except_id):
        raise conflict(f"a provider named {name!r} already exists")


# --- handlers --------------------------------------------------------------------------------------


@routes.get("/api/dashboard/providers", allow_head=False)
@endpoint
async def list_providers(
    request: web.Request, client: bool = False, category: Category | None = None
) -> r200[list[ProviderOut]] | r400[ErrorOut] | r401[ErrorOut] | r403[ErrorOut]:
    """The global providers and the organization's own (``client=true``: only its own), globals first.

    Tags: providers
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The providers, without credentials
        400: Unknown category
    """
    svc = services(request)
    org_id = auth(request).org_id
    found = await list_visible_providers(svc.db, org_id, own_only=client, category=category)
    return json_response([public_provider(p, svc.catalog, svc.settings) for p in found])


@routes.get("/api/dashboard/providers/{id}", allow_head=False)
@endpoint
async def get_provider(
    request: web.Request, id: str, /
) -> r200[ProviderOut] | r401[ErrorOut] | r403[ErrorOut] | r404[ErrorOut]:
    """One global provider or one of the organization's own.

    Tags: providers
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The provider, without credentials
        404: No such provider in this organization
    """
    svc = services(request)
    provider = await visible_provider(svc, auth(request).org_id, id)
    return json_response(public_provider(provider, svc.catalog, svc.settings))


@routes.post("/api/dashboard/providers")
@endpoint
async def create_provider(
    request: web.Request, body: ProviderIn
) -> r201[ProviderOut] | r400[ErrorOut] | r401[ErrorOut] | r403[ErrorOut] | r409[ErrorOut]:
    """Add a provider with the organization's own credentials (plans with custom providers only).

    Tags: providers
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        201: The new provider, without credentials
        400: Unknown provider type, unsupported category, or a missing credential
        403: The plan does not allow (more) custom providers
        409: A provider with this name exists
    """
    svc = services(request)
    context = auth(request)
    org_id = context.org_id
    assert context.plan is not None
    features = context.plan.features
    if not features.customProviders:
        raise forbidden("your plan does not allow custom providers")
    provider_type = _provider_type(svc.catalog, body.providerKey, body.category)
    _check_credentials(provider_type, body.credentials)
    known = {x.key for x in provider_type.settings_for(body.category)}
    _reject_unknown("settings", body.settings, known, provider_type.key)
    _check_base_url(svc, body.settings)
    if body.models is not None:
        models = _models(body.models, body.category)
    else:
        models = catalog_models(provider_type, body.category)
    await _name_free(svc, org_id, body.name)
    if not await quotas.claim(svc.db, org_id, quotas.CUSTOM_PROVIDERS, features.maxCustomProviders):
        raise forbidden(f"your plan allows at most {features.maxCustomProviders} custom providers")
    now = dt.datetime.now(dt.UTC)
    provider: ProviderDoc = {
        "orgId": org_id,
        "category": body.category,
        "providerKey": provider_type.key,
        "name": body.name,
        "credentials": _encrypt(svc, body.credentials),
        "models": models,
        "settings": {**provider_type.setting_defaults(body.category), **body.settings},
        "active": True,
        "schemaVersion": SCHEMA_VERSION,
        "createdAt": now,
        "updatedAt": now,
    }
    try:
        await insert_provider(svc.db, provider)
    except BaseException as exc:
        await quotas.release(svc.db, org_id, quotas.CUSTOM_PROVIDERS)
        if isinstance(exc, DuplicateKeyError):
            raise conflict(f"a provider named {body.name!r} already exists") from None
        raise
    return json_response(public_provider(provider, svc.catalog, svc.settings), status=201)


@routes.patch("/api/dashboard/providers/{id}")
@endpoint
async def patch_provider(
    request: web.Request, id: str, /, body: ProviderPatch
) -> r200[ProviderOut] | r400[ErrorOut] | r401[ErrorOut] | r403[ErrorOut] | r404[ErrorOut] | r409[ErrorOut]:
    """Rename, (de)activate, or replace the credentials, models or settings of one of the org's providers.

    Tags: providers
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The updated provider, without credentials
        400: A field is invalid or nothing to update
        403: Global providers are read-only
        404: No such provider in this organization
        409: A provider with this name exists
    """
    svc = services(request)
    org_id = auth(request).org_id
    provider = await _own(svc, org_id, id)
    if not body.model_dump(exclude_none=True):
        raise bad_request("nothing to update: send name, active, credentials, models and/or settings")
    provider_type = _provider_type(svc.catalog, provider["providerKey"], provider["category"])
    update: ProviderDoc = {}
    if body.name is not None and body.name != provider["name"]:
        await _name_free(svc, org_id, body.name, except_id=provider["_id"])
        update["name"] = body.name
    if body.active is not None:
        update["active"] = body.active
    if body.credentials is not None:
        _check_credentials(provider_type, body.credentials)
        update["credentials"] = _encrypt(svc, body.credentials)
    if body.models is not None:
        update["models"] = _models(body.models, provider["category"])
    if body.settings is not None:
        known = {x.key for x in provider_type.settings_for(provider["category"])}
        _reject_unknown("settings", body.settings, known, provider_type.key)
        _check_base_url(svc, body.settings)
        update["settings"] = {**(provider.get("settings") or {}), **body.settings}
    update["updatedAt"] = dt.datetime.now(dt.UTC)
    try:
        await update_own_provider(svc.db, org_id, provider["_id"], update)
    except DuplicateKeyError:
        raise conflict(f"a provider named {body.name!r} already exists") from None
    provider.update(update)
    return json_response(public_provider(provider, svc.catalog, svc.settings))


@routes.delete("/api/dashboard/providers/{id}")
@endpoint
async def delete_provider(
    request: web.Request, id: str, /
) -> r200[Deleted] | r401[ErrorOut] | r403[ErrorOut] | r404[ErrorOut] | r409[ProviderInUseOut]:
    """Delete one of the organization's providers, unless an agent still uses it.

    Tags: providers
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: Deleted
        403: Global providers are read-only
        404: No such provider in this organization
        409: Agents use the provider; the body lists them
    """
    svc = services(request)
    org_id = auth(request).org_id
    provider = await _own(svc, org_id, id)
    ids = [provider["_id"], str(provider["_id"])]  # tolerate agents that stored the id as a string
    users = await list_agents_using(svc.db, org_id, ids)
    if users:
        agents = [{"_id": agent["_id"], "name": agent.get("name", "")} for agent in users]
        raise conflict("provider is used by agents", agents=agents)
    if await delete_own_provider(svc.db, org_id, provider["_id"]):
        await quotas.release(svc.db, org_id, quotas.CUSTOM_PROVIDERS)
    return json_response({"deleted": True})
