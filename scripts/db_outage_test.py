"""Database outage during calls: MongoDB goes away for a few seconds while calls talk, then comes back.

Calls are placed with the simulated Twilio caller and each takes a turn before, during and after the outage;
half of them hang up while the database is down, so their finalization (transcript, usage, slot release) has
to wait for it. Afterwards every call must be finalized exactly once with its whole transcript, usage counted
once, every slot released, and ``/api/ready`` must have said 503 during the outage and 200 after it.

Two ways to take the database away (``--mode``):

- ``restart`` (default): SIGTERM the MongoDB-wire server and start it again on the same port and data dir.
  This is what an operator's restart, an upgrade or a crash-and-supervisor-restart looks like to the driver:
  connections are refused or reset, operations fail after the server selection timeout, and the server comes
  back with its data. It is the outage that makes writes fail, so it is what the retries must survive.
- ``freeze``: SIGSTOP then SIGCONT. A hung server (disk stall, GC, a paused VM): connections stay open and
  operations just wait; it checks that waiting writes never stall a call's audio.

``python -m scripts.db_outage_test [--calls 6] [--outage 6] [--mode restart|freeze] [--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from bson import ObjectId
from pymongo import AsyncMongoClient

from scripts.twilio_sim import CallConfig, SimulatedCall, percentile
from voicex.platform.embedded_db import EmbeddedMongo

RETRY_LINE = "database write failed; retrying"
ANSWER_TIMEOUT_S = 15.0


@dataclass
class Target:
    """Where the calls go and as whom."""

    base_url: str
    api_key: str
    auth_token: str
    agent_id: str


class DbOutage:
    """Takes the MongoDB-wire server away and brings it back, by restart or by freezing its process."""

    def __init__(self, server: EmbeddedMongo, mode: str) -> None:
        if mode not in ("restart", "freeze"):
            raise ValueError(f"unknown outage mode {mode!r}")
        self.server, self.mode = server, mode
        self.pid = 0

    async def down(self) -> None:
        if self.mode == "restart":
            await asyncio.to_thread(self.server.stop)
        else:
            self.pid = int(json.loads(self.server.state_path.read_text())["pid"])
            os.kill(self.pid, signal.SIGSTOP)

    async def up(self) -> None:
        if self.mode == "restart":
            await asyncio.to_thread(self.server.start)  # same port, same data dir
        else:
            os.kill(self.pid, signal.SIGCONT)


async def _ready_status(http: aiohttp.ClientSession, base_url: str) -> int:
    try:
        async with http.get(f"{base_url}/api/ready", timeout=aiohttp.ClientTimeout(total=10)) as response:
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def _turn(call: SimulatedCall, clip: bytes) -> float | None:
    """The caller says ``clip``; returns ms from the end of speech to the agent's answer, or None if unanswered."""
    await call.say(clip)
    if not await call.wait_for_agent_silence(timeout=ANSWER_TIMEOUT_S, quiet_ms=300):
        return None
    turns = call.result().turns
    return turns[-1].latency_ms if turns else None


async def _phase(calls: list[SimulatedCall], clip: bytes) -> list[float | None]:
    return list(await asyncio.gather(*(_turn(call, clip) for call in calls)))


