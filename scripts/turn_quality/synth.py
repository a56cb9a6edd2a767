"""Signal building blocks for the turn-taking set: espeak-ng speech, the telephone channel, noises, labels.

Everything is float64 at 8 kHz in [-1, 1) until ``telephone()`` band-limits it to 300-3400 Hz and puts it
through a G.711 μ-law round trip, which is exactly what the server's VAD sees after ``ulaw_to_pcm16``.
Random parts take an explicit ``numpy.random.Generator`` so a set is reproducible from its seed.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from pipelines.audio import TELEPHONY_RATE, pcm16_to_ulaw, ulaw_to_pcm16

RATE = TELEPHONY_RATE
_FIR_TAPS = 255  # 32 ms at 8 kHz: ~40 dB stop band, group delay compensated by mode="same"
LABEL_FLOOR_DB = -40.0  # a 5 ms window is speech when within 40 dB of the utterance's loudest window


def ms_to_samples(ms: float) -> int:
    return round(ms * RATE / 1000)


def samples_to_ms(samples: int) -> int:
    return round(samples * 1000 / RATE)


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def have_festival() -> bool:
    """Festival's ``text2wave`` with the two English voices the set uses (Debian: festival, festvox-us-slt-hts,
    festvox-kallpc16k)."""
    voices = Path("/usr/share/festival/voices")
    return (
        shutil.which("text2wave") is not None
        and (voices / "us" / "cmu_us_slt_arctic_hts").is_dir()
        and (voices / "english" / "kal_diphone").is_dir()
    )


@dataclass(frozen=True)
class Voice:
    """A synthetic caller. ``engine`` espeak: ``name`` is an espeak-ng voice, ``pitch`` 0-99; festival: ``name`` is
    ``slt`` (HTS voice trained on a real speaker; ``pitch`` shifts semitones) or ``kal`` (diphones cut from real
    recordings). ``speed`` is relative to the engine's normal rate; ``level_dbfs`` is the active speech level."""

    engine: str
    name: str
    speed: float
    pitch: int
    level_dbfs: float

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.name}"


_FESTIVAL_VOICES = {"slt": "cmu_us_slt_arctic_hts", "kal": "kal_diphone"}


def _synth_command(text: str, voice: Voice, speed: float, path: Path) -> list[str]:
    if voice.engine == "espeak":
        if not have_espeak():
            raise RuntimeError("espeak-ng is not installed (Debian/Ubuntu: apt-get install -y espeak-ng)")
        wpm = round(175 * speed)
        return ["espeak-ng", "-v", voice.name, "-s", str(wpm), "-p", str(voice.pitch), "-w", str(path), text]
    if voice.engine == "festival":
        if not have_festival():
            raise RuntimeError(
                "festival is not installed (apt-get install -y festival festvox-us-slt-hts festvox-kallpc16k)"
            )
        setup = [f"(voice_{_FESTIVAL_VOICES[voice.name]})"]
        if voice.name == "slt":
            setup.append(
                f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {speed:.3f})'
                f' (list "-fm" {voice.pitch:.1f}))))'
            )
        else:
            setup.append(f"(Parameter.set 'Duration_Stretch {1 / speed:.3f})")
        evals = [arg for expr in setup for arg in ("-eval", expr)]
        return ["text2wave", *evals, "-o", str(path)]
    raise ValueError(f"unknown synthesis engine {voice.engine!r}")


def synthesize(text: str, voice: Voice, speed: float | None = None) -> np.ndarray:
    """Speak ``text`` and return it at 8 kHz, trimmed to its first and last sample audible in the telephone band."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "utt.wav"
        command = _synth_command(text, voice, voice.speed if speed is None else speed, path)
        feed = text if voice.engine == "festival" else None
        subprocess.run(command, check=True, capture_output=True, input=feed, text=True)
        with wave.open(str(path), "rb") as wav:
            rate = wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    audio: np.ndarray = soxr.resample(samples, rate, RATE, quality="HQ")
    # Trim (and so label) by what the telephone band carries: a nasal "m" or a low vowel tail below 300 Hz is
    # sound in the synthesizer's output but silence on the line.
    onset, end = active_span(bandpass(audio))
    return audio[onset:end]


def _window_db(audio: np.ndarray, window: int) -> np.ndarray:
    count = len(audio) // window
    frames = audio[: count * window].reshape(count, window)
    rms = np.sqrt(np.mean(frames**2, axis=1) + 1e-20)
    levels: np.ndarray = 20 * np.log10(rms)
    return levels


def active_span(audio: np.ndarray, floor_db: float = LABEL_FLOOR_DB) -> tuple[int, int]:
    """First and one-past-last sample of the 5 ms windows within ``floor_db`` of the loudest window."""
    window = ms_to_samples(5)
    levels = _window_db(audio, window)
    if levels.size == 0:
        return 0, 0
    active = np.flatnonzero(levels >= levels.max() + floor_db)
    return int(active[0]) * window, (int(active[-1]) + 1) * window


def active_rms(audio: np.ndarray, floor_db: float = -30.0) -> float:
    """RMS over the 20 ms windows within ``floor_db`` of the loudest (a simple active speech level)."""
    window = ms_to_samples(20)
    count = len(audio) // window
    frames = audio[: count * window].reshape(count, window)
    power = np.mean(frames**2, axis=1)
    if power.size == 0 or power.max() <= 0:
        return 0.0
    loud = power[power >= power.max() * 10 ** (floor_db / 10)]
    return float(np.sqrt(loud.mean()))


def set_level(audio: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale ``audio`` so its active level in the telephone band is ``dbfs`` (dB relative to an RMS of 1.0)."""
    level = active_rms(bandpass(audio))
    scaled: np.ndarray = audio if level == 0 else audio * (10 ** (dbfs / 20) / level)
    return scaled


