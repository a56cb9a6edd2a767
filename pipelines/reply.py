"""One agent reply: LLM tokens → sentences → TTS → the call's audio format → paced playout.

TTS starts on each sentence as soon as the splitter completes it and runs up to ``prefetch`` sentences
ahead of playback, so the gap between sentences is hidden. All work runs in one TaskGroup: cancelling
the reply (barge-in) cancels the LLM stream and every TTS stream with it, leaving no orphan tasks.
:class:`ReplyMaker` builds a call's replies (its playout, voice, LLM and usage totals) for the session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from pipelines.audio import leading_silence
from pipelines.convert import AudioConverter
from pipelines.heard import HeardTracker, Segment
from pipelines.metrics import TurnMetrics
from pipelines.playout import Playout
from pipelines.sentences import SentenceSplitter
from pipelines.usage import CallUsage, StreamMeter
from providers.base import ChatMessage, LLMChunk, LLMOptions, LLMProvider, ProviderError, TTSOptions, TTSProvider

log = logging.getLogger(__name__)

APOLOGY = "Sorry, I'm having trouble answering right now. Could you say that again?"
TTS_APOLOGY = "Sorry, the line cut out for a moment."  # spoken when a voice fails part-way through a sentence


@dataclass
class ReplyResult:
    sentences: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tracker: HeardTracker | None = None


class Reply:
    """Speak either a fixed text (greeting, reprompt, resumed sentences) or the LLM's answer to ``messages``."""

    def __init__(
        self,
        *,
        playout: Playout,
        tts: TTSProvider,
        tts_options: TTSOptions,
        llm: LLMProvider | None = None,
        messages: list[ChatMessage] | None = None,
        llm_options: LLMOptions | None = None,
        text: str | list[str] | None = None,
        metrics: TurnMetrics | None = None,
        prefetch: int = 2,
        clock: Callable[[], float] | None = None,
        hold: asyncio.Event | None = None,
        usage: CallUsage | None = None,
    ) -> None:
        """``hold``: nothing is played until it is set (preemptive generation); LLM and TTS run meanwhile.

        ``usage``: the call's totals, which the reply adds to as it consumes, so a cancelled reply counts too.
        """
        if (llm is None) == (text is None):
            raise ValueError("a reply needs either an LLM or a fixed text")
        self.playout = playout
        self.tts = tts
        self.tts_options = tts_options
        self.llm = llm
        self.messages = messages or []
        self.llm_options = llm_options or LLMOptions()
        self.text = text
        self.metrics = metrics
        self.prefetch = prefetch
        self.result = ReplyResult()
        self._clock = clock or asyncio.get_running_loop().time
        self._hold = hold
        self.usage = usage if usage is not None else CallUsage()

    async def run(self) -> ReplyResult:
        self.result.tracker = self.playout.begin_reply()
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        ready: asyncio.Queue[tuple[Segment, asyncio.Queue[bytes | None]] | None] = asyncio.Queue(self.prefetch)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._produce(sentences))
                group.create_task(self._dispatch(sentences, ready, group))
                group.create_task(self._write(ready))
        finally:
            self.playout.end_reply()
        return self.result

    # --- sentences ----------------------------------------------------------------------------------

    async def _produce(self, sentences: asyncio.Queue[str | None]) -> None:
        try:
            if self.text is not None:
                for sentence in self._fixed_sentences():
                    await sentences.put(sentence)
            else:
                await self._produce_from_llm(sentences)
        finally:
            await sentences.put(None)

    def _fixed_sentences(self) -> list[str]:
        if isinstance(self.text, list):
            return [sentence for sentence in self.text if sentence.strip()]
        splitter = SentenceSplitter()
        return [*splitter.push(self.text or ""), *splitter.flush()]

    async def _produce_from_llm(self, sentences: asyncio.Queue[str | None]) -> None:
        assert self.llm is not None
        splitter = SentenceSplitter()
        started = self._clock()
        spoke = False
        meter = StreamMeter(self.messages)
        try:
            stream: AsyncIterator[LLMChunk] = self.llm.stream_chat(self.messages, self.llm_options)
            async for chunk in stream:
                meter.add(chunk)
                if not chunk.text:
                    continue
                if self.metrics is not None and self.metrics.llm_ttft is None:
                    self.metrics.llm_ttft = (self._clock() - started) * 1000
                for sentence in splitter.push(chunk.text):
                    spoke = self._first_sentence(spoke, started)
                    await sentences.put(sentence)
            for sentence in splitter.flush():
                spoke = self._first_sentence(spoke, started)
                await sentences.put(sentence)
        except ProviderError as exc:
            meter.failed = True
            self._error(f"llm {exc.provider}: {exc.message}")
            for sentence in splitter.flush() if spoke else []:
                await sentences.put(sentence)
            await sentences.put(APOLOGY)
        finally:  # cancelled (barge-in, a dropped preemptive answer) or not: the vendor did the work
            self.usage.add_llm(meter)

    def _first_sentence(self, spoke: bool, started: float) -> bool:
        """Time the first sentence (it is what TTS waits for, so it bounds the caller's wait); True from now on."""
        if not spoke and self.metrics is not None:
            self.metrics.llm_first_sentence = (self._clock() - started) * 1000
        return True

    # --- speech -------------------------------------------------------------------------------------

    async def _dispatch(
        self,
        sentences: asyncio.Queue[str | None],
        ready: asyncio.Queue[tuple[Segment, asyncio.Queue[bytes | None]] | None],
        group: asyncio.TaskGroup,
    ) -> None:
        first = True
        while (sentence := await sentences.get()) is not None:
            self.result.sentences.append(sentence)
            segment = self.playout.begin_segment(sentence)
            audio: asyncio.Queue[bytes | None] = asyncio.Queue()
            await ready.put((segment, audio))  # waits while ``prefetch`` sentences are ahead of playback
            group.create_task(self._synthesize(segment, audio, measure=first))
            first = False
        await ready.put(None)

    async def _synthesize(self, segment: Segment, audio: asyncio.Queue[bytes | None], *, measure: bool) -> None:
        started = self._clock()
        self.usage.add_tts(segment.text)
        try:
            if await self._speak(segment.text, audio, measure=measure, started=started):
                # The voice broke off mid-sentence: tell the caller (a fallback voice, if any, now goes first).
                segment.text = f"{segment.text} {TTS_APOLOGY}"
                self.usage.add_tts(TTS_APOLOGY)
                await self._speak(TTS_APOLOGY, audio)
        finally:
            await audio.put(None)

    async def _speak(
        self, text: str, audio: asyncio.Queue[bytes | None], *, measure: bool = False, started: float = 0.0
    ) -> bool:
        """Queue ``text``'s audio; True when the TTS failed after some of it was already queued."""
        out_format = self.tts.output_format
        converter = AudioConverter(out_format, self.playout.sink.format)
        produced = False
        leading = measure  # the reply's first sound: its leading silence is only a wait for the caller
        try:
            async for chunk in self.tts.synthesize(text, self.tts_options):
                if leading and chunk:
                    chunk = chunk[leading_silence(chunk, out_format.encoding == "mulaw", out_format.sample_rate) :]
                    leading = not chunk
                if not chunk:
                    continue
                if measure and self.metrics is not None and self.metrics.tts_ttfb is None:
                    self.metrics.tts_ttfb = (self._clock() - started) * 1000
                converted = converter.convert(chunk)
                if converted:
                    produced = True
                    await audio.put(converted)
            tail = converter.flush()
            if tail:
                await audio.put(tail)
        except ProviderError as exc:
            self._error(f"tts {exc.provider}: {exc.message}")
            return produced
        return False

    async def _write(self, ready: asyncio.Queue[tuple[Segment, asyncio.Queue[bytes | None]] | None]) -> None:
        if self._hold is not None:
            await self._hold.wait()
        while (item := await ready.get()) is not None:
            segment, audio = item
            while (chunk := await audio.get()) is not None:
                await self.playout.write(segment, chunk)
            segment.complete = True

    def _error(self, message: str) -> None:
        log.warning("reply step failed", extra={"error": message})
        self.result.errors.append(message)
        if self.metrics is not None:
            self.metrics.errors.append(message)


@dataclass(frozen=True)
class ReplyMaker:
    """How one call's replies are made: its playout, its voice and LLM with their options, its usage totals."""

    playout: Playout
    tts: TTSProvider
    tts_options: TTSOptions
    llm: LLMProvider
    llm_options: LLMOptions
    usage: CallUsage

    def answer(self, messages: list[ChatMessage], metrics: TurnMetrics, hold: asyncio.Event | None = None) -> Reply:
        """The LLM's answer to ``messages``, spoken (held back until ``hold`` is set, if given)."""
        return Reply(
            playout=self.playout, tts=self.tts, tts_options=self.tts_options, llm=self.llm, messages=messages,
            llm_options=self.llm_options, metrics=metrics, hold=hold, usage=self.usage,
        )  # fmt: skip

    def fixed(self, text: str | list[str]) -> Reply:
        """``text`` spoken as it is (a greeting, a reprompt, an apology, sentences said again)."""
        return Reply(playout=self.playout, tts=self.tts, tts_options=self.tts_options, text=text, usage=self.usage)
