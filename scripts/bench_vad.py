"""Per-frame cost of the caller-audio path: μ-law decode, each VAD backend, and the playout codec path.

Every call pays these costs 50 times a second, so they bound how many calls one core can carry.
Usage: python scripts/bench_vad.py [--frames 10000]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from pipelines.audio import (
    FRAME_BYTES_PCM16,
    FRAME_BYTES_ULAW,
    FRAME_MS,
    Framer,
    Resampler,
    pcm16_to_ulaw,
    ulaw_to_pcm16,
)
from pipelines.vad import AdaptiveVad, SileroVad, Vad, WebRtcVad


def caller_frames(count: int, talking_share: float = 0.5) -> list[bytes]:
    """μ-law frames: speech-like voicing for ``talking_share`` of each 10 s (1 s on, 1 s off at the default),
    the rest line noise, so VADs see both."""
    rate = 8000
    t = np.arange(count * 160) / rate
    phase = np.cumsum((120 + 20 * np.sin(2 * np.pi * 3 * t)) / rate)
    voicing = sum(np.sin(2 * np.pi * k * phase) / k for k in range(1, 25)) * 4000
    noise = np.random.default_rng(1).normal(0, 100, len(t))
    talking = (t.astype(int) % 2) == 0 if talking_share == 0.5 else (t % 10) < 10 * talking_share
    pcm = np.where(talking, voicing, 0.0) + noise
    ulaw = pcm16_to_ulaw(np.clip(pcm, -32768, 32767).astype("<i2").tobytes())
    return [ulaw[i : i + FRAME_BYTES_ULAW] for i in range(0, len(ulaw), FRAME_BYTES_ULAW)]


def per_frame_us(fn: Callable[[bytes], object], frames: list[bytes], repeats: int = 3) -> float:
    """Best of ``repeats`` passes, in µs per frame (best-of filters out scheduler noise)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for frame in frames:
            fn(frame)
        best = min(best, time.perf_counter() - start)
    return best / len(frames) * 1e6


def resident_mb() -> float:
    """Current resident set size (Linux /proc), for the per-instance memory of Silero."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def vad_step(vad: Vad) -> Callable[[bytes], object]:
    return lambda ulaw: vad.is_speech(ulaw_to_pcm16(ulaw))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000, help="20 ms frames per measurement")
    args = parser.parse_args()

    ulaw = caller_frames(args.frames)
    pcm = [ulaw_to_pcm16(f) for f in ulaw]
    assert all(len(f) == FRAME_BYTES_PCM16 for f in pcm)
    rows: list[tuple[str, float]] = [
        ("μ-law → PCM16 decode", per_frame_us(ulaw_to_pcm16, ulaw)),
        ("PCM16 → μ-law encode", per_frame_us(pcm16_to_ulaw, pcm)),
    ]
    for aggressiveness in (0, 2, 3):
        rows.append((f"WebRTC VAD ({aggressiveness}) alone", per_frame_us(WebRtcVad(aggressiveness).is_speech, pcm)))
    rows.append(("decode + WebRTC VAD (2)", per_frame_us(vad_step(WebRtcVad(2)), ulaw)))
    rows.append(("Silero VAD alone", per_frame_us(SileroVad().is_speech, pcm)))
    rows.append(("decode + Silero VAD", per_frame_us(vad_step(SileroVad()), ulaw)))
    rows.append(("decode + adaptive VAD (half speech)", per_frame_us(vad_step(AdaptiveVad()), ulaw)))
    quiet = caller_frames(args.frames, talking_share=0.1)
    rows.append(("decode + adaptive VAD (10 % speech)", per_frame_us(vad_step(AdaptiveVad()), quiet)))

    # Playout direction: 20 ms of 24 kHz TTS audio → 8 kHz → μ-law → 160-byte frames.
    tts_chunk = Resampler(8000, 24000).process(b"".join(pcm[:100]))[: 960 * 40]
    tts = [tts_chunk[i : i + 960] for i in range(0, len(tts_chunk), 960)] * (args.frames // 40)
    down, framer = Resampler(24000, 8000), Framer(FRAME_BYTES_ULAW)
    rows.append(
        (
            "resample 24k→8k (MQ) + encode + frame",
            per_frame_us(lambda c: framer.push(pcm16_to_ulaw(down.process(c))), tts),
        )
    )

    print(f"Per 20 ms frame, best of runs over {args.frames} frames (one core):")
    width = max(len(name) for name, _ in rows)
    for name, us in rows:
        print(f"  {name:<{width}}  {us:8.2f} µs   ({us / (FRAME_MS * 1000) * 100:.3f}% of real time)")

    rss_before = resident_mb()
    start = time.perf_counter()
    instances = [AdaptiveVad() for _ in range(200)]
    build_ms = (time.perf_counter() - start) / len(instances) * 1e3
    rss_mb = (resident_mb() - rss_before) / len(instances)
    print(f"Silero/adaptive VAD per call (shared model): build {build_ms:.2f} ms, ~{rss_mb * 1024:.0f} KB resident")
    del instances


if __name__ == "__main__":
    main()
