"""What makes an agent valid: the checks that need the catalog, the plan and the providers.

Create and PATCH share one path: a PATCH is merged into the stored agent (nested objects key by key) and the
result is validated exactly like a new agent, so no sequence of PATCHes can reach a state a create refuses.
Shapes and fixed ranges live in the pydantic models (voicex/agents/schemas.py); turn-taking ranges come from
config/turn_taking.yaml; plan limits and model gating from the catalog. Everything here is pure except
:func:`build_agent`, which reads the referenced providers (one query) and the org's other agents' numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson import ObjectId
from pydantic import BaseModel, ValidationError

from voicex.agents.migration import SCHEMA_VERSION
from voicex.agents.schemas import (
    AGENT_KNOBS,
    AgentIn,
    AgentLlmConfig,
    AgentPersona,
    AgentThresholds,
    AgentTtsConfig,
)
from voicex.catalog.config import CATEGORIES, Catalog, Category, Knob, Plan
from voicex.platform.errors import ApiError, bad_request, conflict, describe_validation_error, forbidden
from voicex.platform.ids import body_id
from voicex.store.agents import AgentDoc, FallbackRef, number_holder
from voicex.store.db import Database
from voicex.store.providers import ProviderDoc, visible_providers_by_id

# --- merging ----------------------------------------------------------------------------------------

_NESTED: dict[str, type[BaseModel]] = {
    "persona": AgentPersona,
    "llmConfig": AgentLlmConfig,
    "ttsConfig": AgentTtsConfig,
    "thresholds": AgentThresholds,
}


def stored_as_input(agent: AgentDoc) -> dict[str, Any]:
    """A stored agent in request form (ids as strings, only the fields a client may send)."""
    stored: Mapping[str, Any] = agent  # read field by field, by name
    data: dict[str, Any] = {}
    for field in AgentIn.model_fields:
        if field not in stored:
            continue
        value = stored[field]
        if isinstance(value, ObjectId):
            value = str(value)
        elif field == "fallbacks" and isinstance(value, dict):
            value = {
                slot: [{"providerId": str(ref["providerId"]), "modelId": ref.get("modelId")} for ref in refs]
                for slot, refs in value.items()
            }
        elif field in _NESTED and isinstance(value, dict):
            value = {key: item for key, item in value.items() if key in _NESTED[field].model_fields}
        data[field] = value
    return data


def merge_patch(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``current`` with ``patch`` applied: nested objects merge key by key, a null removes the key (→ default).

    Changing ``sttProviderId`` without naming ``sttModelId`` drops the old model, so the new provider's
    first model is used instead of one it probably does not offer.
    """
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif key in _NESTED and isinstance(value, dict):
            merged[key] = merge_patch(merged.get(key) or {}, value)
        else:
            merged[key] = value
    if (
        "sttProviderId" in patch
        and "sttModelId" not in patch
        and patch["sttProviderId"] != current.get("sttProviderId")
    ):
        merged.pop("sttModelId", None)
    return merged


def parse_agent(data: dict[str, Any]) -> AgentIn:
    """Validate a merged agent; a 400 naming the first bad field (same wording as a bad request body)."""
    try:
        return AgentIn.model_validate(data)
    except ValidationError as exc:
        raise bad_request(describe_validation_error(exc)) from None


# --- checks that need the catalog, the plan and the providers ---------------------------------------


def provider_ids(agent: AgentIn) -> dict[Category, ObjectId]:
    """The three provider ids as ObjectIds; a malformed one is a 400 naming its field."""
    return {slot: body_id(getattr(agent, f"{slot}ProviderId"), f"{slot}ProviderId") for slot in CATEGORIES}


def cheapest_plan_allowing(ref: str, category: Category, catalog: Catalog) -> Plan | None:
    """The lowest-tier plan whose models include ``ref`` ("providerKey/modelId"), if any plan does."""
    for plan in sorted(catalog.plans.values(), key=lambda plan: plan.tier):
        if ref in catalog.plan_models(plan)[category]:
            return plan
    return None


