"""Contention across two real ``voicex serve`` processes on one database: plan limits hold exactly.

Simultaneous requests for the last units of a limit, alternating between the servers. See
scripts/contention_test.py.
"""

from __future__ import annotations

import pytest

from scripts.contention_test import PLAN, run

pytestmark = pytest.mark.slow


async def test_simultaneous_requests_over_two_processes_get_exactly_the_plan_limit(mongo_uri: str) -> None:
    calls, agents, providers, number = await run(rounds=1, webhooks=50, creates=20, uri=mongo_uri)
    # 50 callers ring an org allowed 10 concurrent calls (starter): 10 are connected, 40 hear "busy" and hang up.
    slots, max_agents, max_providers = (
        PLAN.limits.maxConcurrentCalls, PLAN.limits.maxAgents, PLAN.features.maxCustomProviders
    )  # fmt: skip
    assert (slots, max_agents, max_providers) == (10, 5, 3)
    assert (calls.succeeded, calls.stored) == (slots, slots)
    assert calls.refusals == {"Say+Hangup": 50 - slots}
    # 20 agent creations for a plan of 5 agents, 20 custom-provider creations for a plan of 3.
    assert (agents.succeeded, agents.stored, agents.refusals) == (5, 5, {"HTTP 403": 15})
    assert (providers.succeeded, providers.stored, providers.refusals) == (3, 3, {"HTTP 403": 17})
    # 20 agents claiming the same phone number: one gets it, the others are told it is taken.
    assert (number.succeeded, number.stored, number.refusals) == (1, 1, {"HTTP 409": 19})
    for race in (calls, agents, providers, number):
        assert not race.other, race.line()  # no 5xx, no malformed answers
