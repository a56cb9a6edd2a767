"""Background noises for the turn-taking set: babble, music, café, car, pink and white, all numpy and seeded.

Every generator returns float64 audio at 8 kHz with a unit RMS *inside the telephone band* (300-3400 Hz), so
``noise * 10 ** (dbfs / 20)`` puts the background at ``dbfs`` as the VAD sees it after the band-pass, and an SNR
against the caller's active speech level (also measured in the band) is the SNR on the line. Sound below 300 Hz
(a car's engine rumble) is generated, then mostly removed by the telephone path like on a real call.

Babble is real synthesized speech: ``BabbleBank`` holds one loop per talker (different espeak-ng/Festival voices
saying different sentences with breathing gaps); a scenario's babble sums the loops from random offsets.
"""

from __future__ import annotations

import numpy as np

from scripts.turn_quality.synth import RATE, Voice, bandpass, ms_to_samples, pink_noise

BACKGROUNDS = ("pink", "babble", "music", "cafe", "car")  # the noisy-turn sweep (the list, plus pink)
FLOOR_COLOURS = ("white", "pink")

# Talkers of the babble: other people in the room, not the caller (voices and pitches unlike the callers').
BABBLE_ESPEAK = (
    Voice("espeak", "en-us+m1", 1.0, 45, -24.0),
    Voice("espeak", "en-gb+f1", 1.05, 62, -24.0),
    Voice("espeak", "en-us+f5", 0.95, 58, -24.0),
    Voice("espeak", "en-gb-scotland+m2", 0.9, 40, -24.0),
    Voice("espeak", "en-029+m4", 1.1, 50, -24.0),
    Voice("espeak", "en-gb-x-rp+m6", 1.0, 38, -24.0),
)
BABBLE_FESTIVAL = (Voice("festival", "slt", 0.93, 3, -24.0), Voice("festival", "kal", 1.08, 0, -24.0))
BABBLE_SENTENCES = (
    "did you see the game last night, it went to extra time",
    "we should get the kids new shoes before school starts",
    "the traffic on the bridge was terrible this morning",
    "she said the meeting moved to Thursday afternoon",
    "I think the blue one looks better on you",
    "they finally opened that bakery on the corner",
    "my brother is flying in from Chicago next week",
    "can you pass me the salt and the pepper please",
    "the weather is supposed to clear up by the weekend",
    "honestly I have not read the book yet",
    "we waited almost an hour for the bus",
    "he keeps forgetting to water the plants",
    "let's split the bill, I had the soup",
    "the new phone has a much better camera",
    "I heard they are raising the rent again",
    "remember to call your grandmother tonight",
    "the concert was sold out in ten minutes",
    "we are painting the kitchen a pale yellow",
    "the printer at work jammed three times today",
    "my sister started a new job at the hospital",
    "this coffee is way too strong for me",
    "they are building a new park by the river",
    "I lost my keys twice this week already",
    "the dog barked at the mailman all morning",
    "we need more milk and some eggs",
    "the train was late because of the snow",
    "she plays the piano every single evening",
    "I still can't believe how fast the year went",
    "his cousin is getting married in June",
    "the museum is free on the first Sunday",
    "we should try that Thai place downtown",
    "the kids want pizza for dinner again",
)
SENTENCES_PER_TALKER = 4


def band_rms(audio: np.ndarray) -> float:
    """RMS of ``audio`` inside the telephone band."""
    return float(np.sqrt(np.mean(bandpass(audio) ** 2)))


def unit_band(audio: np.ndarray) -> np.ndarray:
    return audio / (band_rms(audio) + 1e-20)


def _pow2(samples: int) -> int:
    return 1 << max(samples - 1, 1).bit_length()  # FFTs of odd lengths can be 100x slower


def coloured_noise(samples: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise with a power spectrum ∝ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS in the telephone band."""
    size = _pow2(samples)
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.fft.rfftfreq(size, 1 / RATE)
    spectrum[1:] /= freqs[1:] ** (exponent / 2)
    spectrum[0] = 0
    return unit_band(np.fft.irfft(spectrum, n=size)[:samples])


def white_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    return coloured_noise(samples, rng, 0.0)


def fft_convolve(audio: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``np.convolve(audio, kernel)[:len(audio)]`` through FFTs (long kernels: reverberation)."""
    size = _pow2(len(audio) + len(kernel))
    out = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(kernel, size), n=size)
    return out[: len(audio)]


def room_impulse(rng: np.random.Generator, decay_s: float = 0.12, length_s: float = 0.4) -> np.ndarray:
    """A diffuse room: a direct path and an exponentially decaying noise tail (distant talkers in a café)."""
    n = ms_to_samples(length_s * 1000)
    t = np.arange(n) / RATE
    tail = rng.standard_normal(n) * np.exp(-t / decay_s) * 0.04
    tail[0] = 1.0
    return tail


