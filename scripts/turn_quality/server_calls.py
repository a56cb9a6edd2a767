"""One labelled scenario as a real phone call (server_replay.py's core): plan it, give it an agent, play it, judge it.

Planning: the scenario's WAV becomes the caller's 20 ms μ-law frames, and the scripted STT's energy rule
(providers/scripted.py: RMS ≥ 500 opens an utterance, ``endpointing_ms`` of quiet closes it) is run on exactly
those frames, so each utterance the server's recognizer will open gets the words of the labelled speech it
overlaps ("" for noise). Each scenario gets its own agent with its own scripted STT provider holding that list.

Agent: silent scenarios call a ``callee_first`` agent with no greeting; scenarios where the agent speaks call an
``agent_first`` agent whose long greeting plays from the call's first frames, over the whole labelled part.

Judging uses only what the simulated caller received: agent sound (first audible sample of each media message,
as played by the Twilio buffer model) and ``clear`` messages, on the clock the caller's frames were sent by. The
WAV is queued before the stream's first frame, so WAV millisecond m is caller time ``t0 + m/1000``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import numpy as np
from bson import ObjectId

from pipelines.audio import ulaw_to_pcm16
from pipelines.call_config import SessionConfig
from providers.scripted import _INTERIM_AFTER_MS, _LOUD_RMS
from scripts.turn_quality.metrics import ONSET_SLACK_MS, UNANSWERED_GRACE_MS
from scripts.twilio_sim import CallConfig, CallerAudio, SimulatedCall, caller_audio
from scripts.twilio_sim.stream import MediaStream

FRAME_MS = 20
REPLY = "Sure, I can help with that."  # the scripted LLM's answer (~1.7 s of tone)
GREETING_SENTENCE = "This is the agent talking on and on so the caller can talk over it."  # ~4 s of tone each
TTS_MS_PER_CHAR = 60  # providers/scripted.py ScriptedTTS
STOP_GRACE_MS = 500  # a clear this long after the labelled sound ended is still its doing (VAD hangover)
AFTER_EVENT_MS = 3000  # agent scenarios: listen this long after the labelled sound (a reply ends within it)
EARLY_WORDS_MS = 200
# the session's longest wait for STT's final after a turn ends (1.2 s), before it takes the interim
FINAL_WAIT_MS = cast("int", next(f.default for f in dataclasses.fields(SessionConfig) if f.name == "stt_final_wait_ms"))
RESUMED_SLACK_MS = 200  # the server keeps ~200 ms of audio queued ahead: sound playing at hang-up ends after it
RUN_GAP_S = 0.1  # agent sound closer than this to the previous sound continues it


@dataclass
class Plan:
    """One scenario ready to dial: its audio, the scripted STT's transcripts, and where the call stops."""

    scenario: dict[str, Any]
    clip: CallerAudio
    transcripts: list[str]
    utterances: list[tuple[int, int]]  # the energy rule's utterances (open ms, last loud ms)
    stop_ms: int
    silence_ms: int  # the agent's silenceTimeoutMs
    agent_id: str = ""
    stt_latency_ms: int = 0  # the scripted STT's latency (aligns words opened early by noise, agent speaking)
    stt_early_words: bool = False  # words > EARLY_WORDS_MS early (noise-opened utterance), or across a pause

    @property
    def agent_speaks(self) -> bool:
        return self.scenario["agent"] is not None

    @property
    def events(self) -> list[dict[str, Any]]:
        """The labelled sounds: speech spans and noise bursts, in time order."""
        spans = list(self.scenario["speech"]) + list(self.scenario["bursts"])
        return sorted(spans, key=lambda span: span["onset_ms"])


def loud_frames(clip: CallerAudio) -> list[bool]:
    """Per 20 ms frame as the server decodes it: does the scripted STT count it as sound (RMS ≥ 500)?"""
    out = []
    for frame in clip.frames:
        pcm = np.frombuffer(ulaw_to_pcm16(frame), dtype="<i2").astype(np.float64)
        out.append(int(math.sqrt(float(np.mean(pcm * pcm)))) >= _LOUD_RMS)
    return out


