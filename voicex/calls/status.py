"""Whether an agent can take calls right now, and if not, why: one rule for the dashboard and call admission.

An agent is stored valid, but the world moves under it: its org is suspended, the month's minutes run out,
a provider is deactivated or deleted or has no credentials (a global one whose key the server was started
without), the org moves to a plan without its model. :func:`compute_status` is
pure so the telephony layer and the API agree; :func:`load_statuses` feeds it for many agents at once with
one providers query and one minutes query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from bson import ObjectId

from voicex.catalog.config import CATEGORIES, Catalog, CredentialField, Plan
from voicex.catalog.global_providers import global_credentials
from voicex.platform.services import Services
from voicex.platform.settings import Settings
from voicex.store.agents import AgentDoc
from voicex.store.organizations import Organization
from voicex.store.providers import ProviderDoc, visible_providers_by_id
from voicex.store.usage import minutes_used_this_month

Status = Literal["active", "paused"]
StatusResult = tuple[Status, str | None]


def plan_of(org: Organization, catalog: Catalog) -> Plan:
    """The org's plan; an unknown slug (a plan removed from the YAML) falls back to the default plan."""
    return catalog.plan_for(org.get("planSlug"))


def missing_credential(provider: ProviderDoc, catalog: Catalog, settings: Settings) -> CredentialField | None:
    """The first credential the provider cannot authenticate without: an unset env var for a global provider,
    nothing stored for an org's own. None when it has all it needs (or needs none)."""
    provider_type = catalog.provider_types.get(provider.get("providerKey", ""))
    if provider_type is None or not provider_type.credentials:
        return None
    if provider.get("orgId") is None:
        if global_credentials(provider_type, settings) is not None:
            return None
        return next(c for c in provider_type.credentials if not (c.env and getattr(settings, c.env.lower(), None)))
    return None if provider.get("credentials") else provider_type.credentials[0]


def _credentials_problem(label: str, provider: ProviderDoc, catalog: Catalog, settings: Settings) -> str | None:
    missing = missing_credential(provider, catalog, settings)
    if missing is None:
        return None
    name = provider.get("name")
    if provider.get("orgId") is None:
        return f"{label} provider '{name}' has no {missing.label}: the server needs {missing.env} set"
    fix = f"add it with PATCH /api/dashboard/providers/{provider['_id']}"
    return f"{label} provider '{name}' has no {missing.label}: {fix}"


def compute_status(
    agent: AgentDoc,
    org: Organization,
    plan: Plan,
    providers_by_id: dict[ObjectId, ProviderDoc],
    minutes_used: float,
    catalog: Catalog,
    settings: Settings,
) -> StatusResult:
    """``("active", None)`` or ``("paused", reason)``; the first reason found, cheapest to fix first.

    ``providers_by_id`` should hold only providers the org may use (global or its own); a missing id reads
    as deleted.
    """
    if not agent.get("active", True):
        return "paused", "agent inactive"
    if org.get("status") != "active":
        return "paused", "organization not active"
    if minutes_used >= plan.limits.maxMonthlyMinutes:
        return "paused", "monthly minutes exhausted"
    allowed = catalog.plan_models(plan)
    slots: Mapping[str, Any] = agent  # its slots' fields, read by name
    for slot in CATEGORIES:
        label = slot.upper()
        provider_id = slots.get(f"{slot}ProviderId")
        provider = providers_by_id.get(provider_id) if provider_id is not None else None
        if provider is None or provider.get("orgId") not in (None, org.get("_id")):
            return "paused", f"{label} provider deleted"
        if not provider.get("active", True):
            return "paused", f"{label} provider inactive"
        problem = _credentials_problem(label, provider, catalog, settings)
        if problem is not None:  # its calls would connect and then stay silent
            return "paused", problem
        model_id = slots.get(f"{slot}ModelId")
        if model_id not in {model.get("modelId") for model in provider.get("models") or []}:
            return "paused", f"{label} model {model_id} no longer offered by its provider"
        ref = f"{provider.get('providerKey')}/{model_id}"
        if provider.get("orgId") is None and ref not in allowed[slot]:
            return "paused", f"plan no longer allows model {ref}"
    return "active", None


async def load_providers(svc: Services, org_id: ObjectId, agents: Sequence[AgentDoc]) -> dict[ObjectId, ProviderDoc]:
    """Every provider the agents reference that the org may use, in one query (credentials stay encrypted)."""
    slots: Sequence[Mapping[str, Any]] = agents  # their slots' fields, read by name
    refs = (agent.get(f"{slot}ProviderId") for agent in slots for slot in CATEGORIES)
    ids: set[ObjectId] = {ref for ref in refs if ref is not None}
    if not ids:
        return {}
    return await visible_providers_by_id(svc.db, org_id, ids)


async def load_statuses(
    svc: Services,
    org: Organization,
    agents: Sequence[AgentDoc],
    providers_by_id: dict[ObjectId, ProviderDoc] | None = None,
) -> list[StatusResult]:
    """The status of each agent of ``org``, in order: one providers query (unless given), one minutes query."""
    if not agents:
        return []
    if providers_by_id is None:
        providers_by_id = await load_providers(svc, org["_id"], agents)
    minutes = await minutes_used_this_month(svc.db, org["_id"])
    plan = plan_of(org, svc.catalog)
    return [compute_status(agent, org, plan, providers_by_id, minutes, svc.catalog, svc.settings) for agent in agents]


async def load_status(svc: Services, org: Organization, agent: AgentDoc) -> StatusResult:
    """The status of one agent (call admission uses this)."""
    return (await load_statuses(svc, org, [agent]))[0]