class BabbleBank:
    """One loop per talker: their sentences with 150-600 ms breathing gaps, each at the same level."""

    def __init__(self, talkers: list[list[np.ndarray]], rng: np.random.Generator) -> None:
        if len(talkers) < 2:
            raise ValueError("babble needs several talkers")
        self.loops: list[np.ndarray] = []
        for sentences in talkers:
            parts: list[np.ndarray] = []
            for sentence in sentences:
                parts += [sentence / (band_rms(sentence) + 1e-20), np.zeros(ms_to_samples(rng.uniform(150, 600)))]
            self.loops.append(np.concatenate(parts))
        self._reverb = room_impulse(rng)

    @staticmethod
    def jobs(festival: bool, talkers: int | None = None) -> list[tuple[str, Voice]]:
        """The (sentence, voice) pairs to synthesize: each talker says its own sentences."""
        voices = BABBLE_ESPEAK + (BABBLE_FESTIVAL if festival else ())
        voices = voices[:talkers] if talkers else voices
        per = SENTENCES_PER_TALKER if talkers is None else 1
        return [
            (BABBLE_SENTENCES[(i * SENTENCES_PER_TALKER + k) % len(BABBLE_SENTENCES)], voice)
            for i, voice in enumerate(voices)
            for k in range(per)
        ]

    def mix(self, samples: int, rng: np.random.Generator, *, reverb: bool = False) -> np.ndarray:
        """Every talker from a random point of their loop, summed; unit RMS in the band.

        Each talker is at a random distance (0 to -9 dB): a few near ones stand out as in a real room. (Eight
        talkers at one level blur into a steady noise that Silero no longer calls speech.)
        """
        out = np.zeros(samples)
        for loop in self.loops:
            start = int(rng.integers(len(loop)))
            reps = (start + samples) // len(loop) + 1
            out += np.tile(loop, reps)[start : start + samples] * 10 ** (-rng.uniform(0, 9) / 20)
        if reverb:
            out = fft_convolve(out, self._reverb)
        return unit_band(out)


# --- music -------------------------------------------------------------------------------------------------

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_PENTATONIC = (0, 2, 4, 7, 9)
_PROGRESSION = (0, 4, 5, 3)  # I - V - vi - IV, as scale degrees


def _hz(midi: float) -> float:
    return float(440.0 * 2 ** ((midi - 69) / 12))


def _tone(freq: float, seconds: float, harmonics: int, rolloff: float, decay_s: float) -> np.ndarray:
    """A note: ``harmonics`` partials at amplitude k^-rolloff, 10 ms attack, exponential decay."""
    t = np.arange(ms_to_samples(seconds * 1000)) / RATE
    wave = np.zeros_like(t)
    for k in range(1, harmonics + 1):
        if k * freq < RATE / 2 - 100:
            wave += np.sin(2 * np.pi * k * freq * t + 0.3 * k) / k**rolloff
    return wave * np.minimum(1.0, t / 0.01) * np.exp(-t / decay_s)


