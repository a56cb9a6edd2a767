"""A normal caller on another tenant, run alongside the fuzzing: proof that bad streams do not hurt good ones."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import cache

from bson import ObjectId

from scripts.twilio_sim import CallConfig, SimulatedCall, synthesize
from voicex.store.db import Database


@cache
def question() -> bytes:
    return synthesize("Hello, what time do you open tomorrow?")


@dataclass
class BystanderReport:
    calls: int = 0
    answered: int = 0
    completed: int = 0
    violations: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"normal calls        {self.calls} placed, {self.answered} turns answered, {self.completed} completed,"
            f" {self.violations} protocol violations, {len(self.problems)} problems"
        )


async def normal_call(config: CallConfig, db: Database, report: BystanderReport) -> None:
    """Greeting, one question answered, hang up; the record must say completed/caller_hangup."""
    report.calls += 1
    call = SimulatedCall(config)
    try:
        if not await call.dial():
            report.problems.append(f"dial failed: {call.error or call.outcome}")
            return
        await call.wait_for_agent_silence(timeout=10)
        await call.say(question())
        await call.wait_for_agent_silence(timeout=10)
        await call.hangup()
        result = call.result()
    finally:
        await call.close()
    report.violations += len(result.violations)
    report.problems += result.violations
    if result.turns and result.turns[0].latency_ms is not None:
        report.answered += 1
    else:
        report.problems.append("the caller's turn was not answered")
    call_id = ObjectId(result.custom_parameters["callId"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        record = await db.calls.find_one({"_id": call_id}, projection={"status": 1, "endReason": 1})
        if record and record["status"] != "active":
            if (record["status"], record["endReason"]) == ("completed", "caller_hangup"):
                report.completed += 1
            else:
                report.problems.append(f"normal call ended {record['status']}/{record['endReason']}")
            return
        await asyncio.sleep(0.05)
    report.problems.append("normal call never finalized")


async def keep_calling(config: CallConfig, db: Database, done: asyncio.Event, max_calls: int) -> BystanderReport:
    """Place normal calls one after another until ``done`` is set (at least one, at most ``max_calls``)."""
    report = BystanderReport()
    while report.calls < max_calls and (report.calls == 0 or not done.is_set()):
        await normal_call(config, db, report)
    return report
