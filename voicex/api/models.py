"""Model search: every model an organization can pick for a category, across global and its own providers.

Global providers' models are gated by plan (``config/providers.yaml`` names the cheapest plan for each);
models of the org's own providers are always allowed, since the org pays the vendor itself.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r400, r401, r403
from pydantic import Field

from voicex.api.openapi import ErrorOut, endpoint
from voicex.api.schemas import Limit, Out, Page, Skip, page
from voicex.catalog.config import Catalog, Category, Plan
from voicex.platform.services import services
from voicex.store.providers import ModelDoc, ProviderDoc, list_active_in_category
from voicex.web.auth import auth
from voicex.web.http import json_response

routes = web.RouteTableDef()


class ModelHitOut(Out):
    providerId: str
    providerKey: str
    providerName: str
    modelId: str
    label: str
    source: Literal["global", "client"]
    allowed: bool
    requiredPlan: str | None = Field(description="the cheapest plan that allows the model; null when allowed")
    language: str | None = Field(description="TTS voices: the language the voice speaks (BCP 47); else null")


class ModelsPage(Page):
    items: list[ModelHitOut]


def model_access(catalog: Catalog, plan: Plan, provider: ProviderDoc, model_id: str) -> tuple[bool, str | None]:
    """``(allowed, requiredPlan)`` for one model of a provider the org can see.

    Also what an agent's model choice must pass: an org's own provider allows any of its models; a global
    one allows what ``catalog.plan_models(plan)`` lists, and otherwise names the catalog's cheapest plan.
    """
    if provider.get("orgId") is not None:
        return True, None
    ref = f"{provider['providerKey']}/{model_id}"
    if ref in catalog.plan_models(plan).get(provider["category"], []):
        return True, None
    provider_type = catalog.provider_types.get(provider["providerKey"])
    models = provider_type.models.get(provider["category"], ()) if provider_type else ()
    return False, next((model.plan for model in models if model.id == model_id), None)


def _matches(needle: str, model: ModelDoc) -> bool:
    return not needle or needle in model["modelId"].casefold() or needle in model.get("label", "").casefold()


@routes.get("/api/dashboard/models/search", allow_head=False)
@endpoint
async def search_models(
    request: web.Request,
    category: Category,
    query: Annotated[str, Field(max_length=200)] = "",
    skip: Skip = 0,
    limit: Limit = 10,
) -> r200[ModelsPage] | r400[ErrorOut] | r401[ErrorOut] | r403[ErrorOut]:
    """Search models of one category by id or label (case-insensitive substring); allowed ones first.

    Tags: providers
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: A page of models, each saying whether the plan allows it and else which plan would
        400: Missing or unknown category, or a bad skip/limit
    """
    svc = services(request)
    context = auth(request)
    assert context.plan is not None
    catalog = svc.catalog
    needle = query.strip().casefold()
    hits: list[dict[str, Any]] = []
    for provider in await list_active_in_category(svc.db, context.org_id, category):
        for model in provider.get("models", []):
            if not _matches(needle, model):
                continue
            allowed, required = model_access(catalog, context.plan, provider, model["modelId"])
            hits.append(
                {
                    "providerId": provider["_id"],
                    "providerKey": provider["providerKey"],
                    "providerName": provider["name"],
                    "modelId": model["modelId"],
                    "label": model.get("label") or model["modelId"],
                    "source": "global" if provider.get("orgId") is None else "client",
                    "allowed": allowed,
                    "requiredPlan": required,
                    "language": model.get("language"),
                }
            )
    tiers = {slug: plan.tier for slug, plan in catalog.plans.items()}
    # Stable sort: allowed first, gated ones from the cheapest upgrade up; provider/catalog order within.
    hits.sort(key=lambda hit: (not hit["allowed"], tiers.get(hit["requiredPlan"], len(tiers))))
    return json_response(page(hits[skip : skip + limit], len(hits), skip, limit))
