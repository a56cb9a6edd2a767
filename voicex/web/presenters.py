"""What of each stored document may leave the server. Secrets (password hashes, API key hashes,
encrypted credentials, Twilio tokens) are dropped here and nowhere else, so no handler can leak them."""

from __future__ import annotations

from typing import Any

from voicex.catalog.config import Catalog, Plan
from voicex.catalog.global_providers import credentials_set
from voicex.platform.settings import Settings
from voicex.store.agents import AgentDoc
from voicex.store.api_keys import ApiKey
from voicex.store.calls import CallDoc
from voicex.store.organizations import Organization
from voicex.store.providers import ProviderDoc
from voicex.store.users import User


def public_user(user: User) -> dict[str, Any]:
    return {
        "_id": user["_id"],
        "email": user["email"],
        "name": user.get("name", ""),
        "role": user.get("role", "member"),
        "orgId": user.get("orgId"),
        "platformAdmin": bool(user.get("platformAdmin")),
        "createdAt": user.get("createdAt"),
    }


def public_plan(plan: Plan, catalog: Catalog, include_models: bool) -> dict[str, Any]:
    data = plan.model_dump(exclude={"extraModels", "tier"})
    if include_models:
        data["models"] = catalog.plan_models(plan)
    return data


def public_org(org: Organization, catalog: Catalog) -> dict[str, Any]:
    plan = catalog.plan_for(org.get("planSlug"))
    twilio = org.get("twilio")
    return {
        "_id": org["_id"],
        "name": org["name"],
        "status": org.get("status", "pending"),
        "planSlug": plan.slug,
        "planName": plan.name,
        "limits": plan.limits.model_dump(),
        "twilio": {
            "accountSid": twilio.get("accountSid") if twilio else None,
            "authTokenSet": bool(twilio and twilio.get("authToken")),
        },
        "createdAt": org.get("createdAt"),
        "updatedAt": org.get("updatedAt"),
    }


def public_api_key(key: ApiKey) -> dict[str, Any]:
    """An API key as the dashboard lists it: never its hash (the raw key is shown once, at creation)."""
    return {
        "_id": key["_id"],
        "name": key.get("name", ""),
        "keyPrefix": key.get("keyPrefix", ""),
        "createdAt": key.get("createdAt"),
        "lastUsedAt": key.get("lastUsedAt"),
    }


_CALL_SUMMARY_FIELDS = (
    "agentId",
    "callSid",
    "from",
    "to",
    "direction",
    "status",
    "startedAt",
    "endedAt",
    "durationSec",
    "endReason",
    "sentiment",
)
_CALL_DETAIL_FIELDS = ("transcript", "summary", "metrics", "turns", "usage", "errors")


def public_call_summary(call: CallDoc) -> dict[str, Any]:
    """A call in a list: who, when, how long and how it ended, without the (large) transcript."""
    return {"_id": call["_id"], **{name: call.get(name) for name in _CALL_SUMMARY_FIELDS}}


def public_call(call: CallDoc) -> dict[str, Any]:
    """A call in full: the summary plus transcript, summary text, metrics and usage (no lease bookkeeping)."""
    data = public_call_summary(call)
    data.update({name: call.get(name) for name in _CALL_DETAIL_FIELDS})
    data["transcript"] = data["transcript"] or []
    data["turns"] = data["turns"] or []
    data["errors"] = data["errors"] or []
    return data


def public_provider(provider: ProviderDoc, catalog: Catalog, settings: Settings) -> dict[str, Any]:
    """A provider without its credentials: only whether they are set (env vars for globals)."""
    return {
        "_id": provider["_id"],
        "category": provider["category"],
        "providerKey": provider["providerKey"],
        "name": provider["name"],
        "source": "global" if provider.get("orgId") is None else "client",
        "models": [
            {"modelId": m["modelId"], "label": m.get("label", m["modelId"]), "language": m.get("language")}
            for m in provider.get("models", [])
        ],
        "settings": provider.get("settings") or {},
        "active": bool(provider.get("active", True)),
        "credentialsSet": credentials_set(provider, catalog, settings),
        "createdAt": provider.get("createdAt"),
        "updatedAt": provider.get("updatedAt"),
    }


_AGENT_FIELDS = (
    "name",
    "persona",
    "llmProviderId",
    "llmModelId",
    "llmConfig",
    "ttsProviderId",
    "ttsModelId",
    "ttsConfig",
    "sttProviderId",
    "sttModelId",
    "thresholds",
    "openingMode",
    "phoneNumbers",
    "active",
    "createdAt",
    "updatedAt",
)


def public_agent(agent: AgentDoc, status: str, pause_reason: str | None) -> dict[str, Any]:
    """An agent with its server-computed status (see voicex/calls/status.py); agents hold no secrets."""
    data = {"_id": agent["_id"], **{name: agent.get(name) for name in _AGENT_FIELDS}}
    data["fallbacks"] = agent.get("fallbacks") or {"llm": [], "tts": [], "stt": []}
    data["status"] = status
    data["pauseReason"] = pause_reason
    return data
