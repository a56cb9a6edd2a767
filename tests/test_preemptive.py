"""Preemptive generation: the answer starts while the turn-ending silence (silenceTimeoutMs) runs and plays only
for the words it answers."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from pipelines.metrics import TurnMetrics
from pipelines.preemptive import Preemptive, Speculation, same_words
from pipelines.reply import ReplyResult
from providers.scripted import ScriptedLLM, ScriptedSTT
from tests.test_session import config, finish, start

pytestmark = pytest.mark.looptime


async def _one_turn(preemptive: str) -> tuple[dict, ScriptedLLM, list[dict]]:
    llm = ScriptedLLM(["We open at eight.", "Summary. Sentiment: neutral"], latency_ms=400)
    session, far, caller = await start(
        config(opening="callee_first", preemptiveGeneration=preemptive), ScriptedSTT("What are your hours?"), llm
    )
    await caller.say(800)
    await caller.silence(3000)
    result = await finish(session, far)
    return result.turns[0], llm, result.transcript


async def test_the_answer_is_ready_when_the_turn_ends() -> None:
    held, held_llm, transcript = await _one_turn("on")
    plain, _, plain_transcript = await _one_turn("off")
    assert plain["e2e_latency"] >= 500 + 400  # silenceTimeoutMs, then the LLM's 400 ms
    assert held["e2e_latency"] <= 500 + 60  # the LLM ran while the silence was counted
    assert held["preemptive"] is True and plain["preemptive"] is False
    assert held["end_of_turn_delay"] == 500 and held["llm_ttft"] is not None
    assert len(held_llm.requests) == 1 + 1  # one answer (and the summary)
    assert [e["text"] for e in transcript if e["role"] != "event"] == [
        e["text"] for e in plain_transcript if e["role"] != "event"
    ]


async def test_a_hesitation_throws_the_held_answer_away_unheard() -> None:
    llm = ScriptedLLM(["Sure.", "We open at eight.", "Summary. Sentiment: neutral"], latency_ms=100)
    session, far, caller = await start(
        config(opening="callee_first", preemptiveGeneration="on"), ScriptedSTT("What are your hours?"), llm
    )
    await caller.say(600)
    await caller.silence(200)  # a hesitation: a held answer starts…
    await caller.say(600)  # …and is dropped when the caller goes on
    resumed_end = asyncio.get_running_loop().time()
    await caller.silence(3000)
    result = await finish(session, far)
    assert min(far.times("media")) >= resumed_end + 0.5  # nothing played before the real end of turn
    said = [e["text"] for e in result.transcript if e["role"] == "assistant"]
    assert said == ["We open at eight."]  # the second request's answer; the first was never heard
    assert len(llm.requests) == 2 + 1 and llm.active_streams == 0


async def test_an_llm_on_the_calls_own_cpu_is_never_asked_to_speculate() -> None:
    """The embedded LLM says it is not ``speculative``: even with the knob on, a hesitation starts nothing."""
    llm = ScriptedLLM(["We open at eight.", "Summary. Sentiment: neutral"], latency_ms=100)
    llm.speculative = False
    session, far, caller = await start(
        config(opening="callee_first", preemptiveGeneration="on"), ScriptedSTT("What are your hours?"), llm
    )
    await caller.say(600)
    await caller.silence(200)  # a pause that would start a held answer
    await caller.say(600)
    await caller.silence(3000)
    result = await finish(session, far)
    assert len(llm.requests) == 1 + 1  # the answer after the end of turn (and the summary), nothing held
    assert result.turns[0]["preemptive"] is False and result.turns[0]["e2e_latency"] >= 500 + 100


def test_same_words_ignores_case_and_punctuation_only() -> None:
    assert same_words("What are your hours?", "what are your hours")
    assert same_words("It's 5, OK.", "it's 5 ok")
    assert not same_words("What are your hours", "What are your hours on Sunday")


async def test_a_final_with_other_words_cancels_the_held_reply() -> None:
    started: list[asyncio.Task[None]] = []

    def start_held(text: str, release: asyncio.Event) -> Speculation:
        task = asyncio.get_running_loop().create_task(release.wait())  # type: ignore[arg-type]
        started.append(task)
        reply = SimpleNamespace(result=ReplyResult(errors=["llm groq: dropped"] if "fail" in text else []))
        return Speculation(text, reply, task, TurnMetrics(turn=1), 0.0, release)  # type: ignore[arg-type]

    preemptive = Preemptive()
    preemptive.offer("book a table", start_held)
    preemptive.offer("Book a table.", start_held)  # same words: the held reply stands
    assert len(started) == 1
    assert preemptive.take("book a table for two") is None
    await asyncio.sleep(0)
    assert started[0].cancelled()
    preemptive.offer("book a table for two", start_held)
    held = preemptive.take("Book a table for two.")
    assert held is not None and held.release.is_set()
    preemptive.offer("fail me", start_held)  # its LLM broke while it was held: start afresh instead
    assert preemptive.take("fail me") is None
    assert (preemptive.started, preemptive.adopted, preemptive.discarded) == (3, 1, 2)