def _lowpass_kernel(cutoff_hz: float, taps: int) -> np.ndarray:
    n = np.arange(taps) - (taps - 1) / 2
    kernel: np.ndarray = 2 * cutoff_hz / RATE * np.sinc(2 * cutoff_hz / RATE * n)
    return kernel


def bandpass_kernel(low_hz: float = 300.0, high_hz: float = 3400.0, taps: int = _FIR_TAPS) -> np.ndarray:
    """Windowed-sinc (Blackman) linear-phase band-pass: low-pass(high) minus low-pass(low)."""
    kernel: np.ndarray = (_lowpass_kernel(high_hz, taps) - _lowpass_kernel(low_hz, taps)) * np.blackman(taps)
    return kernel


_BANDPASS = bandpass_kernel()


def bandpass(audio: np.ndarray, low_hz: float = 300.0, high_hz: float = 3400.0) -> np.ndarray:
    kernel = _BANDPASS if (low_hz, high_hz) == (300.0, 3400.0) else bandpass_kernel(low_hz, high_hz)
    return np.convolve(audio, kernel, mode="same")


def telephone(audio: np.ndarray) -> bytes:
    """The caller's channel: 300-3400 Hz band-pass, then μ-law encode and decode; returns PCM16 bytes."""
    band = bandpass(audio)
    pcm = np.clip(np.round(band * 32768.0), -32768, 32767).astype("<i2").tobytes()
    return ulaw_to_pcm16(pcm16_to_ulaw(pcm))


def pink_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Stationary 1/f noise (road, fan, room tone) with unit RMS inside the telephone band (300-3400 Hz).

    The band is what the caller's line carries, so an SNR set with this noise is the SNR the VAD sees.
    """
    size = 1 << max(samples - 1, 1).bit_length()  # a power of two: FFTs of odd lengths can be 100x slower
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.fft.rfftfreq(size, 1 / RATE)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n=size)[:samples]
    in_band = np.fft.irfft(np.where((freqs >= 300) & (freqs <= 3400), spectrum, 0), n=size)[:samples]
    unit: np.ndarray = noise / (np.sqrt(np.mean(in_band**2)) + 1e-20)
    return unit


def noise_burst(duration_ms: int, rng: np.random.Generator, kind: str = "cough") -> np.ndarray:
    """A synthesized cough or bump: band-limited noise with a fast attack and an exponential decay, unit peak RMS.

    ``cough``: 400-2500 Hz with a 10 ms attack and a decay over the burst (a glottal burst of breath);
    ``thump``: 80-800 Hz (a handset knock or a door); ``hiss``: 1500-3800 Hz (wind on the microphone, a rustle).
    """
    bands = {"cough": (400.0, 2500.0), "thump": (80.0, 800.0), "hiss": (1500.0, 3800.0)}
    low, high = bands[kind]
    samples = ms_to_samples(duration_ms)
    pad = _FIR_TAPS
    noise = rng.standard_normal(samples + 2 * pad)
    noise = np.convolve(noise, bandpass_kernel(low, high), mode="same")[pad : pad + samples]
    t = np.arange(samples) / RATE
    attack = np.minimum(1.0, t / 0.010)
    decay = np.exp(-t / (duration_ms / 1000 / 2.5))
    burst = noise * attack * decay
    if kind == "cough":  # a voiced "hə" colouring: amplitude modulation at a low pitch
        burst *= 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(110, 180) * t)
    peak = np.sqrt(np.max(np.convolve(burst**2, np.ones(ms_to_samples(20)) / ms_to_samples(20), mode="same")))
    unit: np.ndarray = burst / (peak + 1e-20)
    return unit


def write_wav(path: Path, pcm16: bytes) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm16)


def read_wav(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        if (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) != (1, 2, RATE):
            raise ValueError(f"{path}: expected mono 16-bit {RATE} Hz")
        return wav.readframes(wav.getnframes())