async def scenario(
    target: Target,
    outage: DbOutage,
    clip: bytes,
    calls: int = 6,
    outage_s: float = 6.0,
    finalize_retries: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """Run the calls through the outage; returns figures and, per call, its id and the turns it took.

    With ``finalize_retries`` (a count of finalization retries logged by the server) the database stays down
    until every call hung up meanwhile has seen its finalization fail once, so the retry path really ran.
    """
    config = CallConfig(target.base_url, target.api_key, target.auth_token, agent_id=target.agent_id, timeout_s=60)
    out: dict[str, Any] = {"mode": outage.mode, "calls": calls}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sims = [SimulatedCall(config, http) for _ in range(calls)]
        dialed = await asyncio.gather(*(sim.dial() for sim in sims))
        if not all(dialed):
            raise RuntimeError(f"calls not connected: {[s.error for s in sims if s.error]}")
        await asyncio.gather(*(sim.wait_for_agent_silence(timeout=ANSWER_TIMEOUT_S, quiet_ms=300) for sim in sims))
        before = await _phase(sims, clip)

        await outage.down()
        down_at = time.monotonic()
        ready_during: list[int] = []
        polling = asyncio.Event()

        async def poll_ready() -> None:
            while not polling.is_set():
                ready_during.append(await _ready_status(http, target.base_url))
                await asyncio.sleep(0.5)

        poller = asyncio.create_task(poll_ready())
        during = await _phase(sims, clip)
        leaving, staying = sims[: calls // 2], sims[calls // 2 :]
        hangups = [asyncio.create_task(sim.hangup()) for sim in leaving]

        def may_come_back() -> bool:
            elapsed = time.monotonic() - down_at
            waiting = finalize_retries is not None and finalize_retries() < len(leaving) and elapsed < outage_s + 60
            return elapsed >= outage_s and not waiting

        while True:
            if may_come_back():
                break
            await asyncio.sleep(0.1)
        polling.set()
        await poller
        await outage.up()
        out["outage_s"] = time.monotonic() - down_at
        up_at = time.monotonic()
        while True:
            status = await _ready_status(http, target.base_url)
            if status == 200 or time.monotonic() - up_at > 60:
                break
            await asyncio.sleep(0.2)
        out["ready_after_restart_s"] = time.monotonic() - up_at if status == 200 else None

        after = await _phase(staying, clip)
        await asyncio.gather(*(sim.hangup() for sim in staying))
        await asyncio.gather(*hangups)
        for sim in sims:
            await sim.close()

    said = [len(sim.result().turns) for sim in sims]
    out |= {
        "turns_before": _answered(before),
        "turns_during": _answered(during),
        "turns_after": _answered(after),
        "latency_before_p50_ms": percentile([v for v in before if v is not None], 50),
        "latency_during_p50_ms": percentile([v for v in during if v is not None], 50),
        "ready_during": dict(Counter(ready_during)),
        "hung_up_during_outage": len(leaving),
        "finalize_retries_logged": finalize_retries() if finalize_retries else None,
        "violations": sum(sim.result().violation_count for sim in sims),
        "call_ids": [sim.result().custom_parameters["callId"] for sim in sims],
        "caller_turns": said,
    }
    return out


def _answered(latencies: list[float | None]) -> str:
    return f"{sum(1 for v in latencies if v is not None)}/{len(latencies)}"


async def verify(uri: str, db_name: str, call_ids: list[str], caller_turns: list[int]) -> dict[str, Any]:
    """What the database holds once it is back: one finished record per call, its transcript, usage, slots."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        db = client[db_name]
        ids = [ObjectId(i) for i in call_ids]
        deadline = time.monotonic() + 60  # finalizations still retrying finish within their backoff
        while True:
            records = {doc["_id"]: doc async for doc in db.calls.find({"_id": {"$in": ids}})}
            if all(r.get("status") != "active" and not r.get("usagePending") for r in records.values()):
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        complete = 0
        for call_id, turns in zip(ids, caller_turns, strict=True):
            roles = Counter(e["role"] for e in records.get(call_id, {}).get("transcript", []))
            # every caller turn, and the greeting plus an answer to each (a reprompt may add one more)
            complete += roles["user"] == turns and roles["assistant"] >= turns + 1
        orgs = {r["orgId"] for r in records.values()}
        usage = [doc async for doc in db.usage_daily.find({"orgId": {"$in": list(orgs)}})]
        counted = Counter(i for doc in usage for i in doc.get("counted", []))
        held = await db.call_slots.count_documents({"callId": {"$in": ids}})
    finally:
        await client.close()
    return {
        "records": len(records),
        "finalized": sum(1 for r in records.values() if r.get("status") != "active"),
        "end_reasons": dict(Counter(str(r.get("endReason")) for r in records.values())),
        "transcripts_complete": complete,
        "usage_calls": sum(doc.get("calls", 0) for doc in usage),
        "usage_minutes": round(sum(doc.get("minutes", 0.0) for doc in usage), 4),
        "record_minutes": round(sum(r.get("usage", {}).get("minutes", 0.0) for r in records.values()), 4),
        "counted_twice": sum(1 for n in counted.values() if n > 1),
        "usage_pending": sum(1 for r in records.values() if r.get("usagePending")),
        "reaped_while_live": sum(1 for r in records.values() if r.get("reclaimed")),
        "slots_held": held,
    }


def render(run: dict[str, Any], check: dict[str, Any]) -> str:
    rows = [
        ("outage mode", run["mode"]),
        ("database down", f"{run['outage_s']:.1f} s"),
        ("calls", run["calls"]),
        (
            "turns answered before / during / after",
            f"{run['turns_before']} · {run['turns_during']} · {run['turns_after']}",
        ),
        (
            "turn latency p50 before / during",
            f"{_ms(run['latency_before_p50_ms'])} / {_ms(run['latency_during_p50_ms'])}",
        ),
        ("/api/ready during the outage", ", ".join(f"{n} × {code}" for code, n in sorted(run["ready_during"].items()))),
        ("/api/ready 200 again after restart", _s(run["ready_after_restart_s"])),
        ("calls hung up while the database was down", run["hung_up_during_outage"]),
        ("finalization retries logged", run["finalize_retries_logged"]),
        ("calls finalized", f"{check['finalized']}/{run['calls']} ({_reasons(check['end_reasons'])})"),
        ("transcripts complete", f"{check['transcripts_complete']}/{run['calls']}"),
        ("usage: calls counted", f"{check['usage_calls']} (counted twice: {check['counted_twice']})"),
        ("usage: minutes counted / in the records", f"{check['usage_minutes']} / {check['record_minutes']}"),
        ("usage still pending", check["usage_pending"]),
        ("slots still held", check["slots_held"]),
        ("live calls the janitor declared lost", check["reaped_while_live"]),
        ("protocol violations", run["violations"]),
    ]
    return "\n".join(["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def _reasons(reasons: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))


def passed(run: dict[str, Any], check: dict[str, Any]) -> bool:
    n = run["calls"]
    answered = all(
        run[k].split("/")[0] == run[k].split("/")[1] for k in ("turns_before", "turns_during", "turns_after")
    )
    return (
        answered
        and check["finalized"] == check["transcripts_complete"] == check["usage_calls"] == n
        and check["end_reasons"] == {"caller_hangup": n}
        and check["counted_twice"] == check["usage_pending"] == check["slots_held"] == check["reaped_while_live"] == 0
        and abs(check["usage_minutes"] - check["record_minutes"]) < 1e-3
        and run["ready_during"].get(200, 0) == 0
        and run["ready_after_restart_s"] is not None
        and run["violations"] == 0
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from scripts.bench.harness import Bench

    async with Bench() as bench:
        _, url = bench.servers[0]
        log_path = next(bench.tmp.glob("server-*.log"))

        def retries() -> int:
            lines = log_path.read_text(errors="replace").splitlines()
            return sum(1 for line in lines if RETRY_LINE in line and "finalize call" in line)

        target = Target(url, bench.api_key, bench.token, bench.agent_id)
        clip = await asyncio.to_thread(Path(bench.clips[0]).read_bytes)
        wait = retries if args.mode == "restart" else None
        run = await scenario(target, DbOutage(bench.db, args.mode), clip, args.calls, args.outage, wait)
        check = await verify(bench.uri, "voicex", run["call_ids"], run["caller_turns"])
    return {"run": run, "check": check, "passed": passed(run, check)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=6)
    parser.add_argument("--outage", type=float, default=6.0, help="seconds the database stays down (at least)")
    parser.add_argument("--mode", choices=("restart", "freeze"), default="restart")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print(render(result["run"], result["check"]))
    print("PASS" if result["passed"] else "FAIL")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    raise SystemExit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
