"""Streaming STT on the embedded whisper tiny.en: interim transcripts while the caller speaks.

Whisper is not a streaming model, so the session re-transcribes the growing utterance every
``interim_interval_ms`` of new speech (one pass in flight per session) and emits each new text as an
interim; a pause in the speech starts a pass at once (after 100 ms). The session's ``endpointing_ms`` of
pause closes the utterance and emits its final, like a streaming recognizer's endpointing: the last pass
usually already covers it (only silence came after it) and is re-emitted at once; otherwise one more pass
runs. ``finalize()`` (the engine's end of turn) closes an open utterance the same way, or answers with an
empty final when none is open. Finals are chained, so they come out in the order utterances were closed.
Energy gating keeps silence away from the model: nothing is buffered or transcribed until ~100 ms of
loud audio arrive (with 300 ms of pre-roll so the first consonant is kept), a click followed by silence
is forgotten, and a pass only runs when there is new loud audio. An utterance is also closed after 28 s
of speech (whisper's window); the next one starts empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from providers.base import AudioFormat, ProviderError, STTProvider, STTSession, Transcript
from providers.local import models
from providers.local.pool import WorkerPool, get_pool, run, wait

log = logging.getLogger(__name__)

_FORMAT = AudioFormat("pcm16", 16000)
_BYTES_PER_MS = _FORMAT.bytes_per_second // 1000
_FRAME_MS = 20
_MIN_SPEECH_MS = 100  # loud audio needed before an utterance starts
_PREROLL_MS = 300
_UNSTARTED_KEEP_MS = 1000  # audio kept before an utterance starts (its pre-roll and first sounds)
_PAUSE_PASS_MS = 100  # quiet after speech that starts a pass at once: have the final ready by the endpointing
_ENDPOINTING_MS = 300  # pause that closes an utterance when the session is opened without endpointing_ms
_MAX_UTTERANCE_MS = 28_000  # whisper's window is 30 s


@dataclass(eq=False)
class _Utterance:
    audio: bytearray = field(default_factory=bytearray)
    speech_ms: int = 0
    quiet_ms: int = 0  # trailing run of quiet frames
    since_pass_ms: int = 0
    loud_since_pass: bool = False  # loud audio arrived after the last pass started
    text: str = ""  # the last pass's result
    confidence: float | None = None
    emitted: str = ""
    pass_task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self.speech_ms >= _MIN_SPEECH_MS

    @property
    def ms(self) -> int:
        return len(self.audio) // _BYTES_PER_MS


class LocalWhisperSTT(STTProvider):
    name = "local"
    input_format = _FORMAT

    def __init__(
        self,
        *,
        model_dir: str | None = None,
        interim_interval_ms: int = 400,
        energy_threshold: float = 300.0,
        pool: WorkerPool | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.interim_interval_ms = interim_interval_ms
        self.energy_threshold = energy_threshold  # 16-bit RMS of a 20 ms frame that counts as speech
        self.pool = pool or get_pool()

    async def warm_up(self) -> None:
        """Load the model now (in a worker) so the first caller does not wait for it."""
        await run(self.pool, models.WHISPER_LANE, lambda: models.whisper(self.model_dir), "loading whisper")

    def submit(self, pcm16: bytes) -> asyncio.Future[tuple[str, float]]:
        """Queue one pass over a whole 16 kHz PCM16 utterance; raises ProviderError when the pool is full."""
        return self.pool.submit(lambda: models.whisper(self.model_dir).transcribe(pcm16), models.WHISPER_LANE)

    async def transcribe(self, pcm16: bytes) -> tuple[str, float]:
        return await wait(self.submit(pcm16), "whisper")

    async def open_session(self, *, language: str = "en", endpointing_ms: int | None = None) -> STTSession:
        # tiny.en only knows English; other languages come out as English-sounding words.
        return LocalSTTSession(self, _ENDPOINTING_MS if endpointing_ms is None else endpointing_ms)


class LocalSTTSession(STTSession):
    def __init__(self, provider: LocalWhisperSTT, endpointing_ms: int = _ENDPOINTING_MS) -> None:
        self.provider = provider
        self.endpointing_ms = endpointing_ms
        self._utt = _Utterance()
        self._out: asyncio.Queue[Transcript | None] = asyncio.Queue()
        self._finals: asyncio.Task[None] | None = None  # the latest pending final (finals chain in order)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def send_audio(self, chunk: bytes) -> None:
        self.send_audio_nowait(chunk)

    def send_audio_nowait(self, chunk: bytes) -> bool:
        """Buffering and starting a pass are all synchronous: the frame path hands audio over without a task."""
        self._take(chunk)
        return True

    def _take(self, chunk: bytes) -> None:
        if self._closed or not chunk:
            return
        utt = self._utt
        utt.audio += chunk
        for loud in self._loud_frames(chunk):
            if loud:
                utt.speech_ms += _FRAME_MS
                utt.quiet_ms = 0
                utt.loud_since_pass = True
            else:
                utt.quiet_ms += _FRAME_MS
        duration = len(chunk) // _BYTES_PER_MS
        if not utt.started:
            if utt.quiet_ms >= _PREROLL_MS:
                utt.speech_ms = 0  # a click, then silence: forget it
            del utt.audio[: max(0, len(utt.audio) - _UNSTARTED_KEEP_MS * _BYTES_PER_MS)]
            return
        utt.since_pass_ms += duration
        if utt.quiet_ms >= self.endpointing_ms or utt.ms >= _MAX_UTTERANCE_MS:
            self._close_utterance()
        elif self._want_interim(utt):
            utt.since_pass_ms, utt.loud_since_pass = 0, False
            audio = bytes(utt.audio)
            utt.pass_task = self._spawn(self._interim_pass(utt, audio))

    def _loud_frames(self, chunk: bytes) -> list[bool]:
        samples = np.frombuffer(chunk[: len(chunk) - len(chunk) % 2], dtype=np.int16).astype(np.float32)
        frame = _FRAME_MS * _BYTES_PER_MS // 2
        count = max(1, round(len(samples) / frame))
        return [
            bool(part.size) and float(np.sqrt(np.mean(part * part))) >= self.provider.energy_threshold
            for part in np.array_split(samples, count)
        ]

    def _want_interim(self, utt: _Utterance) -> bool:
        return (
            not self._closed
            and utt.loud_since_pass
            and (utt.since_pass_ms >= self.provider.interim_interval_ms or utt.quiet_ms >= _PAUSE_PASS_MS)
            and (utt.pass_task is None or utt.pass_task.done())
            and (self._finals is None or self._finals.done())  # the previous final goes first
        )

    async def _interim_pass(self, utt: _Utterance, audio: bytes) -> None:
        try:
            text, confidence = await self.provider.transcribe(audio)
        except ProviderError as exc:  # busy: skip this interim, the final will catch up
            utt.loud_since_pass = True
            log.debug("interim pass skipped: %s", exc.message)
            return
        utt.text, utt.confidence = text, confidence
        if text and text != utt.emitted and utt is self._utt and not self._closed:
            utt.emitted = text
            self._out.put_nowait(Transcript(text, is_final=False, confidence=confidence))

    async def finalize(self) -> None:
        """Close the utterance; its final transcript follows as soon as it is known (usually at once)."""
        if self._closed:
            return
        utt = self._utt
        in_flight = utt.pass_task is not None and not utt.pass_task.done()
        early: asyncio.Future[tuple[str, float]] | None = None
        if utt.started and utt.loud_since_pass and not in_flight:
            # The last pass is stale: start the final one now (a full pool raises here, before anything changes).
            early = self.provider.submit(bytes(utt.audio))
        self._close_utterance(early)

    def _close_utterance(self, early: asyncio.Future[tuple[str, float]] | None = None) -> None:
        utt, self._utt = self._utt, _Utterance()
        previous = self._finals
        self._finals = self._spawn(self._final(utt, early, previous))

    async def _final(
        self,
        utt: _Utterance,
        early: asyncio.Future[tuple[str, float]] | None,
        previous: asyncio.Task[None] | None,
    ) -> None:
        text, confidence = "", None
        try:
            if utt.started:
                if utt.pass_task is not None:
                    await asyncio.wait([utt.pass_task])
                text, confidence = utt.text, utt.confidence
                if early is not None or utt.loud_since_pass:
                    if early is None:
                        early = self.provider.submit(bytes(utt.audio))
                    final = await wait(early, "whisper")
                    text, confidence = final
        except ProviderError as exc:  # the engine still gets a final: the best text we have
            log.warning("final pass failed, using the last interim", extra={"error": exc.message})
        finally:
            if early is not None:
                early.cancel()  # only has an effect if this task was cancelled before the pass ran
        if previous is not None:
            await asyncio.wait([previous])
        if not self._closed:
            self._out.put_nowait(Transcript(text, is_final=True, confidence=confidence))

    async def transcripts(self) -> AsyncIterator[Transcript]:
        while (item := await self._out.get()) is not None:
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._out.put_nowait(None)