def interim_at(loud: list[bool], from_ms: int) -> int | None:
    """When an utterance opened at ``from_ms`` has had 100 ms of sound: the scripted STT's interim (its words)."""
    count = 0
    for index in range(from_ms // FRAME_MS, len(loud)):
        count += loud[index]
        if count * FRAME_MS >= _INTERIM_AFTER_MS:
            return (index + 1) * FRAME_MS
    return None


def stt_utterances(loud: list[bool], endpointing_ms: int) -> list[tuple[int, int]]:
    """The scripted STT's utterances: (first loud ms, end of the last loud frame ms)."""
    found: list[tuple[int, int]] = []
    opened: int | None = None
    last_loud = quiet = 0
    for index, is_loud in enumerate(loud):
        if is_loud:
            opened = index * FRAME_MS if opened is None else opened
            last_loud, quiet = (index + 1) * FRAME_MS, 0
        elif opened is not None:
            quiet += FRAME_MS
            if quiet >= endpointing_ms:
                found.append((opened, last_loud))
                opened = None
    if opened is not None:
        found.append((opened, last_loud))
    return found


def transcripts_for(speech: list[dict[str, Any]], utterances: list[tuple[int, int]]) -> list[list[int]]:
    """Per utterance, the labelled speech spans it overlaps (each span in the first utterance that overlaps it)."""
    used: set[int] = set()
    found = []
    for start, end in utterances:
        hit = [i for i, s in enumerate(speech) if s["onset_ms"] < end and start < s["end_ms"] and i not in used]
        used.update(hit)
        found.append(hit)
    return found


def plan(scenario: dict[str, Any], set_dir: Path, silence_ms: int, endpointing_ms: int) -> Plan:
    """Read the WAV, work out the STT transcripts and how long the call must last to judge the scenario.

    The scripted STT sends an utterance's words (all of them) once it has had 100 ms of sound. Background noise
    above its threshold opens an utterance before the words, or keeps one open across the caller's pauses: the
    words come early (``stt_early_words``). While the agent speaks, word timing decides barge-ins, so there the
    STT's latency is set to bring the first words back to when they would come without the noise; its finals come
    as late (a reply then waits up to the session's 1.2 s for the final, so that reply is not timed).
    """
    clip = caller_audio(set_dir / scenario["file"])
    loud = loud_frames(clip)
    utterances = stt_utterances(loud, endpointing_ms)
    speech = scenario["speech"]
    spans = transcripts_for(speech, utterances)
    texts = [" ".join(speech[i]["text"] for i in hit).replace("|", " ") for hit in spans]
    first = next(((start, hit[0]) for (start, _), hit in zip(utterances, spans, strict=True) if hit), None)
    latency, early = 0, any(len(hit) > 1 for hit in spans)
    if first is not None:
        start, span = first
        actual, wanted = interim_at(loud, start), interim_at(loud, speech[span]["onset_ms"])
        lead = 0 if actual is None or wanted is None else wanted - actual
        if scenario["agent"] is not None:
            latency = max(0, lead)
        else:
            early = early or lead > EARLY_WORDS_MS
    events = list(speech) + list(scenario["bursts"])
    last_end = max((s["end_ms"] for s in events), default=scenario["duration_ms"])
    if not events:
        stop = scenario["duration_ms"]
    elif scenario["agent"] is not None:
        stop = last_end + AFTER_EVENT_MS + (FINAL_WAIT_MS if latency else 0)
    else:
        stop = last_end + silence_ms + UNANSWERED_GRACE_MS
    item = Plan(scenario, clip, [*texts, ""], utterances, min(stop, len(loud) * FRAME_MS), silence_ms)
    item.stt_latency_ms, item.stt_early_words = latency, early
    return item


def greeting(ms: int) -> str:
    """Sentences of scripted TTS lasting at least ``ms`` (the greeting is at most 1000 characters: 60 s)."""
    per = len(GREETING_SENTENCE) * TTS_MS_PER_CHAR
    return " ".join([GREETING_SENTENCE] * max(1, min(1000 // (len(GREETING_SENTENCE) + 1), -(-ms // per))))


async def create_agents(db: Any, plans: list[Plan], thresholds: dict[str, Any], tag: str) -> None:
    """An agent per scenario, a copy of the benchmark's demo agent with its own scripted STT; sets ``agent_id``."""
    base = await db.agents.find_one({"demo": True})
    if base is None:
        raise RuntimeError("the benchmark's demo agent is missing")
    now = dt.datetime.now(dt.UTC)
    providers, agents = [], []
    for index, item in enumerate(plans):
        stt_id, agent_id = ObjectId(), ObjectId()
        settings = {"latencyMs": item.stt_latency_ms, "transcripts": "|".join(item.transcripts), "reply": REPLY}
        providers.append({
            "_id": stt_id, "orgId": base["orgId"], "category": "stt", "providerKey": "scripted",
            "name": f"replay {tag} {index} {item.scenario['name']}", "credentials": None, "settings": settings,
            "models": [{"modelId": "scripted", "label": "Scripted STT"}], "active": True,
            "createdAt": now, "updatedAt": now,
        })  # fmt: skip
        agent = {key: value for key, value in base.items() if key != "demo"}
        speaks = item.agent_speaks
        persona = dict(base["persona"], greeting=greeting(item.stop_ms + 3000) if speaks else "")
        agent.update(
            _id=agent_id, name=f"replay {item.scenario['name']}", phoneNumbers=[], sttProviderId=stt_id,
            sttModelId="scripted", persona=persona, openingMode="agent_first" if speaks else "callee_first",
            thresholds=dict(thresholds), createdAt=now, updatedAt=now,
        )  # fmt: skip
        agents.append(agent)
        item.agent_id = str(agent_id)
    if plans:
        await db.providers.insert_many(providers)
        await db.agents.insert_many(agents)


async def play(config: CallConfig, item: Plan, http: aiohttp.ClientSession) -> dict[str, Any]:
    """Dial, play the WAV from the first frame in real time, listen until ``stop_ms``, hang up; then judge."""
    call = SimulatedCall(config, http)
    error: str | None = None
    try:
        if await call.dial():
            assert call.stream is not None
            await call.say(item.clip, wait=False)  # queued before the first frame is due: WAV ms 0 = t0
            remaining = call.stream.t0 + item.stop_ms / 1000 - asyncio.get_running_loop().time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.stream.ended.wait(), max(0.0, remaining))
            ended_early = call.stream.is_ended
            await call.hangup()
            if ended_early:
                error = f"the call ended early: {call.stream.error or 'server closed'}"
    except Exception as exc:  # a failed call is a result, not the end of the run
        error = f"{type(exc).__name__}: {exc}"
    finally:
        await call.close()
    result = call.result()
    out: dict[str, Any] = {"outcome": "error" if error or result.outcome != "completed" else "completed"}
    out["error"] = error or result.error
    out["violations"] = len(result.violations)
    out["max_send_lag_ms"] = round(result.max_send_lag_ms, 1)
    if call.stream is not None:
        out |= judge(item, call.stream)
    return out


def sound_runs(stream: MediaStream) -> list[list[float]]:
    """Agent sound as the caller heard it, in ms from t0: [start, end] runs, split at gaps and at clears."""
    runs: list[list[float]] = []
    clears = stream.counters.clears
    for segment in stream.playback.segments:
        at = segment.audible_at
        if at is None or segment.end <= at:
            continue
        cleared = bool(runs) and any(runs[-1][0] < c <= at for c in clears)
        if runs and not cleared and at - runs[-1][1] <= RUN_GAP_S:
            runs[-1][1] = max(runs[-1][1], segment.end)
        else:
            runs.append([at, segment.end])
    return [[(start - stream.t0) * 1000, (end - stream.t0) * 1000] for start, end in runs]


def judge(item: Plan, stream: MediaStream) -> dict[str, Any]:
    """The scenario's numbers from the caller's side (every time in ms of the scenario's WAV)."""
    runs = sound_runs(stream)
    clears = [(c - stream.t0) * 1000 for c in stream.counters.clears]
    events = item.events
    out: dict[str, Any] = {
        "agent_runs_ms": [[round(a), round(b)] for a, b in runs],
        "clears_ms": [round(c) for c in clears],
        "stt_transcripts": item.transcripts[:-1],
        "stt_deaf": bool(item.scenario["speech"]) and not any(item.transcripts),
        "stt_early_words": item.stt_early_words,
        "stt_latency_ms": item.stt_latency_ms,
    }
    if item.agent_speaks:
        out |= _while_speaking(item, runs, clears, events)
    else:
        out |= _while_listening(item, runs, clears)
    return out


def _first(values: list[float], at_least: float) -> float | None:
    return next((v for v in sorted(values) if v >= at_least), None)


def _while_speaking(
    item: Plan, runs: list[list[float]], clears: list[float], events: list[dict[str, Any]]
) -> dict[str, Any]:
    """Agent talking: did the labelled sound stop it (clear), how fast, did it resume or give up its turn.

    After the stop, agent sound still playing when the caller hangs up is the long greeting carrying on
    (resumed); sound that ended before is the scripted reply (~1.7 s): the agent gave up its turn and answered.
    """
    digital = item.scenario["digital"]  # floor_onset: the floor starts where the digital silence ends
    onset = events[0]["onset_ms"] if events else digital[-1]["end_ms"] if digital else runs[0][0] if runs else 0
    window_start = onset if events else item.scenario["warmup_ms"]
    end = events[-1]["end_ms"] + STOP_GRACE_MS if events else float("inf")
    window = [c for c in clears if window_start <= c <= end]
    first_clear = window[0] if window else None
    after = None if first_clear is None else next((run for run in runs if run[0] >= first_clear), None)
    if first_clear is None:
        after_stop = None
    elif after is None:
        after_stop = "silent"
    else:
        after_stop = "resumed" if after[1] >= item.stop_ms - RESUMED_SLACK_MS else "replied"
    out: dict[str, Any] = {
        "agent_start_ms": round(runs[0][0]) if runs else None,
        "agent_playing_at_event": any(start <= onset < stop for start, stop in runs),
        "event_into_agent_ms": round(onset - runs[0][0]) if runs else None,
        "audible_stops": len(window),
        "reaction_ms": None if first_clear is None else round(first_clear - onset),
        "after_stop": after_stop,
        "quiet_after_stop_ms": None if after is None or first_clear is None else round(after[0] - first_clear),
        "other_clears": len(clears) - len(window),
    }
    if item.scenario["kind"] == "interruption" and events:
        replied = after if after_stop == "replied" else None
        out["reply_ms"] = None if replied is None else round(replied[0] - events[-1]["end_ms"])
    if not events:  # floor_onset with the agent talking: any clear is a false stop
        out["false_turn"] = bool(clears)
    return out


def _while_listening(item: Plan, runs: list[list[float]], clears: list[float]) -> dict[str, Any]:
    """Agent silent: was the caller's turn answered after its last word, how late, and did answers start early."""
    starts = [start for start, _ in runs]
    speech = item.scenario["speech"]
    out: dict[str, Any] = {"clears": len(clears)}
    if not speech:  # floor_onset without words, burst_listening: any answer is a turn taken on noise
        out["false_turn"] = bool(starts)
        return out
    first, last = speech[0]["onset_ms"], speech[-1]["end_ms"]
    gaps = [(a["end_ms"], b["onset_ms"]) for a, b in itertools.pairwise(speech)]
    pause_of = {s: next((b - a for a, b in gaps if a <= s < b + ONSET_SLACK_MS), None) for s in starts}
    paused = [pause for s, pause in pause_of.items() if pause is not None and first <= s < last]
    answer = _first(starts, last)
    out |= {
        "early_answers": sum(1 for s in starts if s < first),
        "premature_in_pause": len(paused),
        "premature_pauses_ms": sorted(paused),
        "premature_in_short_pause": sum(1 for pause in paused if pause < item.silence_ms),
        "premature_in_speech": sum(1 for s in starts if first <= s < last) - len(paused),
        "answered": answer is not None,
        "answer_delay_ms": None if answer is None else round(answer - last),
    }
    if item.scenario["kind"] == "floor_onset":
        out["false_turn"] = out["early_answers"] > 0
    return out
