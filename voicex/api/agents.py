"""Voice agents (``/api/dashboard/agents``): CRUD, each agent returned with its server-computed status.

Validation lives in voicex/agents/validation.py, the status rule in voicex/calls/status.py and the maxAgents
counter in voicex/store/quotas.py; this file only wires them to HTTP. Every query is scoped by the caller's
org, so another org's agent is a 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, NoReturn

from aiohttp import web
from aiohttp_pydantic.oas.typing import r200, r201, r400, r401, r403, r404, r409
from bson import ObjectId
from pydantic import Field
from pymongo.errors import DuplicateKeyError

from voicex.agents.schemas import (
    AgentFallbacks,
    AgentIn,
    AgentLlmConfig,
    AgentPatch,
    AgentPersona,
    AgentThresholds,
    AgentTtsConfig,
)
from voicex.agents.validation import build_agent, merge_patch, parse_agent, stored_as_input
from voicex.api.openapi import ErrorOut, endpoint
from voicex.api.schemas import Deleted, Out
from voicex.calls.status import load_status, load_statuses
from voicex.catalog.config import Plan
from voicex.platform.errors import bad_request, conflict, forbidden, not_found
from voicex.platform.ids import path_id
from voicex.platform.services import Services, services
from voicex.store import agents as agent_store
from voicex.store import quotas
from voicex.store.agents import AgentDoc
from voicex.web.auth import auth
from voicex.web.http import json_response
from voicex.web.presenters import public_agent

routes = web.RouteTableDef()


class AgentOut(Out):
    id: str = Field(alias="_id")
    name: str
    persona: AgentPersona
    llmProviderId: str
    llmModelId: str
    llmConfig: AgentLlmConfig
    ttsProviderId: str
    ttsModelId: str
    ttsConfig: AgentTtsConfig
    sttProviderId: str
    sttModelId: str
    thresholds: AgentThresholds
    openingMode: Literal["agent_first", "callee_first"]
    phoneNumbers: list[str]
    active: bool
    fallbacks: AgentFallbacks
    status: Literal["active", "paused"] = Field(description="whether the agent can take calls right now")
    pauseReason: str | None = Field(description="why it cannot, e.g. 'monthly minutes exhausted'; null when active")
    createdAt: str
    updatedAt: str


@routes.get("/api/dashboard/agents", allow_head=False)
@endpoint
async def list_agents(request: web.Request) -> r200[list[AgentOut]] | r401[ErrorOut] | r403[ErrorOut]:
    """All the organization's agents (at most the plan's maxAgents), newest first, each with its status.

    Tags: agents
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The agents
    """
    context = auth(request)
    svc = services(request)
    assert context.org is not None
    agents = await agent_store.list_agents(svc.db, context.org_id)
    statuses = await load_statuses(svc, context.org, agents)
    return json_response([public_agent(agent, *status) for agent, status in zip(agents, statuses, strict=True)])


@routes.post("/api/dashboard/agents")
@endpoint
async def create_agent(
    request: web.Request, body: AgentIn
) -> r201[AgentOut] | r400[ErrorOut] | r401[ErrorOut] | r403[ErrorOut] | r409[ErrorOut]:
    """Create an agent; omitted thresholds take the defaults of config/turn_taking.yaml.

    Tags: agents
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        201: The new agent
        400: A field is invalid, or a provider or model does not exist
        403: The plan does not allow this model or call duration, or its maxAgents is reached
        409: A phone number already belongs to another agent of the organization
    """
    context = auth(request)
    svc = services(request)
    assert context.org is not None and context.plan is not None
    plan = context.plan
    fields, providers = await build_agent(svc.db, svc.catalog, context.org_id, plan, body)
    if not await quotas.claim(svc.db, context.org_id, quotas.AGENTS, plan.limits.maxAgents):
        limit = plan.limits.maxAgents
        raise forbidden(f"the {plan.name} plan allows at most {limit} agent{'s' if limit != 1 else ''}", limit=limit)
    now = dt.datetime.now(dt.UTC)
    agent: AgentDoc = {"orgId": context.org_id, **fields, "createdAt": now, "updatedAt": now}
    try:
        await agent_store.insert_agent(svc.db, agent)
    except BaseException as exc:
        await quotas.release(svc.db, context.org_id, quotas.AGENTS)
        if isinstance(exc, DuplicateKeyError):  # another write took one of the numbers after our check
            await _number_taken(svc, context.org_id, plan, body)
        raise
    [status] = await load_statuses(svc, context.org, [agent], providers)
    return json_response(public_agent(agent, *status), status=201)


async def _number_taken(
    svc: Services, org_id: ObjectId, plan: Plan, body: AgentIn, agent_id: ObjectId | None = None
) -> NoReturn:
    """The 409 for a number claimed by a simultaneous write (the unique index caught what the check missed)."""
    await build_agent(svc.db, svc.catalog, org_id, plan, body, agent_id)  # raises naming the agent that won
    raise conflict("phoneNumbers: a number is already used by another agent")


@routes.get("/api/dashboard/agents/{id}", allow_head=False)
@endpoint
async def get_agent(
    request: web.Request, id: str, /
) -> r200[AgentOut] | r401[ErrorOut] | r403[ErrorOut] | r404[ErrorOut]:
    """One agent with its status and pause reason.

    Tags: agents
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The agent
        404: No such agent in this organization
    """
    context = auth(request)
    svc = services(request)
    assert context.org is not None
    agent = await agent_store.get_agent(svc.db, context.org_id, path_id(id, "agent"))
    if agent is None:
        raise not_found("agent")
    return json_response(public_agent(agent, *await load_status(svc, context.org, agent)))


@routes.patch("/api/dashboard/agents/{id}")
@endpoint
async def patch_agent(
    request: web.Request, id: str, /, body: AgentPatch
) -> r200[AgentOut] | r400[ErrorOut] | r401[ErrorOut] | r403[ErrorOut] | r404[ErrorOut] | r409[ErrorOut]:
    """Change any subset of an agent's fields; the merged agent is validated like a new one.

    Objects (persona, llmConfig, ttsConfig, thresholds) merge key by key; null resets a field to its default.
    Changing sttProviderId without sttModelId picks the new provider's first model.

    Tags: agents
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: The updated agent
        400: A field is invalid, or a provider or model does not exist
        403: The plan does not allow this model or call duration
        404: No such agent in this organization
        409: A phone number already belongs to another agent, or the agent changed meanwhile (retry)
    """
    context = auth(request)
    svc = services(request)
    assert context.org is not None and context.plan is not None
    agent_id = path_id(id, "agent")
    stored = await agent_store.get_agent(svc.db, context.org_id, agent_id)
    if stored is None:
        raise not_found("agent")
    patch = body.model_dump(exclude_unset=True)
    if not patch:
        raise bad_request("nothing to update: send at least one field")
    merged = parse_agent(merge_patch(stored_as_input(stored), patch))
    fields, providers = await build_agent(svc.db, svc.catalog, context.org_id, context.plan, merged, agent_id)
    fields["updatedAt"] = dt.datetime.now(dt.UTC)
    # Compare-and-set on updatedAt: a concurrent PATCH must not be silently overwritten by a stale merge.
    try:
        updated = await agent_store.update_agent_if_unchanged(
            svc.db, context.org_id, agent_id, stored.get("updatedAt"), fields
        )
    except DuplicateKeyError:
        await _number_taken(svc, context.org_id, context.plan, merged, agent_id)
        raise
    if not updated:
        if not await agent_store.agent_exists(svc.db, context.org_id, agent_id):
            raise not_found("agent")
        raise conflict("agent was changed by another request; fetch it and try again")
    agent: AgentDoc = {**stored, **fields}
    [status] = await load_statuses(svc, context.org, [agent], providers)
    return json_response(public_agent(agent, *status))


@routes.delete("/api/dashboard/agents/{id}")
@endpoint
async def delete_agent(
    request: web.Request, id: str, /
) -> r200[Deleted] | r401[ErrorOut] | r403[ErrorOut] | r404[ErrorOut]:
    """Delete an agent; its past calls keep their records.

    Tags: agents
    Security: bearerAuth, apiKeyAuth
    Status Codes:
        200: Deleted
        404: No such agent in this organization
    """
    context = auth(request)
    svc = services(request)
    if not await agent_store.delete_agent(svc.db, context.org_id, path_id(id, "agent")):
        raise not_found("agent")
    await quotas.release(svc.db, context.org_id, quotas.AGENTS)
    return json_response({"deleted": True})
