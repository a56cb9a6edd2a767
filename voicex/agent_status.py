"""Whether an agent can take calls right now, and if not, why: one rule for the dashboard and call admission.

An agent is stored valid, but the world moves under it: its org is suspended, the month's minutes run out,
a provider is deactivated or deleted, the org moves to a plan without its model. :func:`compute_status` is
pure so the telephony layer and the API agree; :func:`load_statuses` feeds it for many agents at once with
one providers query and one minutes query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from bson import ObjectId

from voicex.catalog import CATEGORIES, Catalog, Plan
from voicex.db import Database, Document
from voicex.usage import minutes_used_this_month

Status = Literal["active", "paused"]
StatusResult = tuple[Status, str | None]


def plan_of(org: Document, catalog: Catalog) -> Plan:
    """The org's plan; an unknown slug (a plan removed from the YAML) falls back to the default plan."""
    return catalog.plan_for(org.get("planSlug"))


def compute_status(
    agent: Document,
    org: Document,
    plan: Plan,
    providers_by_id: dict[ObjectId, Document],
    minutes_used: float,
    catalog: Catalog,
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
    for slot in CATEGORIES:
        label = slot.upper()
        provider = providers_by_id.get(agent.get(f"{slot}ProviderId"))
        if provider is None or provider.get("orgId") not in (None, org.get("_id")):
            return "paused", f"{label} provider deleted"
        if not provider.get("active", True):
            return "paused", f"{label} provider inactive"
        model_id = agent.get(f"{slot}ModelId")
        if model_id not in {model.get("modelId") for model in provider.get("models") or []}:
            return "paused", f"{label} model {model_id} no longer offered by its provider"
        ref = f"{provider.get('providerKey')}/{model_id}"
        if provider.get("orgId") is None and ref not in allowed[slot]:
            return "paused", f"plan no longer allows model {ref}"
    return "active", None


async def load_providers(db: Database, org_id: ObjectId, agents: Sequence[Document]) -> dict[ObjectId, Document]:
    """Every provider the agents reference that the org may use, in one query."""
    ids = {agent.get(f"{slot}ProviderId") for agent in agents for slot in CATEGORIES} - {None}
    if not ids:
        return {}
    cursor = db.providers.find({"_id": {"$in": list(ids)}, "orgId": {"$in": [None, org_id]}}, {"credentials": 0})
    return {provider["_id"]: provider async for provider in cursor}


async def load_statuses(
    db: Database,
    catalog: Catalog,
    org: Document,
    agents: Sequence[Document],
    providers_by_id: dict[ObjectId, Document] | None = None,
) -> list[StatusResult]:
    """The status of each agent of ``org``, in order: one providers query (unless given), one minutes query."""
    if not agents:
        return []
    if providers_by_id is None:
        providers_by_id = await load_providers(db, org["_id"], agents)
    minutes = await minutes_used_this_month(db, org["_id"])
    plan = plan_of(org, catalog)
    return [compute_status(agent, org, plan, providers_by_id, minutes, catalog) for agent in agents]


async def load_status(db: Database, catalog: Catalog, org: Document, agent: Document) -> StatusResult:
    """The status of one agent (call admission uses this)."""
    return (await load_statuses(db, catalog, org, [agent]))[0]
