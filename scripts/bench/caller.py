"""Caller worker: runs in its own process, places simulated Twilio calls, writes per-call measurements as JSON.

Kept apart from the server (and from the benchmark driver) so the caller's CPU never steals the server's
event loop; the driver measures this process's CPU too. Run as ``python -m scripts.bench.caller SPEC OUT``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from pipelines.audio import frame_rms, ulaw_to_pcm16
from pipelines.turn_detector import FRAME_MS, EndOfTurn, TurnDetector
from pipelines.vad import make_vad
from scripts.turn_quality.score import load_config, resolve
from scripts.twilio_sim import CallConfig, SimulatedCall, TurnMetrics, caller_audio, silence_audio
from scripts.twilio_sim.caller_audio import CallerAudio
from scripts.twilio_sim.stream import ULAW_SILENCE_FRAME, MediaStream

UNDERRUN_GAP_S = 0.005  # a hole in agent audio longer than this, inside one reply, is an audible underrun
_offsets: dict[tuple[int, int], tuple[CallerAudio, float]] = {}  # (id(clip), silence timeout) → (clip kept, ms)


def underruns(stream: MediaStream) -> tuple[int, float]:
    """Gaps inside a reply: agent audio that stopped and restarted with no caller turn in between.

    Replies are split at caller speech onsets and at ``clear``; within one reply every segment should start
    exactly where the previous one ended (the server keeps ~200 ms queued ahead). Returns (count, worst gap ms).
    """
    cuts = sorted([t.onset for t in stream.turns] + list(stream.counters.clears))
    count, worst, prev_end, cut_i = 0, 0.0, None, 0
    for seg in stream.playback.segments:
        while cut_i < len(cuts) and cuts[cut_i] <= seg.received_at:
            prev_end, cut_i = None, cut_i + 1
        if prev_end is not None and seg.start - prev_end > UNDERRUN_GAP_S:
            count += 1
            worst = max(worst, (seg.start - prev_end) * 1000)
        prev_end = seg.end
    return count, worst


def detector_offset_ms(clip: CallerAudio, silence_timeout_ms: int) -> float:
    """Where the engine's turn detector puts the end of this clip's speech, after the caller's last loud frame.

    The caller times voice-to-voice from its last loud frame; the server's silenceTimeoutMs counts from the speech
    end its detector decides (VAD hangover, minus the tail trim). Replaying the clip through the same detector
    and defaults offline gives that offset, so "latency − silence timeout − offset" is what Voicex's code added.
    """
    settings = resolve(load_config(), {"silenceTimeoutMs": silence_timeout_ms}, {})
    vad = make_vad(settings.vad, settings.vad_aggressiveness)  # the agent's default VAD, as the server builds it
    detector = TurnDetector(settings, 0, wait_for_caller=False)
    frames = list(clip.frames) + [ULAW_SILENCE_FRAME] * (silence_timeout_ms // FRAME_MS + 10)
    loud = [i for i, s in enumerate(clip.speech) if s]
    for i, frame in enumerate(frames):
        pcm = ulaw_to_pcm16(frame)
        for event in detector.on_frame(i * FRAME_MS, vad.is_speech(pcm), frame_rms(pcm)):
            if isinstance(event, EndOfTurn) and loud:
                return float(event.speech_end_ms - (loud[-1] + 1) * FRAME_MS)
    return 0.0


def clip_offset_ms(clip: CallerAudio, silence_timeout_ms: int) -> float:
    """:func:`detector_offset_ms`, worked out once per clip and process (~6 ms of VAD each, not once per call)."""
    key = (id(clip), silence_timeout_ms)
    if key not in _offsets:
        _offsets[key] = (clip, detector_offset_ms(clip, silence_timeout_ms))
    return _offsets[key][1]


async def run_one(spec: dict[str, Any], index: int, http: aiohttp.ClientSession, clips: list[CallerAudio]) -> dict:
    """One call following ``spec["mode"]``: talk (turns), barge (talk over each reply), hold (stay silent)."""
    cfg = CallConfig(**spec["config"], noise_dbfs=spec.get("noise_dbfs"))
    call = SimulatedCall(cfg, http)
    duration, mode = float(spec["duration_s"]), spec["mode"]
    out: dict[str, Any] = {"index": index}
    spoken: list[int] = []  # which clip each caller turn used
    roles: dict[int, str] = {}  # barge mode: turn index → "normal" (said to a silent agent) or "barge" (over its reply)
    try:
        await asyncio.sleep(index * float(spec.get("stagger_ms", 0)) / 1000)
        if await call.dial():
            deadline = time.monotonic() + duration
            await call.wait_for_agent_silence(timeout=15, quiet_ms=300)
            turn = 0
            while not call.ended and time.monotonic() < deadline:
                clip = clips[(index + turn) % len(clips)]
                spoken.append((index + turn) % len(clips))
                turn += 1
                if mode == "hold":
                    await call.silence(min(1000, int((deadline - time.monotonic()) * 1000) + 20))
                elif mode == "barge":  # a plain turn, then talk over the agent's reply to it
                    said = await call.say(clip)
                    barged = await call.barge_in_after(int(spec.get("barge_after_ms", 300)), clip, timeout=10)
                    for role, turn_said in (("normal", said), ("barge", barged)):
                        if turn_said is not None:
                            roles[turn_said.index] = role
                    await call.wait_for_agent_silence(timeout=15, quiet_ms=300)
                else:
                    await call.say(clip)
                    await call.wait_for_agent_silence(timeout=15, quiet_ms=300)
            await call.hangup()
    except Exception as exc:  # a failed call is a measurement, not a crash of the run
        out["exception"] = f"{type(exc).__name__}: {exc}"
    finally:
        await call.close()
    result = call.result()

    def by_role(role: str) -> list[TurnMetrics]:
        return [t for t in result.turns if roles.get(t.index) == role]

    offsets = [clip_offset_ms(c, int(spec.get("silence_timeout_ms", 500))) for c in clips]
    from_detector_end = [
        t.latency_ms - offsets[spoken[i]]
        for i, t in enumerate(result.turns)
        if t.latency_ms is not None and i < len(spoken) and mode == "talk"
    ]
    out.update(
        call_id=result.custom_parameters.get("callId"),
        from_detector_end_ms=from_detector_end,
        outcome=result.outcome if "exception" not in out else "error",
        error=result.error or out.get("exception"),
        latencies_ms=result.latencies_ms,
        barge_ins_ms=result.barge_ins_ms,
        # voice-to-voice per role (barge mode): the reply to a plain turn, and the reply to the interruption
        normal_reply_ms=[t.latency_ms for t in by_role("normal") if t.latency_ms is not None],
        barge_reply_ms=[t.latency_ms for t in by_role("barge") if t.latency_ms is not None],
        unanswered_barges=sum(1 for t in by_role("barge") if t.latency_ms is None),
        interrupted_turns=sum(1 for t in result.turns if t.interrupted_agent),
        violations=result.violation_count,
        max_send_lag_ms=result.max_send_lag_ms,
        server_closed=result.server_closed,
        frames_sent=result.frames_sent,
        media_received=result.media_received,
    )
    out["underruns"], out["worst_gap_ms"] = underruns(call.stream) if call.stream else (0, 0.0)
    return out


async def main(spec: dict[str, Any], clips: list[CallerAudio]) -> list[dict]:
    if spec["mode"] == "hold":
        clips = [silence_audio(1000)]
    for clip in clips:  # before any call: the VAD replay (a model load for Silero) must not stall live calls
        clip_offset_ms(clip, int(spec.get("silence_timeout_ms", 500)))
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        tasks = [run_one(spec, i, http, clips) for i in spec["indices"]]
        return list(await asyncio.gather(*tasks))


if __name__ == "__main__":
    spec_path, out_path = sys.argv[1], sys.argv[2]
    spec = json.loads(Path(spec_path).read_text())
    results = asyncio.run(main(spec, [caller_audio(Path(p).read_bytes()) for p in spec["clips"]]))
    Path(out_path).write_text(json.dumps(results))
