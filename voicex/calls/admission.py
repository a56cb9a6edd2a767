"""Whether a call may start: org active, agent active, minutes left, and a concurrent-call slot.

Refusals carry a short sentence the caller hears before the hang-up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from bson import ObjectId

from voicex.calls.status import load_status, plan_of
from voicex.platform.services import Services
from voicex.store.agents import AgentDoc
from voicex.store.organizations import Organization
from voicex.store.slots import claim_slot

_SPOKEN = {
    "organization not active": "This service is not active yet. Goodbye.",
    "monthly minutes exhausted": "This line has used all of its minutes for this month. Goodbye.",
    "busy": "All of our lines are busy right now. Please call again later. Goodbye.",
}
UNAVAILABLE = "Sorry, this agent is not available right now. Goodbye."


@dataclass(frozen=True)
class Refusal:
    reason: str

    @property
    def spoken(self) -> str:
        return _SPOKEN.get(self.reason, UNAVAILABLE)


async def admit(services: Services, org: Organization, agent: AgentDoc, call_id: ObjectId) -> Refusal | None:
    """None when admitted (a slot is now held for ``call_id``); otherwise why not."""
    if org.get("status") != "active":
        return Refusal("organization not active")
    status, reason = await load_status(services, org, agent)
    if status != "active":
        return Refusal(reason or "agent paused")
    plan = plan_of(org, services.catalog)
    now = dt.datetime.now(dt.UTC)
    if not await claim_slot(services.db, org["_id"], plan.limits.maxConcurrentCalls, call_id, now):
        return Refusal("busy")
    return None
