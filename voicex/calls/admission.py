"""Whether a call may start: org active, agent active, plan features, minutes left, and a concurrent-call slot.

Refusals carry a short sentence the caller hears before the hang-up. A refusal the org would not otherwise
notice (its plan lost a feature its agent uses) is also recorded as a call (``recorded``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from voicex.calls.status import load_status, plan_of
from voicex.catalog.config import CATEGORIES
from voicex.platform.services import Services
from voicex.store.agents import AgentDoc
from voicex.store.organizations import Organization
from voicex.store.providers import visible_providers_by_id
from voicex.store.slots import claim_slot

_SPOKEN = {
    "organization not active": "This service is not active yet. Goodbye.",
    "monthly minutes exhausted": "This line has used all of its minutes for this month. Goodbye.",
    "busy": "All of our lines are busy right now. Please call again later. Goodbye.",
}
UNAVAILABLE = "Sorry, this agent is not available right now. Goodbye."
NO_CUSTOM_PROVIDERS = "plan no longer allows custom providers"


@dataclass(frozen=True)
class Refusal:
    reason: str
    recorded: bool = False

    @property
    def spoken(self) -> str:
        return _SPOKEN.get(self.reason, UNAVAILABLE)


async def _uses_own_provider(services: Services, org: Organization, agent: AgentDoc) -> bool:
    """Whether a slot or a fallback of the agent names one of the org's own providers."""
    slots: dict[str, Any] = dict(agent)
    ids = {slots.get(f"{slot}ProviderId") for slot in CATEGORIES}
    for chain in (agent.get("fallbacks") or {}).values():
        ids |= {ref.get("providerId") for ref in chain}
    found = await visible_providers_by_id(services.db, org["_id"], {i for i in ids if isinstance(i, ObjectId)})
    return any(provider.get("orgId") is not None for provider in found.values())


async def admit(services: Services, org: Organization, agent: AgentDoc, call_id: ObjectId) -> Refusal | None:
    """None when admitted (a slot is now held for ``call_id``); otherwise why not."""
    if org.get("status") != "active":
        return Refusal("organization not active")
    status, reason = await load_status(services, org, agent)
    if status != "active":
        return Refusal(reason or "agent paused")
    plan = plan_of(org, services.catalog)
    # Checked here, not only when the agent is saved: the org may have moved to a smaller plan since.
    if not plan.features.customProviders and await _uses_own_provider(services, org, agent):
        return Refusal(NO_CUSTOM_PROVIDERS, recorded=True)
    now = dt.datetime.now(dt.UTC)
    if not await claim_slot(services.db, org["_id"], plan.limits.maxConcurrentCalls, call_id, now):
        return Refusal("busy")
    return None
