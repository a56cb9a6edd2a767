"""Crash recovery: ``kill -9`` a server during live calls, restart it, and check nothing is lost or leaked.

A victim server carries ``--calls`` calls placed by the simulated Twilio caller (each has heard the greeting);
a second server carries ``--bystanders`` calls of the same org. The victim is killed with SIGKILL and started
again on the same port. Then: every victim call must be finalized as ``server_lost`` with a duration no longer
than it really ran, the bystander calls must not be touched (they hang up normally afterwards), the org must
admit exactly ``maxConcurrentCalls`` new calls (no slot leaked), and the org's usage must count each call once.

    .venv/bin/python -m scripts.crash_test [--calls 10] [--bystanders 2] [--mongodb-uri URI]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from bson import ObjectId

from scripts.multiproc import Cluster, Org, ServerProcess, new_call_sid
from scripts.twilio_sim import CallConfig, SimulatedCall
from voicex.store.calls import UNBILLED_REASONS

POLL_S = 0.2
RECOVERY_LIMIT_S = 90.0


@dataclass
class CrashReport:
    calls: int
    active_at_kill: int = 0
    finalized: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    recovery_s: float = 0.0
    restart_s: float = 0.0
    durations_within_life: int = 0
    bystanders: int = 0
    bystanders_untouched: int = 0
    bystanders_completed: int = 0
    max_concurrent: int = 0
    admitted_after: int = 0
    refused_after: int = 0
    slots_held_after: int = 0
    calls_total: int = 0  # finalized calls that count in usage
    unbilled: int = 0  # finalized calls that never carried a conversation (their stream never connected)
    usage_calls: int = 0
    usage_minutes: float = 0.0
    call_minutes: float = 0.0
    errors_logged: int = 0

    def lines(self) -> list[str]:
        reasons = ", ".join(f"{n} {r}" for r, n in self.reasons.most_common()) or "-"
        return [
            f"calls placed on the victim     {self.calls}",
            f"active at kill -9              {self.active_at_kill}",
            f"finalized after restart        {self.finalized} ({reasons}) {self.recovery_s:.1f} s after the kill"
            f" (server answering again after {self.restart_s:.1f} s)",
            f"durations <= time really run   {self.durations_within_life} / {self.finalized}",
            f"bystander calls (other server) {self.bystanders}: {self.bystanders_untouched} untouched, "
            f"{self.bystanders_completed} then completed as caller_hangup",
            f"admitted after restart         {self.admitted_after} of {self.max_concurrent + 1} tried "
            f"(maxConcurrentCalls {self.max_concurrent}; {self.refused_after} refused busy)",
            f"slots held at the end          {self.slots_held_after}",
            f"usage: calls counted           {self.usage_calls} for {self.calls_total} finalized calls"
            f" ({self.unbilled} more never connected a stream: not billed)",
            f"usage: minutes counted         {self.usage_minutes:.4f} (sum over the calls {self.call_minutes:.4f})",
            f"errors logged by the servers   {self.errors_logged}",
        ]


async def _dial(
    cluster: Cluster, http: aiohttp.ClientSession, server: ServerProcess, org: Org, agent_id: str, n: int
) -> list[SimulatedCall]:
    """Place ``n`` calls at once and wait until each caller hears the greeting."""
    config = CallConfig(server.url, org.api_key, cluster.twilio_token, agent_id=agent_id, timeout_s=60)
    calls = [SimulatedCall(config, http) for _ in range(n)]
    dialed = await asyncio.gather(*(c.dial() for c in calls))
    heard = await asyncio.gather(*(c.wait_for_agent_audio(timeout=60) for c in calls))
    if not all(dialed) or any(h is None for h in heard):
        raise RuntimeError(f"calls did not start: {[c.error for c in calls]}")
    return calls


async def _wait_finalized(cluster: Cluster, query: dict[str, Any], limit_s: float = RECOVERY_LIMIT_S) -> float:
    """Seconds until no call matching ``query`` is active or has usage pending (bounded by ``limit_s``)."""
    started = time.monotonic()
    unfinished = {"$or": [{"status": "active"}, {"usagePending": True}]}
    while await cluster.db.calls.count_documents({**query, **unfinished}):
        if time.monotonic() - started > limit_s:
            break
        await asyncio.sleep(POLL_S)
    return time.monotonic() - started


def _errors_logged(servers: list[ServerProcess]) -> int:
    count = 0
    for server in servers:
        for line in server.log_path.read_text(errors="replace").splitlines():
            try:
                count += json.loads(line).get("level") in ("ERROR", "CRITICAL")
            except (ValueError, AttributeError):
                continue
    return count


async def run(calls: int = 10, bystanders: int = 2, uri: str | None = None) -> CrashReport:
    report = CrashReport(calls=calls, bystanders=bystanders)
    async with Cluster(uri=uri) as cluster, aiohttp.ClientSession() as http:
        victim = await cluster.start_server()
        other = await cluster.start_server()
        org = await cluster.make_org(http, victim, "pro")
        thresholds = {"idleTimeoutMs": 60000, "maxCallDurationSec": 1800}  # no reprompt during the test
        async with await cluster.make_agent(http, victim, org, thresholds=thresholds) as response:
            agent_id = (await response.json())["_id"]
        async with http.get(f"{victim.url}/api/dashboard/plan", headers=org.key) as response:
            report.max_concurrent = (await response.json())["limits"]["maxConcurrentCalls"]

        lost = await _dial(cluster, http, victim, org, agent_id, calls)
        kept = await _dial(cluster, http, other, org, agent_id, bystanders) if bystanders else []
        lost_sids = [c.ids.call_sid for c in lost]
        kept_sids = [c.ids.call_sid for c in kept]
        report.active_at_kill = await cluster.db.calls.count_documents(
            {"callSid": {"$in": lost_sids}, "status": "active"}
        )
        killed_at = dt.datetime.now(dt.UTC)
        victim.kill9()
        await asyncio.gather(*(c.close() for c in lost))  # the callers' lines drop with the server
        restarted = await cluster.start_server(port=victim.port)
        report.restart_s = (dt.datetime.now(dt.UTC) - killed_at).total_seconds()
        await _wait_finalized(cluster, {"callSid": {"$in": lost_sids}})
        report.recovery_s = (dt.datetime.now(dt.UTC) - killed_at).total_seconds()

        async for call in cluster.db.calls.find({"callSid": {"$in": lost_sids}}):
            if call["status"] == "active":
                continue
            report.finalized += 1
            report.reasons[call["endReason"]] += 1
            lived = (killed_at - call["startedAt"]).total_seconds()
            report.durations_within_life += call["durationSec"] <= lived + 0.01

        streaming = {c.ids.call_sid for c in kept if c.outcome == "streaming"}
        active = cluster.db.calls.find({"callSid": {"$in": kept_sids}, "status": "active"})
        report.bystanders_untouched = len(streaming & {c["callSid"] async for c in active})
        await asyncio.gather(*(c.hangup() for c in kept))
        await asyncio.gather(*(c.close() for c in kept))
        await _wait_finalized(cluster, {"callSid": {"$in": kept_sids}})
        report.bystanders_completed = await cluster.db.calls.count_documents(
            {"callSid": {"$in": kept_sids}, "status": "completed", "endReason": "caller_hangup"}
        )
        await _admit_again(cluster, http, restarted, org, agent_id, report)
        await _count(cluster, org.org_id, report)
        report.errors_logged = _errors_logged(cluster.servers)
    return report


async def _admit_again(
    cluster: Cluster, http: aiohttp.ClientSession, server: ServerProcess, org: Org, agent_id: str, report: CrashReport
) -> None:
    """maxConcurrentCalls + 1 new calls at once; then Twilio reports each admitted one as ended."""
    sids = [new_call_sid() for _ in range(report.max_concurrent + 1)]
    answers = await asyncio.gather(*(cluster.voice_webhook(http, server, org, agent_id, sid) for sid in sids))
    admitted = [sid for sid, a in zip(sids, answers, strict=True) if a.stream_url is not None]
    report.admitted_after = len(admitted)
    report.refused_after = sum(1 for a in answers if a.stream_url is None and a.hangup)
    await asyncio.gather(*(cluster.status_callback(http, server, org, sid) for sid in admitted))
    await _wait_finalized(cluster, {"callSid": {"$in": admitted}})


async def _count(cluster: Cluster, org_id: ObjectId, report: CrashReport) -> None:
    db = cluster.db
    report.slots_held_after = await db.call_slots.count_documents({"orgId": org_id, "callId": {"$ne": None}})
    finished = await db.calls.find({"orgId": org_id, "status": {"$ne": "active"}}).to_list()
    report.unbilled = sum(1 for c in finished if c["endReason"] in UNBILLED_REASONS)
    report.calls_total = len(finished) - report.unbilled
    report.call_minutes = sum(c["usage"]["minutes"] for c in finished)
    async for day in db.usage_daily.find({"orgId": org_id}):
        report.usage_calls += day["calls"]
        report.usage_minutes += day["minutes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10, help="live calls on the server that is killed")
    parser.add_argument("--bystanders", type=int, default=2, help="live calls on the other server")
    parser.add_argument("--mongodb-uri", default=None, help="default: an embedded database of its own")
    args = parser.parse_args()
    report = asyncio.run(run(args.calls, args.bystanders, args.mongodb_uri))
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
