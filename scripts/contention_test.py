"""Contention: simultaneous requests for the last units of a plan limit, spread over two server processes.

Two ``voicex serve`` processes share one database. Each round makes fresh organizations and fires, all at once
and alternating between the two servers:

- ``--webhooks`` signed voice webhooks for an org on the starter plan (its maxConcurrentCalls): exactly that many may be
  admitted (TwiML opening a stream); the rest must be refused with Say + Hangup, never an error;
- ``--creates`` agent creations for an org at 0 of its maxAgents, and as many custom-provider creations for
  an org at 0 of its maxCustomProviders: exactly the limit may succeed, the rest must be a 4xx ``{"error"}``;
- ``--creates`` agent creations that all claim the same phone number (on a plan with room for all): exactly
  one may get it, the rest must be 409.

    .venv/bin/python -m scripts.contention_test [--rounds 3] [--webhooks 50] [--creates 20] [--mongodb-uri URI]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from scripts.multiproc import Cluster, ServerProcess, new_call_sid
from voicex.catalog.config import load_catalog

# The plan every race runs on, with its limits from config/plans.yaml (what the servers enforce).
PLAN = load_catalog(Path(__file__).resolve().parents[1] / "config").plans["starter"]


@dataclass
class Race:
    """One burst of simultaneous requests against one limit."""

    name: str
    limit: int
    tried: int = 0
    succeeded: int = 0
    refused: int = 0  # the documented refusal: Say + Hangup, or a 4xx with {"error": "..."}
    refusals: Counter[str] = field(default_factory=Counter)  # "busy TwiML" or the HTTP status
    other: Counter[str] = field(default_factory=Counter)  # anything else: 5xx, bad bodies, errors
    by_server: Counter[int] = field(default_factory=Counter)  # successes per server port
    stored: int = 0  # what the database holds afterwards

    @property
    def exact(self) -> bool:
        return self.succeeded == self.limit == self.stored and self.refused == self.tried - self.limit

    def line(self) -> str:
        split = " + ".join(str(n) for _, n in sorted(self.by_server.items())) or "0"
        other = f"; other {dict(self.other)}" if self.other else ""
        refusals = ", ".join(f"{n} {kind}" for kind, n in self.refusals.most_common())
        return (
            f"{self.name:<26} limit {self.limit:>2}: {self.tried} at once -> {self.succeeded} succeeded ({split} per"
            f" server), {self.refused} refused ({refusals}), stored {self.stored}{other}"
            f"  {'exact' if self.exact else 'WRONG'}"
        )


async def _refusal(response: aiohttp.ClientResponse) -> str | None:
    """None when the response is a 4xx whose body is ``{"error": "<text>"}``; else what it was."""
    try:
        body = await response.json()
    except (aiohttp.ContentTypeError, ValueError):
        body = None
    if 400 <= response.status < 500 and isinstance(body, dict) and isinstance(body.get("error"), str):
        return None
    return f"HTTP {response.status}"


async def _calls(cluster: Cluster, http: aiohttp.ClientSession, servers: list[ServerProcess], n: int) -> Race:
    org = await cluster.make_org(http, servers[0], PLAN.slug)
    async with await cluster.make_agent(http, servers[0], org) as response:
        agent_id = (await response.json())["_id"]
    race = Race("voice webhooks (calls)", limit=PLAN.limits.maxConcurrentCalls, tried=n)
    sids = [new_call_sid() for _ in range(n)]
    picks = [servers[i % len(servers)] for i in range(n)]
    answers = await asyncio.gather(
        *(cluster.voice_webhook(http, s, org, agent_id, sid) for s, sid in zip(picks, sids, strict=True)),
        return_exceptions=True,
    )
    admitted = []
    for server, sid, answer in zip(picks, sids, answers, strict=True):
        if isinstance(answer, BaseException):
            race.other[type(answer).__name__] += 1
        elif answer.stream_url is not None:
            race.succeeded += 1
            race.by_server[server.port] += 1
            admitted.append((server, sid))
        elif answer.hangup and answer.said:
            race.refused += 1
            race.refusals["Say+Hangup"] += 1
        else:
            race.other["TwiML neither stream nor refusal"] += 1
    race.stored = await cluster.db.call_slots.count_documents({"orgId": org.org_id, "callId": {"$ne": None}})
    # Twilio reports each admitted call as ended; every started call must be recorded as finished.
    await asyncio.gather(*(cluster.status_callback(http, s, org, sid) for s, sid in admitted))
    return race


async def _creates(servers: list[ServerProcess], race: Race, post: Any) -> None:
    """Fire ``race.tried`` creations at once, alternating servers, and sort the answers."""
    responses = await asyncio.gather(*(post(servers[i % len(servers)], i) for i in range(race.tried)))
    for i, response in enumerate(responses):
        async with response:
            if 200 <= response.status < 300:
                race.succeeded += 1
                race.by_server[servers[i % len(servers)].port] += 1
            elif (problem := await _refusal(response)) is None:
                race.refused += 1
                race.refusals[f"HTTP {response.status}"] += 1
            else:
                race.other[problem] += 1


async def _agents(cluster: Cluster, http: aiohttp.ClientSession, servers: list[ServerProcess], n: int) -> Race:
    org = await cluster.make_org(http, servers[0], PLAN.slug)
    race = Race("agent creations", limit=PLAN.limits.maxAgents, tried=n)

    async def post(server: ServerProcess, i: int) -> aiohttp.ClientResponse:
        return await cluster.make_agent(http, server, org)

    await _creates(servers, race, post)
    race.stored = await cluster.db.agents.count_documents({"orgId": org.org_id})
    return race


async def _providers(cluster: Cluster, http: aiohttp.ClientSession, servers: list[ServerProcess], n: int) -> Race:
    org = await cluster.make_org(http, servers[0], PLAN.slug)
    race = Race("custom-provider creations", limit=PLAN.features.maxCustomProviders, tried=n)

    async def post(server: ServerProcess, i: int) -> aiohttp.ClientResponse:
        body = {"category": "llm", "providerKey": "ollama", "name": f"Local model {i}"}
        return await http.post(f"{server.url}/api/dashboard/providers", json=body, headers=org.key)

    await _creates(servers, race, post)
    race.stored = await cluster.db.providers.count_documents({"orgId": org.org_id})
    return race


async def _phone(cluster: Cluster, http: aiohttp.ClientSession, servers: list[ServerProcess], n: int) -> Race:
    org = await cluster.make_org(http, servers[0], "pro")
    number = "+1500555" + str(secrets.randbelow(10_000)).zfill(4)
    race = Race("agents claiming one number", limit=1, tried=n)

    async def post(server: ServerProcess, i: int) -> aiohttp.ClientResponse:
        return await cluster.make_agent(http, server, org, phoneNumbers=[number])

    await _creates(servers, race, post)
    race.stored = await cluster.db.agents.count_documents({"orgId": org.org_id, "phoneNumbers": number})
    return race


async def run(rounds: int = 1, webhooks: int = 50, creates: int = 20, uri: str | None = None) -> list[Race]:
    """All races, ``rounds`` times each on fresh organizations."""
    races: list[Race] = []
    async with Cluster(uri=uri) as cluster, aiohttp.ClientSession() as http:
        servers = [await cluster.start_server(), await cluster.start_server()]
        for _ in range(rounds):
            races.append(await _calls(cluster, http, servers, webhooks))
            races.append(await _agents(cluster, http, servers, creates))
            races.append(await _providers(cluster, http, servers, creates))
            races.append(await _phone(cluster, http, servers, creates))
        await _settle(cluster)
    return races


async def _settle(cluster: Cluster) -> None:
    """Wait (bounded) until every admitted call is recorded as finished."""
    for _ in range(300):
        if not await cluster.db.calls.count_documents({"status": "active"}):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("admitted calls were not finalized")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--webhooks", type=int, default=50, help="simultaneous voice webhooks per round")
    parser.add_argument("--creates", type=int, default=20, help="simultaneous creations per race and round")
    parser.add_argument("--mongodb-uri", default=None, help="default: an embedded database of its own")
    args = parser.parse_args()
    races = asyncio.run(run(args.rounds, args.webhooks, args.creates, args.mongodb_uri))
    for race in races:
        print(race.line())
    wrong = sum(not race.exact for race in races)
    print(f"{len(races)} races, {len(races) - wrong} exact, {wrong} wrong")


if __name__ == "__main__":
    main()
