"""``GET /api/dashboard/providers/registry``: the provider types Voicex supports, from config/providers.yaml.

Registered before ``/api/dashboard/providers/{id}`` so "registry" is never read as an id.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r401, r403
from pydantic import Field

from voicex.api.openapi import ErrorOut, endpoint
from voicex.api.providers import ProviderModelOut, SettingValue
from voicex.api.schemas import Out
from voicex.catalog.config import Category, ProviderType
from voicex.platform.services import services
from voicex.web.http import json_response

routes = web.RouteTableDef()


class FieldOut(Out):
    key: str
    label: str


class SettingOut(FieldOut):
    default: SettingValue
    categories: list[Category] | None = Field(description="the categories the setting applies to; null: all")
    choices: list[str] | None = Field(description="the values agents on a global provider may pick; null: any")


class RegistryModelOut(ProviderModelOut):
    requiredPlan: str = Field(description="the cheapest plan that may use the model on a global provider")


class ProviderTypeOut(Out):
    providerKey: str
    name: str
    categories: list[Category]
    credentials: list[FieldOut]
    settings: list[SettingOut]
    models: dict[Category, list[RegistryModelOut]]


def registry_entry(provider_type: ProviderType) -> dict[str, Any]:
    return {
        "providerKey": provider_type.key,
        "name": provider_type.name,
        "categories": list(provider_type.categories),
        "credentials": [{"key": c.key, "label": c.label} for c in provider_type.credentials],
        "settings": [
            {
                "key": s.key,
                "label": s.label,
                "default": s.default,
                "categories": list(s.categories) if s.categories is not None else None,
                "choices": list(s.choices) if s.choices is not None else None,
            }
            for s in provider_type.settings
        ],
        "models": {
            category: [
                {"modelId": m.id, "label": m.label, "language": m.language, "requiredPlan": m.plan} for m in models
            ]
            for category, models in provider_type.models.items()
        },
    }


@routes.get("/api/dashboard/providers/registry", allow_head=False)
@endpoint
async def get_registry(request: web.Request) -> r200[list[ProviderTypeOut]] | r401[ErrorOut] | r403[ErrorOut]:
    """Every provider type Voicex supports: its categories, credential and setting fields, and models.

    Tags: providers
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The provider types
    """
    catalog = services(request).catalog
    return json_response([registry_entry(p) for p in catalog.providers_file.providers])
