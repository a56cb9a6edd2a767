"""Codec, resampler and framer: exact expectations on synthesized signals."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from pipelines.audio import (
    FRAME_BYTES_PCM16,
    FRAME_BYTES_ULAW,
    FRAME_MS,
    FRAME_SAMPLES,
    PCM16_SILENCE,
    TELEPHONY_RATE,
    ULAW_SILENCE,
    Framer,
    Resampler,
    leading_silence,
    pcm16_to_ulaw,
    silence,
    tone,
    ulaw_to_pcm16,
)

AMPLITUDE = 0.5
PEAK = AMPLITUDE * 32767


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.int64)


def odd_chunks(data: bytes) -> Iterator[bytes]:
    """Cut ``data`` at awkward sizes, including odd byte counts and single bytes."""
    sizes = (37, 113, 1, 2, 3, 320, 999, 7, 1, 1, 64)
    i = k = 0
    while i < len(data):
        size = sizes[k % len(sizes)]
        yield data[i : i + size]
        i += size
        k += 1


def test_frame_constants() -> None:
    assert (TELEPHONY_RATE, FRAME_MS, FRAME_SAMPLES) == (8000, 20, 160)
    assert (FRAME_BYTES_ULAW, FRAME_BYTES_PCM16) == (160, 320)


def test_ulaw_known_values() -> None:
    assert ulaw_to_pcm16(b"\xff") == b"\x00\x00"  # μ-law +0
    assert abs(int(samples(ulaw_to_pcm16(b"\x7f"))[0])) <= 8  # μ-law −0
    # The extremes decode to near full scale with opposite signs (0x00 negative, 0x80 positive).
    low, high = samples(ulaw_to_pcm16(b"\x00\x80"))
    assert low < -32000 and high > 32000
    assert pcm16_to_ulaw(b"\x00\x00") == b"\xff"


def test_ulaw_decode_doubles_length_and_encode_halves_it() -> None:
    ulaw = bytes(range(256)) * 2
    pcm = ulaw_to_pcm16(ulaw)
    assert len(pcm) == 2 * len(ulaw)
    assert len(pcm16_to_ulaw(pcm)) == len(ulaw)
    # Every μ-law code is a fixed point of decode → encode, except −0 (0x7F), which encodes as +0.
    codes = pcm16_to_ulaw(ulaw_to_pcm16(bytes(range(256))))
    assert [c for c in range(256) if codes[c] != c] == [0x7F]


def test_ulaw_round_trip_error_is_within_companding_bounds() -> None:
    pcm = tone(440, 1000, TELEPHONY_RATE, AMPLITUDE)
    original = samples(pcm)
    decoded = samples(ulaw_to_pcm16(pcm16_to_ulaw(pcm)))
    error = np.abs(decoded - original)
    # μ-law step size grows with amplitude: the error never exceeds half a step, ~1/32 of the value (+ a floor).
    assert np.all(error <= np.abs(original) / 32 + 16)
    assert error.max() <= 512  # largest half-step below ~16k
    snr_db = 10 * math.log10(np.sum(original.astype(float) ** 2) / np.sum(error.astype(float) ** 2))
    assert snr_db > 35


def test_pcm16_to_ulaw_rejects_half_samples() -> None:
    with pytest.raises(ValueError, match="even"):
        pcm16_to_ulaw(b"\x00\x00\x00")


def test_tone_and_silence_helpers() -> None:
    sine = samples(tone(1000, 20, 8000, AMPLITUDE))
    assert len(sine) == 160
    assert int(np.abs(sine).max()) == round(PEAK)
    assert sine[0] == 0 and sine[2] == round(PEAK)  # 1 kHz at 8 kHz: a quarter period is two samples
    assert silence(20) == bytes(320)
    assert len(silence(30, 16000)) == 960
    with pytest.raises(ValueError):
        tone(440, 20, 8000, 1.5)


def _stream(in_rate: int, out_rate: int, chunks: Iterator[bytes]) -> bytes:
    resampler = Resampler(in_rate, out_rate)
    out = b"".join(resampler.process(chunk) for chunk in chunks)
    return out + resampler.flush()


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (24000, 8000), (22050, 8000), (16000, 8000)])
def test_resampler_in_odd_chunks_matches_one_shot(in_rate: int, out_rate: int) -> None:
    signal = tone(440, 1000, in_rate, AMPLITUDE)
    one_shot = samples(_stream(in_rate, out_rate, iter([signal])))
    chunked = samples(_stream(in_rate, out_rate, odd_chunks(signal)))

    assert abs(len(one_shot) - out_rate) <= 2  # one second in → one second out, after flush
    assert len(chunked) == len(one_shot)
    assert np.abs(chunked - one_shot).max() <= 2  # libsoxr's block rounding, nothing more

    # No clicks: away from the start/end transients, no step exceeds the sine's steepest slope.
    max_slope = PEAK * 2 * math.pi * 440 / out_rate
    settle = out_rate // 100  # 10 ms
    steps = np.abs(np.diff(chunked[settle:-settle]))
    assert steps.max() <= max_slope * 1.01 + 2
    # And it is still a 440 Hz sine of the same amplitude.
    middle = chunked[settle:-settle]
    assert abs(np.abs(middle).max() - PEAK) < PEAK * 0.01
    zero_crossings = np.count_nonzero(np.diff(np.signbit(middle)))
    assert abs(zero_crossings - 2 * 440 * len(middle) / out_rate) <= 2


def test_resampling_chunks_independently_would_click() -> None:
    """Control for the continuity check above: stateless per-chunk resampling does produce jumps."""
    signal = tone(440, 200, 24000, AMPLITUDE)
    out = b""
    for i in range(0, len(signal), 960):  # 20 ms chunks, each a fresh stream
        out += _stream(24000, 8000, iter([signal[i : i + 960]]))
    steps = np.abs(np.diff(samples(out)[80:-80]))
    assert steps.max() > PEAK * 2 * math.pi * 440 / 8000 * 1.01 + 2


def test_resampler_carries_a_dangling_byte() -> None:
    signal = tone(440, 100, 16000, AMPLITUDE)
    resampler = Resampler(16000, 8000)
    parts = [resampler.process(signal[i : i + 1]) for i in range(len(signal))]  # one byte at a time
    assert all(len(p) % 2 == 0 for p in parts)
    out = samples(b"".join(parts) + resampler.flush())
    whole = samples(_stream(16000, 8000, iter([signal])))
    assert len(out) == len(whole) == 800
    assert np.abs(out - whole).max() <= 2  # a mis-aligned byte would swap sample bytes: errors in the thousands


def test_resampler_identity_passes_through_and_keeps_sample_alignment() -> None:
    resampler = Resampler(8000, 8000)
    assert resampler.passthrough
    data = bytes(range(10))
    assert resampler.process(data[:3]) == data[:2]
    assert resampler.process(data[3:]) == data[2:]
    assert resampler.process(b"\x01") == b""
    assert resampler.flush() == b""  # the lone half sample is dropped
    assert resampler.process(b"\x02\x03") == b"\x02\x03"


def test_resampler_is_reusable_after_flush_and_reset() -> None:
    signal = tone(440, 300, 24000, AMPLITUDE)
    resampler = Resampler(24000, 8000)
    first = resampler.process(signal) + resampler.flush()
    second = resampler.process(signal) + resampler.flush()
    assert first == second
    resampler.process(signal[:1001])  # a cancelled stream: buffered audio and a dangling byte
    resampler.reset()
    assert resampler.process(signal) + resampler.flush() == first


def test_resampler_rejects_bad_rates() -> None:
    with pytest.raises(ValueError):
        Resampler(0, 8000)
    with pytest.raises(ValueError):
        Resampler(8000, -1)


def test_framer_yields_exact_frames() -> None:
    framer = Framer(FRAME_BYTES_ULAW)
    data = bytes(i % 251 for i in range(1000))
    frames: list[bytes] = []
    for chunk in odd_chunks(data):
        frames += framer.push(chunk)
    assert len(frames) == 6  # 1000 // 160
    assert all(len(f) == 160 for f in frames)
    assert b"".join(frames) == data[:960]
    assert framer.pending == 40
    last = framer.flush(ULAW_SILENCE)
    assert last == data[960:] + b"\xff" * 120
    assert framer.pending == 0
    assert framer.flush(ULAW_SILENCE) is None


def test_framer_push_returns_several_frames_at_once_and_none_when_short() -> None:
    framer = Framer(FRAME_BYTES_PCM16)
    assert framer.push(b"\x01" * 319) == []
    frames = framer.push(b"\x02" * 1000)
    assert [len(f) for f in frames] == [320, 320, 320, 320]
    assert frames[0] == b"\x01" * 319 + b"\x02"
    assert framer.pending == 1319 - 1280
    assert framer.flush(PCM16_SILENCE) == b"\x02" * 39 + b"\x00" * 281


def test_framer_flush_without_padding_and_clear() -> None:
    framer = Framer(160)
    framer.push(b"abc")
    assert framer.flush(None) == b"abc"
    framer.push(b"abc")
    framer.clear()
    assert framer.flush(b"\xff") is None
    framer.push(b"x")
    with pytest.raises(ValueError):
        framer.flush(b"\x00\x00")
    with pytest.raises(ValueError):
        Framer(0)


@pytest.mark.parametrize("mulaw", [False, True])
def test_a_replys_leading_silence_is_cut_to_10_ms_so_the_caller_hears_it_sooner(mulaw: bool) -> None:
    pcm = silence(50, 16000) + tone(300, 100, 16000)
    data = pcm16_to_ulaw(pcm) if mulaw else pcm
    width = 1 if mulaw else 2
    cut = leading_silence(data, mulaw, 16000)
    assert 39 <= cut / width / 16 <= 41  # 50 ms of silence, 10 ms of it kept before the sound
    assert leading_silence(tone(300, 100, 16000), False, 16000) == 0  # starts loud: nothing to cut
    quiet = silence(30, 16000)
    assert leading_silence(quiet, False, 16000) == len(quiet)  # nothing audible yet: all of it goes
    assert leading_silence(quiet + b"\x01", False, 16000) == len(quiet)  # never half a sample