def check_model_allowed(provider: ProviderDoc, model_id: str, slot: Category, plan: Plan, catalog: Catalog) -> None:
    """Global providers' models are gated by plan (403 naming the cheapest plan that has it); own ones are not."""
    if provider.get("orgId") is not None:
        return
    ref = f"{provider['providerKey']}/{model_id}"
    if ref in catalog.plan_models(plan)[slot]:
        return
    needed = cheapest_plan_allowing(ref, slot, catalog)
    if needed is None:
        raise forbidden(f"{slot}ModelId: model {ref} is not available on any plan")
    raise forbidden(
        f"{slot}ModelId: model {ref} needs the {needed.name} plan (this organization is on {plan.name})",
        requiredPlan=needed.slug,
    )


def check_slot(
    slot: Category, agent: AgentIn, provider: ProviderDoc | None, org_id: ObjectId, plan: Plan, catalog: Catalog
) -> str:
    """Check one provider slot (llm/tts/stt) and return the model id to store."""
    model_id = getattr(agent, f"{slot}ModelId")
    return check_provider_model(slot, f"{slot}ProviderId", f"{slot}ModelId", provider, model_id, org_id, plan, catalog)


def check_provider_model(
    slot: Category,
    provider_field: str,
    model_field: str,
    provider: ProviderDoc | None,
    model_id: str | None,
    org_id: ObjectId,
    plan: Plan,
    catalog: Catalog,
) -> str:
    """A provider of the right category the org may use, offering the model the plan allows; the model id."""
    if provider is None or provider.get("orgId") not in (None, org_id):
        raise bad_request(f"{provider_field}: provider not found")
    if provider.get("category") != slot:
        raise bad_request(
            f"{provider_field}: provider '{provider.get('name')}' is a {provider.get('category')} provider, not {slot}"
        )
    offered = [model["modelId"] for model in provider.get("models") or []]
    if model_id is None:
        if not offered:
            raise bad_request(f"{model_field}: provider '{provider.get('name')}' offers no models")
        model_id = offered[0]
    if model_id not in offered:
        raise bad_request(f"{model_field}: provider '{provider.get('name')}' has no model '{model_id}'")
    try:
        check_model_allowed(provider, model_id, slot, plan, catalog)
    except ApiError as exc:
        exc.message = exc.message.replace(f"{slot}ModelId:", f"{model_field}:", 1)
        raise
    return str(model_id)


def check_synthesis_model(agent: AgentIn, provider: ProviderDoc, catalog: Catalog) -> None:
    """``ttsConfig.model`` must be a synthesis model the TTS provider has; a global one offers its listed choices."""
    wanted = agent.ttsConfig.model
    if wanted is None:
        return
    provider_type = catalog.provider_types.get(provider.get("providerKey", ""))
    settings = provider_type.settings_for("tts") if provider_type is not None else ()
    setting = next((s for s in settings if s.key == "ttsModel"), None)
    if setting is None:
        raise bad_request(f"ttsConfig.model: provider '{provider.get('name')}' has no synthesis model to choose")
    if provider.get("orgId") is None and setting.choices is not None and wanted not in setting.choices:
        raise bad_request(f"ttsConfig.model: must be one of {', '.join(setting.choices)}")


def fallback_ids(agent: AgentIn) -> dict[Category, list[ObjectId]]:
    return {
        slot: [
            body_id(ref.providerId, f"fallbacks.{slot}[{i}].providerId")
            for i, ref in enumerate(getattr(agent.fallbacks, slot))
        ]
        for slot in CATEGORIES
    }


def check_fallbacks(
    agent: AgentIn, providers: dict[ObjectId, ProviderDoc], org_id: ObjectId, plan: Plan, catalog: Catalog
) -> dict[str, list[FallbackRef]]:
    ids = fallback_ids(agent)
    stored: dict[str, list[FallbackRef]] = {}
    for slot in CATEGORIES:
        stored[slot] = []
        for index, (ref, provider_id) in enumerate(zip(getattr(agent.fallbacks, slot), ids[slot], strict=True)):
            prefix = f"fallbacks.{slot}[{index}]"
            model = check_provider_model(
                slot,
                f"{prefix}.providerId",
                f"{prefix}.modelId",
                providers.get(provider_id),
                ref.modelId,
                org_id,
                plan,
                catalog,
            )
            stored[slot].append({"providerId": provider_id, "modelId": model})
    return stored


