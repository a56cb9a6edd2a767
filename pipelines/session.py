"""One call's conversation: caller frames → VAD → turn detector → STT; end of turn → LLM → TTS → playout.

The transport calls :meth:`CallSession.push_audio` for every 20 ms caller frame, :meth:`on_mark` for every
echoed mark and :meth:`on_dtmf`; the session answers through its :class:`MediaSink`. Turn-taking time is
media time (20 ms per frame), so the detector stays deterministic; latencies are measured on the loop clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from pipelines.audio import frame_rms, ulaw_to_pcm16
from pipelines.call_config import CallResult, SessionConfig
from pipelines.call_report import call_errors, call_report
from pipelines.context import Conversation
from pipelines.convert import AudioConverter
from pipelines.interruption import words_in_progress
from pipelines.metrics import TurnLog, TurnMetrics
from pipelines.output import MediaSink
from pipelines.playout import Playout
from pipelines.preemptive import Preemptive, Speculation
from pipelines.reply import Reply, ReplyMaker
from pipelines.session_log import log_event, turn_fields
from pipelines.stt_stream import SttStream
from pipelines.summary import CallSummary, summarize_call
from pipelines.turn_detector import (
    FRAME_MS,
    Acknowledged,
    BargeIn,
    EndOfTurn,
    Event,
    FalseInterruption,
    InterruptionConfirmed,
    SilenceTimeout,
    SpeechStarted,
    TurnDetector,
)
from pipelines.usage import CallUsage
from pipelines.vad import Vad
from providers.base import ChatMessage, LLMProvider, STTProvider, TTSProvider

__all__ = ["CallResult", "CallSession", "SessionConfig"]  # what a call is given and reports, with the session

log = logging.getLogger(__name__)


class CallSession:
    def __init__(
        self,
        config: SessionConfig,
        *,
        stt: STTProvider,
        llm: LLMProvider,
        tts: TTSProvider,
        sink: MediaSink,
        vad: Vad,
        on_turn: Callable[[TurnMetrics], None] | None = None,
    ) -> None:
        self.config = config
        self.llm, self.tts, self.sink, self.vad = llm, tts, sink, vad
        self.conversation = Conversation(config.persona)
        self.detector = TurnDetector(config.turn, 0, wait_for_caller=config.opening_mode == "callee_first")
        self._tail_trim = config.turn.tail_trim_db > 0
        self._preemptive = Preemptive() if config.turn.preemptive and llm.speculative else None
        self.stt = SttStream(
            stt, language=config.persona.language, endpointing_ms=config.turn.endpointing_ms,
            on_transcript=self._on_transcript, on_late_final=self.conversation.amend_last_user,
            on_switch=self._stt_switched,
        )  # fmt: skip
        self._stt_converter = AudioConverter(sink.format, stt.input_format)
        self._loop = asyncio.get_running_loop()
        self.playout = Playout(sink, on_started=self._agent_started, on_finished=self._agent_finished)
        self.usage = CallUsage()  # every reply's LLM and TTS consumption, heard or not, and the summary's
        self._replies = ReplyMaker(self.playout, tts, config.tts_options, llm, config.llm_options, self.usage)
        self._media_ms = 0  # media time: frames received × 20 ms
        self._frame_wall: float = self._loop.time()
        self._reply: asyncio.Task[None] | None = None
        self._reply_ctx: tuple[Reply, TurnMetrics | None, float] | None = None
        self._giving_up: asyncio.Task[None] | None = None  # the reply a confirmed barge-in is giving up
        self._resume_sentences: list[str] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.turn_log = TurnLog(on_turn)
        self._current_turn: TurnMetrics | None = None
        self._greeted = False
        self._ended = asyncio.Event()
        self.end_reason: str | None = None
        self._providers_closed = False
        self._errors: list[str] = []

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the call; if anything fails (or the start is cancelled), stop what it started and re-raise.

        Then nothing of the call runs on (greeting, max-duration timer, prefill, recognizer) and the providers
        are closed; :meth:`close` may still be called and reports the failure in ``errors``.
        """
        try:
            self._spawn(self._max_duration_timer())
            self._spawn(self._prefill())
            if self.config.opening_mode == "agent_first":
                self._greet()  # first: the caller hears it while the recognizer connects (a network STT: 0.1–0.5 s)
            await self.stt.start()
            self._stt_switched()  # a fallback chain knows its input format only once a provider accepted the session
        except BaseException as exc:
            self._errors.append(f"start: {type(exc).__name__}: {exc}")
            self._ended.set()
            await self._stop_work()
            await self._close_providers()
            raise

    async def _prefill(self) -> None:
        """Let the LLM digest the conversation so far (the system prompt while the greeting plays, each reply
        once it has played) while the caller is still to speak, so the next answer comes sooner."""
        try:
            await self.llm.prefill(self.conversation.for_llm())
        except Exception as exc:  # only an optimisation: the first reply will simply take longer
            log.info("LLM prefill skipped", extra={"error": f"{type(exc).__name__}: {exc}"})

    async def wait_ended(self) -> str:
        """Until the session itself ends the call (goodbye said after silence or at max duration)."""
        await self._ended.wait()
        return self.end_reason or "agent_ended"

    async def close(self, reason: str) -> CallResult:
        """Stop everything (caller hung up, socket gone, or after :meth:`wait_ended`) and report the call."""
        if self.end_reason is None:
            self.end_reason = reason
        self._ended.set()
        await self._stop_work()
        summary = CallSummary()
        if self.config.summarize and any(e.role == "user" for e in self.conversation.transcript):
            summary = await summarize_call(self.llm, self.conversation, self.usage)
            if summary.error is not None:
                self._errors.append(summary.error)
        await self._close_providers()
        providers = (self.stt.provider, self.llm, self.tts)
        errors = call_errors(self._errors, self.turn_log, self.stt.errors, providers)
        return call_report(self.end_reason, self.conversation, self.turn_log, self.usage, summary, errors)

    async def _stop_work(self) -> None:
        """Cancel the reply and every task of the call (each reply counts its usage as it stops), close the STT."""
        await self._cancel_reply(record=True)
        while self._tasks:  # until none is left, should a task spawn another while it winds down
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
        await self.stt.close()

    async def _close_providers(self) -> None:
        """Once per call, best effort: the call is already over."""
        if self._providers_closed:
            return
        self._providers_closed = True
        for provider in (self.stt.provider, self.llm, self.tts):
            try:
                await provider.aclose()
            except Exception:
                log.warning("provider did not close cleanly", extra={"provider": provider.name}, exc_info=True)

    def _stt_switched(self) -> None:
        """Caller audio goes out in the recognizer's format: at the start, and when another one takes over."""
        self._stt_converter = AudioConverter(self.sink.format, self.stt.provider.input_format)

    # --- transport inputs ---------------------------------------------------------------------------

    def push_audio(self, payload: bytes) -> None:
        """One caller frame (20 ms of μ-law at 8 kHz); called on the hot path, so it stays cheap."""
        now = self._media_ms
        self._media_ms += FRAME_MS
        self._frame_wall = self._loop.time()
        pcm = ulaw_to_pcm16(payload) if self.sink.format.encoding == "mulaw" else payload
        is_speech = self.vad.is_speech(pcm)
        self.stt.push(self._stt_converter.convert(payload, pcm))
        level = frame_rms(pcm) if self._tail_trim else None
        before = self.detector.state
        for event in self.detector.on_frame(now, is_speech, level):
            self._handle(event)
        if self._preemptive is not None and before is not self.detector.state:
            self._speculate()

    def on_mark(self, name: str) -> None:
        self.playout.on_mark(name)

    def on_dtmf(self, digit: str) -> None:
        self.conversation.add_event(f"dtmf {digit}", self._media_ms, type="dtmf", digit=digit)

    # --- events -------------------------------------------------------------------------------------

    def _handle(self, event: Event) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log_event(event)
        if isinstance(event, SpeechStarted):
            self._current_turn = TurnMetrics(turn=self.turn_log.next_number())
        elif isinstance(event, EndOfTurn):
            self._spawn(self._end_of_turn(event))
        elif isinstance(event, BargeIn):
            self._spawn(self.playout.pause())
            for confirmed in words_in_progress(self.detector, self.stt, self._media_ms):
                self._handle(confirmed)
        elif isinstance(event, InterruptionConfirmed):
            self._giving_up = self._spawn(self._barge_in(event))
        elif isinstance(event, FalseInterruption):
            self._resume()
        elif isinstance(event, Acknowledged):  # "uh-huh" while the agent talks: not the start of a turn
            self.conversation.add_event("backchannel: the agent talked on", event.at_ms, type="backchannel")
            self.stt.discard_turn()
        elif isinstance(event, SilenceTimeout):
            self._silence(event)

    def _on_transcript(self, text: str, is_final: bool) -> None:
        for event in self.detector.on_transcript(text, is_final, self._media_ms):
            self._handle(event)
        if self._preemptive is not None:
            self._speculate()

    def _speculate(self) -> None:
        """Preemptive generation: while the caller pauses, a held answer to their words so far (else none)."""
        assert self._preemptive is not None
        self._preemptive.follow(self.detector.state, self.detector.awaiting_words, self.stt.best_text, self._held_reply)

    def _held_reply(self, text: str, release: asyncio.Event) -> Speculation:
        metrics = TurnMetrics(turn=self.turn_log.next_number(), preemptive=True)
        reply = self._replies.answer([*self.conversation.for_llm(), ChatMessage("user", text)], metrics, hold=release)
        speech_end_wall = self._wall_at(self.detector.last_speech_end_ms)
        task = self._spawn(self._run_reply(reply, metrics, speech_end_wall))
        return Speculation(text, reply, task, metrics, speech_end_wall, release)

    def _agent_started(self) -> None:
        self.detector.agent_started(self._media_ms)

    def _agent_finished(self, interrupted: bool) -> None:
        if not interrupted:
            self.detector.agent_finished(self._media_ms)

    def _wall_at(self, media_ms: int) -> float:
        """Loop time at which media time ``media_ms`` was (or will be) received."""
        return self._frame_wall + (media_ms - self._media_ms) / 1000

    # --- behaviours ---------------------------------------------------------------------------------

    async def _end_of_turn(self, event: EndOfTurn) -> None:
        turn = self._current_turn or TurnMetrics(turn=self.turn_log.next_number())
        self._current_turn = None
        turn.end_of_turn_delay = float(event.at_ms - event.speech_end_ms)
        decided = self._loop.time()
        text = await self.stt.end_of_turn(self.config.stt_final_wait_ms / 1000)
        turn.stt_final_latency = (self._loop.time() - decided) * 1000
        if self._giving_up is not None and not self._giving_up.done():  # the interrupted reply goes first
            await asyncio.wait({self._giving_up})
        if not text:
            if event.after_barge_in:
                self._resume()
            elif self.stt.failed:  # the caller spoke but nothing can understand them: say so
                self.conversation.add_event("speech not recognized: STT unavailable", self._media_ms, type="stt_down")
                self._start_reply(self._replies.fixed(self.config.stt_apology))
            else:
                self.detector.rearm_silence_timer(self._media_ms)
            return
        self.conversation.add_user(text, event.speech_end_ms)
        self._greeted = True  # the caller spoke first (callee_first): a later silence reprompts, never greets
        self._resume_sentences = []
        held = self._preemptive.take(text) if self._preemptive is not None else None
        if held is not None:  # already answering these very words: let it play
            held.metrics.end_of_turn_delay = turn.end_of_turn_delay
            held.metrics.stt_final_latency = turn.stt_final_latency
            self._reply, self._reply_ctx = held.task, (held.reply, held.metrics, held.speech_end_wall)
            return
        speech_end_wall = self._wall_at(event.speech_end_ms)
        reply = self._replies.answer(self.conversation.for_llm(), turn)
        self._start_reply(reply, turn=turn, speech_end_wall=speech_end_wall)

    async def _barge_in(self, event: InterruptionConfirmed) -> None:
        """The caller really took the turn: the paused reply is given up and only what was heard is kept."""
        self.conversation.add_event("barge-in", event.at_ms, type="barge_in")
        await self._cancel_reply(record=True, interrupted=True)
        await self.playout.clear()

    def _resume(self) -> None:
        """False interruption: carry on where the pause stopped, or speak again the sentences not fully heard."""
        self.stt.discard_turn()
        if self.playout.paused:
            self.conversation.add_event("resumed after false interruption", self._media_ms, type="resume")
            self.detector.agent_started(self._media_ms)
            self._spawn(self.playout.resume())
            return
        if not self._resume_sentences:
            self.detector.rearm_silence_timer(self._media_ms)
            return
        sentences, self._resume_sentences = self._resume_sentences, []
        self.conversation.add_event("resumed after false interruption", self._media_ms, type="resume")
        self._start_reply(self._replies.fixed(sentences))

    def _silence(self, event: SilenceTimeout) -> None:
        """``idleTimeoutMs`` of silence on the caller's side: greet (callee_first), reprompt, then hang up.

        The end reason stays ``silence_timeout``: stored call records and dashboards already use it.
        """
        if self.config.opening_mode == "callee_first" and not self._greeted:
            self._greet()
        elif event.count == 1:
            self._start_reply(self._replies.fixed(self.config.reprompt))
        else:
            self._spawn(self._say_goodbye(self.config.goodbye_silence, "silence_timeout"))

    def _greet(self) -> None:
        self._greeted = True
        if self.config.persona.greeting.strip():
            self._start_reply(self._replies.fixed(self.config.persona.greeting))

    async def _max_duration_timer(self) -> None:
        await asyncio.sleep(self.config.turn.max_call_duration_sec)
        await self._say_goodbye(self.config.goodbye_max_duration, "max_duration")

    async def end_politely(self, reason: str) -> None:
        """End the call from this side (the server is shutting down): the closing line is said and heard first."""
        await self._say_goodbye(self.config.goodbye_shutdown, reason)

    async def _say_goodbye(self, text: str, reason: str) -> None:
        if self.end_reason is not None:
            return
        self.end_reason = reason
        if self._preemptive is not None:
            self._preemptive.cancel()
        speaking = self.playout.speaking
        await self._cancel_reply(record=True, interrupted=speaking)
        if speaking:
            await self.playout.clear()
        self._start_reply(self._replies.fixed(text))
        reply = self._reply
        if reply is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await reply
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.playout.wait_idle(), 15)
        self._ended.set()
        await self.sink.close(reason)

    # --- replies ------------------------------------------------------------------------------------

    def _start_reply(self, reply: Reply, *, turn: TurnMetrics | None = None, speech_end_wall: float = 0.0) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()
        self._reply_ctx = (reply, turn, speech_end_wall)
        self._reply = self._spawn(self._run_reply(reply, turn, speech_end_wall))

    async def _run_reply(self, reply: Reply, turn: TurnMetrics | None, speech_end_wall: float) -> None:
        log.debug("reply started", extra={"fixed": reply.llm is None, **turn_fields(turn)})
        try:
            await reply.run()
            await self.playout.wait_idle()  # heard text is final once the audio has played
        except Exception as exc:  # a failing provider must never kill the call silently
            log.exception("agent reply failed")
            self._errors.append(f"reply: {type(exc).__name__}: {exc}")
        self._finish_turn(turn, speech_end_wall)
        log.debug("reply finished", extra={"sentences": len(reply.result.sentences), **turn_fields(turn)})
        tracker = reply.result.tracker
        self.conversation.add_assistant(tracker.heard_text() if tracker else "", self._media_ms)
        self._reply_ctx = None
        if not reply.result.sentences:
            self.detector.rearm_silence_timer(self._media_ms)
        self._spawn(self._prefill())  # the next answer then evaluates only the caller's new words

    async def _cancel_reply(self, *, record: bool, interrupted: bool = False) -> None:
        task, context = self._reply, self._reply_ctx
        if task is None or task.done() or context is None:
            return
        reply, turn, speech_end_wall = context
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._reply_ctx is context:  # not one started meanwhile
            self._reply_ctx = None
        tracker = reply.result.tracker
        if tracker is not None:
            start = tracker.unheard_from()
            self._resume_sentences = [s.text for s in tracker.segments[start:]] if start is not None else []
            if record:
                self.conversation.add_assistant(tracker.heard_text(), self._media_ms, interrupted=interrupted)
        if turn is not None:
            turn.interrupted = interrupted
            self._finish_turn(turn, speech_end_wall)
        log.debug("reply cancelled", extra={"interrupted": interrupted, **turn_fields(turn)})

    def _finish_turn(self, turn: TurnMetrics | None, speech_end_wall: float) -> None:
        self.turn_log.finish(turn, self.playout.first_audio_at, speech_end_wall)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
