"""The call runner is transport-neutral: a whole call over an in-memory transport (no Twilio framing), and every
way a call can go wrong still finalizes it exactly once with what was said."""

from __future__ import annotations

import datetime as dt

import pytest
from bson import ObjectId

import pipelines.session
from pipelines.session import CallSession
from scripts.twilio_sim import SimulatedCall, caller_audio, synthesize
from tests.memory_transport import MemoryTransport
from tests.telephony import make_line
from tests.test_telephony_stream import config, finalized, question
from voicex.calls.admission import admit
from voicex.calls.runner import CallRunner
from voicex.store.calls import create_call

pytestmark = pytest.mark.scripted_providers


async def _admitted(server, services):
    """A scripted agent's call, admitted (slot held, record active) as the voice webhook would do it."""
    line = await make_line(server, services)
    org = await services.db.organizations.find_one({"_id": ObjectId(line.tenant.org_id)})
    agent = await services.db.agents.find_one({"_id": ObjectId(line.agent["_id"])})
    call_id = ObjectId()
    assert await admit(services, org, agent, call_id) is None
    call = {"_id": call_id, "orgId": org["_id"], "agentId": agent["_id"], "callSid": "CA" + "9" * 32}
    await create_call(services.db, call, dt.datetime.now(dt.UTC))
    return org, agent, call


def _question() -> list[bytes]:
    return [b"\xff" * 160] * 100 + caller_audio(synthesize("Hello, what time do you open tomorrow?")).frames


async def test_a_whole_call_runs_over_an_in_memory_transport(server, services) -> None:
    org, agent, call = await _admitted(server, services)
    transport = MemoryTransport(_question())
    outcome = await CallRunner(services, call, org, agent, transport).run()

    assert outcome.end_reason == "caller_hangup" and transport.closed
    said = [(entry["role"], entry["text"]) for entry in outcome.transcript if entry["role"] != "event"]
    assert said == [
        ("assistant", "Hello from Voicex."),
        ("user", "Hello there."),
        ("assistant", "Sure, I can help with that."),
    ]
    assert len(transport.sink.audio) > 8000 and transport.sink.marks  # the agent was heard: audio and marks went out
    record = await services.db.calls.find_one({"_id": call["_id"]})
    assert (record["status"], record["endReason"]) == ("completed", "caller_hangup")
    assert [entry["text"] for entry in record["transcript"] if entry["role"] == "user"] == ["Hello there."]
    assert await services.db.call_slots.count_documents({"callId": call["_id"]}) == 0  # its slot is free again
    usage = await services.db.usage_daily.find_one({"orgId": org["_id"]})
    assert usage["calls"] == 1 and usage["ttsChars"] > 0


async def test_a_summary_that_raises_still_finalizes_the_call_with_its_transcript(
    server, services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real Twilio stream: the call record gets the transcript even when the summary's LLM raises."""

    async def broken_summary(*args: object, **kwargs: object) -> tuple[str, str]:
        raise RuntimeError("the summary model crashed")

    monkeypatch.setattr(pipelines.session, "summarize_call", broken_summary)
    line = await make_line(server, services)
    call = SimulatedCall(config(server, line))
    assert await call.dial()
    assert await call.wait_for_agent_silence(timeout=10)
    await call.say(question())
    assert await call.wait_for_agent_silence(timeout=10)
    await call.hangup()
    call_id = call.result().custom_parameters["callId"]
    await call.close()

    record = await finalized(services, call_id)
    assert (record["status"], record["endReason"]) == ("completed", "caller_hangup")  # not left to the janitor
    assert [entry["text"] for entry in record["transcript"] if entry["role"] == "user"] == ["Hello there."]
    assert any("the summary model crashed" in error for error in record["errors"])


async def test_a_session_that_fails_to_start_is_finalized_and_leaves_nothing_running(
    server, services, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = CallSession.start

    async def failing_start(self: CallSession) -> None:
        await started(self)  # timers, prefill, greeting and the recognizer are running now …
        raise RuntimeError("start failed half way")  # … and then something breaks

    monkeypatch.setattr(CallSession, "start", failing_start)
    org, agent, call = await _admitted(server, services)
    runner = CallRunner(services, call, org, agent, MemoryTransport(_question()))
    await runner.run()

    record = await services.db.calls.find_one({"_id": call["_id"]})
    assert (record["status"], record["endReason"]) == ("failed", "error")
    assert any("start failed half way" in error for error in record["errors"])
    assert await services.db.call_slots.count_documents({"callId": call["_id"]}) == 0
    assert runner.session is not None and all(task.done() for task in runner.session._tasks)