def _hit(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One drum hit: kick (a falling sine), snare (noise and a 180 Hz body) or hi-hat (bright short noise)."""
    if kind == "kick":
        t = np.arange(ms_to_samples(250)) / RATE
        phase = 2 * np.pi * np.cumsum(50 + 90 * np.exp(-t / 0.03)) / RATE
        return 1.6 * np.sin(phase) * np.exp(-t / 0.09)
    if kind == "snare":
        t = np.arange(ms_to_samples(200)) / RATE
        body = 0.5 * np.sin(2 * np.pi * 180 * t) * np.exp(-t / 0.04)
        return 0.8 * (bandpass(rng.standard_normal(len(t)), 1000.0, 3500.0) * 2.5 + body) * np.exp(-t / 0.06)
    t = np.arange(ms_to_samples(60)) / RATE
    return 0.35 * bandpass(rng.standard_normal(len(t)), 2800.0, 3900.0) * 3 * np.exp(-t / 0.015)


def music(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Pop-like hold music: chords with harmonics, a bass, a pentatonic melody and a drum pattern."""
    bpm = rng.uniform(88, 128)
    beat = 60.0 / bpm
    key = int(rng.integers(55, 65))
    out = np.zeros(samples + ms_to_samples(2000))

    def place(at_s: float, audio: np.ndarray) -> None:
        start = ms_to_samples(at_s * 1000)
        if start < 0:  # a note that began before the excerpt
            audio, start = audio[-start:], 0
        if start < samples:
            end = min(len(out), start + len(audio))
            out[start:end] += audio[: end - start]

    offset = rng.uniform(0, 4 * beat)  # the loop does not start on a bar line
    bars = int(samples / RATE / (4 * beat)) + 2
    note = key + _PENTATONIC[int(rng.integers(len(_PENTATONIC)))]
    for bar in range(bars):
        at = bar * 4 * beat - offset
        root = _PROGRESSION[bar % len(_PROGRESSION)]
        chord = [key + _MAJOR[(root + step) % 7] + 12 * ((root + step) // 7) for step in (0, 2, 4)]
        for midi in chord:  # a pad held over the bar, re-struck on beat 3
            for half in (0, 2):
                place(at + half * beat, 0.22 * _tone(_hz(midi), 2 * beat, 6, 1.2, 1.2 * beat))
        place(at, 0.5 * _tone(_hz(chord[0] - 24), 4 * beat, 8, 1.0, 1.5 * beat))  # bass (harmonics survive)
        for eighth in range(8):
            when = at + eighth * beat / 2
            place(when, _hit("hat", rng))
            if eighth in (0, 4) or (eighth == 5 and rng.random() < 0.5):
                place(when, _hit("kick", rng))
            if eighth in (2, 6):
                place(when, _hit("snare", rng))
            if rng.random() < 0.7:  # the melody: a random walk on the pentatonic scale, an octave up
                step = int(rng.integers(-2, 3))
                degree = min(max(_PENTATONIC.index((note - key) % 12) + step, 0), len(_PENTATONIC) - 1)
                note = key + _PENTATONIC[degree]
                length = beat / 2 * float(rng.choice([1, 1, 2]))
                place(when, 0.3 * _tone(_hz(note + 12), length, 5, 0.8, length))
    return unit_band(out[:samples])


# --- café and car ------------------------------------------------------------------------------------------


def clink(rng: np.random.Generator) -> np.ndarray:
    """A cup or cutlery clink: a 2 ms click and 2-4 inharmonic partials (1.2-3.9 kHz) ringing for 15-60 ms."""
    t = np.arange(ms_to_samples(250)) / RATE
    out = np.zeros_like(t)
    for _ in range(int(rng.integers(2, 5))):
        out += np.sin(2 * np.pi * rng.uniform(1200, 3900) * t + rng.uniform(0, 6.3)) * np.exp(
            -t / rng.uniform(0.015, 0.06)
        )
    click = rng.standard_normal(ms_to_samples(2))
    out[: len(click)] += click
    return out


def cafe(samples: int, rng: np.random.Generator, bank: BabbleBank) -> np.ndarray:
    """A café: reverberant babble kept low, cutlery and cup clinks (≈1 a second) and pink room noise."""
    base = 0.6 * bank.mix(samples, rng, reverb=True) + 0.25 * pink_noise(samples, rng)
    clinks = np.zeros(samples + ms_to_samples(300))
    at = rng.uniform(0, 1.0)
    while at * RATE < samples:
        sound = clink(rng)
        start = ms_to_samples(at * 1000)
        clinks[start : start + len(sound)] += sound * rng.uniform(0.5, 1.5)
        at += rng.exponential(1.0) + 0.08
    return unit_band(base + clinks[:samples])


def car(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Inside a moving car: engine firing harmonics (30-150 Hz, rpm drifting), brown rumble, road and wind."""
    t = np.arange(samples) / RATE
    firing = rng.uniform(30, 55) * (1 + 0.04 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t))
    phase = 2 * np.pi * np.cumsum(firing) / RATE
    engine = np.zeros(samples)
    for k in range(1, 6):
        engine += np.sin(k * phase + rng.uniform(0, 6.3)) / k
    rumble = coloured_noise(samples, rng, 2.0)
    road = coloured_noise(samples, rng, 1.3) * (1 + 0.25 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t))
    wind = bandpass(rng.standard_normal(samples), 300.0, 1500.0)
    wind *= 1 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t + rng.uniform(0, 6.3))
    wind /= band_rms(wind) + 1e-20
    return unit_band(3.0 * engine + 2.0 * rumble + road + 0.5 * wind)


def background(kind: str, samples: int, rng: np.random.Generator, bank: BabbleBank | None = None) -> np.ndarray:
    """``kind`` (pink, white, babble, music, cafe, car) of ``samples`` length, unit RMS in the telephone band."""
    if kind == "pink":
        return pink_noise(samples, rng)
    if kind == "white":
        return white_noise(samples, rng)
    if kind == "music":
        return music(samples, rng)
    if kind == "car":
        return car(samples, rng)
    if kind in ("babble", "cafe"):
        if bank is None:
            raise ValueError(f"{kind} needs a BabbleBank")
        return bank.mix(samples, rng) if kind == "babble" else cafe(samples, rng, bank)
    raise ValueError(f"unknown background {kind!r}")
