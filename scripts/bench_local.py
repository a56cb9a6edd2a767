"""Per-stage latencies of the embedded offline stack on this machine, and the caller's wait they add up to.

    .venv/bin/python scripts/bench_local.py [--repeat 5]

Measures, through the same provider classes a call uses (pool workers included): model load; one whisper
pass on a 2.5 s utterance (and, for comparison, faster-whisper's stock 30 s-window ``transcribe``); the
streaming STT's final after the caller stops (speech streamed in real time); SmolLM2 time to first token
for a new conversation (cold) and for the next turn of the same one (cached prefix), and to its first
clause; Piper and eSpeak NG time to first audio for a short clause. Then it adds up the budget from the end
of the caller's speech to the first agent audio when the turn ends after 300 ms of silence (silenceTimeoutMs;
the STT's own endpointing is 300 ms too). Medians of ``--repeat`` runs.
Needs the ``local`` extra. Numbers depend on what else the machine runs: the load average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import numpy as np
import soxr

from providers.base import ChatMessage, LLMOptions, Transcript, TTSOptions
from providers.local import create, models
from providers.local.llm import LocalLlamaLLM
from providers.local.stt import LocalWhisperSTT
from providers.local.tts import EspeakTTS, PiperTTS

SILENCE_TIMEOUT_MS = 300  # the caller's silence that ends the turn (silenceTimeoutMs)
ENDPOINTING_MS = 300  # the STT's own pause before a final (endpointingMs), at most SILENCE_TIMEOUT_MS
FRAME = 640  # 20 ms at 16 kHz PCM16
_CLAUSE_END = re.compile(r"[.!?](\s|$)|[,;:]\s")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.0f} ms"


def spread(values: list[float]) -> str:
    """Median, and the best run: on a shared machine the best is closest to an idle one."""
    return f"{ms(statistics.median(values))}  (best {min(values) * 1000:.0f} ms)"


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


async def utterance(piper: PiperTTS, seconds: float = 2.5) -> bytes:
    """A sentence spoken by Piper, at 16 kHz, cut or padded to ``seconds``."""
    pcm = b"".join([c async for c in piper.synthesize("Hi, I'd like to book a table for two tonight.", TTSOptions())])
    audio = soxr.resample(np.frombuffer(pcm, np.int16), piper.output_format.sample_rate, 16000).astype(np.int16)
    size = int(seconds * 16000)
    return np.pad(audio[:size], (0, max(0, size - len(audio)))).tobytes()


async def stt_final_after_speech(stt: LocalWhisperSTT, speech: bytes) -> tuple[float, str]:
    """Stream speech + the turn's closing silence in real time, then finalize (the end of turn): seconds until the
    first final (the STT's endpointing may have closed the utterance already, then finalize adds an empty one)."""
    session = await stt.open_session(endpointing_ms=ENDPOINTING_MS)
    finals: list[Transcript] = []
    arrived = asyncio.Event()

    async def read() -> None:
        async for transcript in session.transcripts():
            if transcript.is_final:
                finals.append(transcript)
                arrived.set()

    reader = asyncio.create_task(read())
    audio = speech + bytes(SILENCE_TIMEOUT_MS * 32)
    started = time.perf_counter()
    for index, start in enumerate(range(0, len(audio), FRAME)):
        await session.send_audio(audio[start : start + FRAME])
        await asyncio.sleep(max(0.0, started + (index + 1) * 0.02 - time.perf_counter()))
    ended = time.perf_counter()
    await session.finalize()
    await arrived.wait()
    latency = time.perf_counter() - ended
    await session.close()
    await reader
    return latency, finals[0].text


async def llm_first_token_and_clause(llm: LocalLlamaLLM, messages: list[ChatMessage]) -> tuple[float, float, str]:
    started = time.perf_counter()
    first = clause = 0.0
    text = ""
    async for chunk in llm.stream_chat(messages, LLMOptions(temperature=0.3)):
        if chunk.text and not first:
            first = time.perf_counter() - started
        text += chunk.text
        if not clause and _CLAUSE_END.search(text):
            clause = time.perf_counter() - started
    return first, clause or time.perf_counter() - started, text


async def tts_first_audio(tts: PiperTTS | EspeakTTS, text: str) -> float:
    started = time.perf_counter()
    async for _ in tts.synthesize(text, TTSOptions()):
        return time.perf_counter() - started
    return float("nan")


def conversation(nonce: str) -> list[ChatMessage]:
    system = f"You are Ava, the phone assistant of Bistro {nonce}. Answer in one short sentence."
    return [ChatMessage("system", system), ChatMessage("user", "Hi, are you open tonight?")]


async def main(repeat: int) -> None:
    load1, load5, _ = os.getloadavg()
    print(f"cores: {models.THREADS} threads per model, {os.cpu_count()} CPUs; load average {load1:.2f} / {load5:.2f}")
    stt: LocalWhisperSTT = create("stt", "whisper-tiny.en", {}, {})
    llm: LocalLlamaLLM = create("llm", "smollm2-135m-instruct", {}, {})
    piper: PiperTTS = create("tts", "piper-joe-medium", {}, {})
    espeak: EspeakTTS = create("tts", "espeak-ng", {}, {})
    print("\nmodel load + warm-up (once per process)")
    for label, provider in (("whisper tiny.en", stt), ("SmolLM2-135M x2 contexts", llm), ("Piper joe medium", piper)):
        print(f"  {label:<34}{ms(await timed(provider.warm_up))}")

    speech = await utterance(piper)
    pass_times = [await timed(lambda: stt.transcribe(speech)) for _ in range(repeat)]
    text, _ = await stt.transcribe(speech)
    print(f"\nwhisper on a 2.5 s utterance ({text!r})")
    print(f"  one pass, short window              {spread(pass_times)}")
    engine = models.whisper()
    audio = np.frombuffer(speech, np.int16).astype(np.float32) / 32768

    def stock() -> None:
        segments, _ = engine._model.transcribe(audio, language="en", beam_size=1, without_timestamps=True)
        list(segments)

    stock_times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await asyncio.to_thread(stock)
        stock_times.append(time.perf_counter() - started)
    print(f"  stock transcribe() (30 s window)    {spread(stock_times)}")
    finals = [await stt_final_after_speech(stt, speech) for _ in range(repeat)]
    final_times = [f[0] for f in finals]
    stt_final = statistics.median(final_times)
    print(
        f"  streamed: final after turn end      {spread(final_times)}"
        f"  (speech in real time, then {SILENCE_TIMEOUT_MS} ms quiet)"
    )

    print("\nSmolLM2-135M-Instruct (llama.cpp)")
    cold, cold_clause, cached, cached_clause, prefilled = [], [], [], [], []
    for _ in range(repeat):
        messages = conversation(uuid.uuid4().hex[:8])
        await llm.prefill(messages[:1])  # the system prompt, as while the greeting plays
        prefilled.append((await llm_first_token_and_clause(llm, messages))[0])
    for _ in range(repeat):
        messages = conversation(uuid.uuid4().hex[:8])
        first, clause, reply = await llm_first_token_and_clause(llm, messages)
        cold.append(first)
        cold_clause.append(clause)
        messages += [ChatMessage("assistant", reply), ChatMessage("user", "Great, can I bring my dog?")]
        first, clause, _ = await llm_first_token_and_clause(llm, messages)
        cached.append(first)
        cached_clause.append(clause)
    print(f"  first token, new conversation       {spread(cold)}")
    print(f"  first token, first turn, prefilled  {spread(prefilled)}")
    print(f"  first token, next turn (cached)     {spread(cached)}")
    print(f"  first clause, next turn             {spread(cached_clause)}")

    clause = "Sure, I can help with that."
    piper_times = [await tts_first_audio(piper, clause) for _ in range(repeat)]
    espeak_times = [await tts_first_audio(espeak, clause) for _ in range(repeat)]
    piper_first = statistics.median(piper_times)
    print(f"\ntime to first audio for {clause!r}")
    print(f"  Piper joe medium                    {spread(piper_times)}")
    print(f"  eSpeak NG                           {spread(espeak_times)}")

    budget = SILENCE_TIMEOUT_MS / 1000 + stt_final + statistics.median(cached_clause) + piper_first
    best = SILENCE_TIMEOUT_MS / 1000 + min(final_times) + min(cached_clause) + min(piper_times)
    print("\ncaller stops speaking -> first agent audio (estimate, medians)")
    print(f"  silence timeout (turn end)          {ms(SILENCE_TIMEOUT_MS / 1000)}")
    print(f"  STT final                           {ms(stt_final)}")
    print(f"  LLM to first clause (cached turn)   {ms(statistics.median(cached_clause))}")
    print(f"  Piper first audio                   {ms(piper_first)}")
    print(f"  total                               {ms(budget)}  (best {best * 1000:.0f} ms; + the first 20 ms frame)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    asyncio.run(main(parser.parse_args().repeat))