def _check_knob(name: str, knob: Knob, value: int | float | str) -> None:
    field = f"thresholds.{name}"
    if knob.choices is not None:
        if value not in knob.choices:
            raise bad_request(f"{field}: must be one of {', '.join(knob.choices)}")
        return
    if (
        isinstance(value, str)
        or (knob.min is not None and value < knob.min)
        or (knob.max is not None and value > knob.max)
    ):
        raise bad_request(f"{field}: must be between {knob.min:g} and {knob.max:g}")


def resolve_thresholds(given: AgentThresholds, plan: Plan, catalog: Catalog) -> dict[str, Any]:
    """Every agent knob: the given value (range-checked against the YAML) or the YAML default.

    The default ``maxCallDurationSec`` is lowered to the plan's limit, so an agent created without thresholds
    is always valid on its plan; an explicit value above the limit is a 403 naming the plan.
    """
    knobs = catalog.turn_taking.knobs
    limit = plan.limits.maxCallDurationSec
    resolved: dict[str, Any] = {}
    for name in AGENT_KNOBS:
        knob = knobs.get(name)
        if knob is None:  # not in the YAML: the engine does not know it, so there is nothing to store
            continue
        value = getattr(given, name)
        if value is None:
            value = knob.default
            if name == "maxCallDurationSec" and isinstance(value, int | float):
                value = min(value, limit)
        else:
            _check_knob(name, knob, value)
            if name == "maxCallDurationSec" and isinstance(value, int | float) and value > limit:
                raise forbidden(
                    f"thresholds.maxCallDurationSec: {value:g} s exceeds the {plan.name} plan's limit of {limit} s",
                    limit=limit,
                )
        resolved[name] = value
    return resolved


def agent_fields(
    agent: AgentIn, providers: dict[ObjectId, ProviderDoc], org_id: ObjectId, plan: Plan, catalog: Catalog
) -> AgentDoc:
    """The stored form of a valid agent (pure); raises the 400/403 ApiError of the first problem."""
    ids = provider_ids(agent)
    models = {slot: check_slot(slot, agent, providers.get(ids[slot]), org_id, plan, catalog) for slot in CATEGORIES}
    check_synthesis_model(agent, providers[ids["tts"]], catalog)
    return {
        "name": agent.name,
        "persona": agent.persona.model_dump(),
        "llmProviderId": ids["llm"],
        "llmModelId": models["llm"],
        "llmConfig": agent.llmConfig.model_dump(),
        "ttsProviderId": ids["tts"],
        "ttsModelId": models["tts"],
        "ttsConfig": agent.ttsConfig.model_dump(exclude_none=True),
        "sttProviderId": ids["stt"],
        "sttModelId": models["stt"],
        "thresholds": resolve_thresholds(agent.thresholds, plan, catalog),
        "openingMode": agent.openingMode,
        "phoneNumbers": list(agent.phoneNumbers),
        "active": agent.active,
        "fallbacks": check_fallbacks(agent, providers, org_id, plan, catalog),
        "schemaVersion": SCHEMA_VERSION,  # the field meanings of voicex/agents/migration.py's version 2
    }


async def build_agent(
    db: Database, catalog: Catalog, org_id: ObjectId, plan: Plan, agent: AgentIn, agent_id: ObjectId | None = None
) -> tuple[AgentDoc, dict[ObjectId, ProviderDoc]]:
    """Validate ``agent`` against its providers and the org's other agents; the stored fields and providers.

    A phone number may route to one agent per org only (409). Two simultaneous writes claiming the same
    number can both pass this check; the unique index ``phone_org_unique`` then refuses the second.
    """
    ids = provider_ids(agent)
    wanted = set(ids.values()) | {i for chain in fallback_ids(agent).values() for i in chain}
    providers = await visible_providers_by_id(db, org_id, wanted)
    fields = agent_fields(agent, providers, org_id, plan, catalog)
    if fields["phoneNumbers"]:
        other = await number_holder(db, org_id, fields["phoneNumbers"], agent_id)
        if other is not None:
            taken = next(number for number in fields["phoneNumbers"] if number in other.get("phoneNumbers", []))
            raise conflict(
                f"phoneNumbers: {taken} is already used by agent '{other.get('name')}'", agentId=str(other["_id"])
            )
    return fields, providers
