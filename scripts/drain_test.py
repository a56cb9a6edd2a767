"""Graceful drain: SIGTERM a server in the middle of 20 calls; every caller finishes, nobody is cut.

A real ``voicex serve`` (scripted providers) takes ``--calls`` simulated Twilio calls. Each caller hears the
greeting, asks two questions, hears the answers and hangs up. Once every caller is on the line the server gets
SIGTERM. Meanwhile new calls keep arriving: each must be refused (the TwiML opens no stream) and ``/api/ready``
must answer 503 ``draining``. Then: every call completed as the caller's hang-up, none ended by the server, and
the server exited only after the last call, with exit status 0.

    .venv/bin/python -m scripts.drain_test [--calls 20] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from scripts.multiproc import Cluster, Org, ServerProcess
from scripts.twilio_sim import CallConfig, SimulatedCall, caller_audio, synthesize

QUESTIONS = ("Hello, what time do you open tomorrow?", "And are you open on Saturday?")
NEW_CALL_EVERY_S = 0.5


@dataclass
class DrainReport:
    calls: int
    workers: int
    greeted: int = 0
    completed_by_caller: int = 0
    ended: Counter[str] = field(default_factory=Counter)
    cut: int = 0
    new_webhooks: int = 0
    new_refused: int = 0
    ready_while_draining: Counter[int] = field(default_factory=Counter)
    last_call_end_s: float = 0.0  # after SIGTERM
    exit_s: float = 0.0
    exit_status: int | None = None

    @property
    def ok(self) -> bool:
        return (
            self.completed_by_caller == self.calls
            and self.cut == 0
            and self.new_refused == self.new_webhooks > 0
            and set(self.ready_while_draining) == {503}
            and self.exit_status == 0
            and self.exit_s >= self.last_call_end_s
        )

    def lines(self) -> list[str]:
        ends = ", ".join(f"{n} {reason}" for reason, n in self.ended.most_common()) or "-"
        ready = ", ".join(f"{n}× {status}" for status, n in sorted(self.ready_while_draining.items())) or "-"
        return [
            f"calls on the line at SIGTERM   {self.greeted} of {self.calls} (server workers: {self.workers})",
            f"completed normally             {self.completed_by_caller} (end reasons: {ends})",
            f"cut by the server              {self.cut}",
            f"new webhooks during the drain  {self.new_webhooks}, refused {self.new_refused} (no stream opened)",
            f"/api/ready during the drain    {ready}",
            f"last call ended                {self.last_call_end_s:.1f} s after SIGTERM",
            f"server exited                  {self.exit_s:.1f} s after SIGTERM, status {self.exit_status}",
            f"verdict                        {'PASS' if self.ok else 'FAIL'}",
        ]


async def _converse(call: SimulatedCall) -> float:
    """The caller's side once greeted: two questions, each answered, then the hang-up; when it hung up."""
    for question in QUESTIONS:
        await call.say(caller_audio(synthesize(question)))
        await call.wait_for_agent_audio(timeout=30)
        await call.wait_for_agent_silence(timeout=30)
    await call.hangup()
    return time.monotonic()


async def _knock(
    http: aiohttp.ClientSession, config: CallConfig, server: ServerProcess, report: DrainReport, done: asyncio.Event
) -> None:
    """New calls and readiness probes while the server drains, until the old calls are over."""
    while not done.is_set() and server.proc.poll() is None:
        newcomer = SimulatedCall(config, http)
        try:
            streaming = await newcomer.dial()
        except aiohttp.ClientError:
            break  # the server is gone
        if newcomer.outcome == "error" and "ClientConnectorError" in (newcomer.error or ""):
            break
        report.new_webhooks += 1
        report.new_refused += not streaming and newcomer.outcome == "refused"
        if streaming:
            await newcomer.hangup()
        try:
            async with http.get(f"{server.url}/api/ready") as response:
                report.ready_while_draining[response.status] += 1
        except aiohttp.ClientError:
            break
        await asyncio.sleep(NEW_CALL_EVERY_S)


async def run(calls: int = 20, workers: int = 1) -> DrainReport:
    report = DrainReport(calls=calls, workers=workers)
    async with Cluster() as cluster, aiohttp.ClientSession() as http:
        server = await cluster.start_server(workers=workers)
        org: Org = await cluster.make_org(http, server, "enterprise")
        thresholds = {"idleTimeoutMs": 60000, "maxCallDurationSec": 1800}
        async with await cluster.make_agent(http, server, org, thresholds=thresholds) as response:
            agent_id = (await response.json())["_id"]
        config = CallConfig(server.url, org.api_key, cluster.twilio_token, agent_id=agent_id, timeout_s=60)
        callers = [SimulatedCall(config, http) for _ in range(calls)]
        await asyncio.gather(*(c.dial() for c in callers))
        heard = await asyncio.gather(*(c.wait_for_agent_audio(timeout=60) for c in callers))
        report.greeted = sum(h is not None for h in heard)
        talking = [asyncio.create_task(_converse(c)) for c in callers]
        await asyncio.sleep(1.0)  # mid-call: every caller is asking its first question

        sigterm_at = time.monotonic()
        server.proc.terminate()
        done = asyncio.Event()
        knocking = asyncio.create_task(_knock(http, config, server, report, done))
        hung_up = await asyncio.gather(*talking, return_exceptions=True)
        done.set()
        await knocking
        report.last_call_end_s = max((t - sigterm_at for t in hung_up if isinstance(t, float)), default=0.0)
        report.exit_status = await asyncio.to_thread(server.proc.wait, 600)
        report.exit_s = time.monotonic() - sigterm_at

        sids = [c.ids.call_sid for c in callers]
        async for call in cluster.db.calls.find({"callSid": {"$in": sids}}):
            report.ended[call.get("endReason") or call["status"]] += 1
            report.completed_by_caller += call["status"] == "completed" and call.get("endReason") == "caller_hangup"
            report.cut += call.get("endReason") in ("server_drain", "server_shutdown", "socket_closed", "server_lost")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1, help="`voicex serve --workers N`")
    args = parser.parse_args()
    report = asyncio.run(run(args.calls, args.workers))
    print("\n".join(report.lines()))
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
