"""One admitted call's life, whatever carries its audio: build the session, run it, close it, finalize it once.

A transport (the Twilio Media Stream today, a browser WebSocket later) only moves bytes: it feeds caller audio,
mark echoes and keypresses into :class:`CallInput`, plays what the session sends through its ``sink``, and says
why its wire ended. Everything else is here, in one ``try``/``finally``: whatever fails (the providers cannot be
built, the session cannot start, the summary's LLM raises), the call is finalized exactly once with what was
said, its slot released and its usage counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from typing import Protocol

from pipelines.announce import Announcement
from pipelines.call_config import CallResult
from pipelines.output import MediaSink
from pipelines.session import CallSession
from providers.base import ProviderError
from voicex.calls.admission import UNAVAILABLE
from voicex.calls.builder import build_parts, emergency_voice
from voicex.platform.services import Services
from voicex.store.agents import AgentDoc
from voicex.store.calls import CallDoc, finalize_call
from voicex.store.organizations import Organization

log = logging.getLogger(__name__)

APOLOGY_TIMEOUT_SEC = 15.0  # longest the caller of an agent that cannot run is kept to hear why
DRAIN_END_REASON = "server_drain"  # ended by the server after the drain timeout, with a closing line
SHUTDOWN_END_REASON = "server_shutdown"  # ended by a server stopping at once (a second signal), no closing line


class CallInput(Protocol):
    """What a transport feeds into a running call (on the event loop, in arrival order)."""

    def on_audio(self, frame: bytes) -> None:
        """One 20 ms frame of caller audio in the sink's format."""

    def on_mark(self, name: str) -> None:
        """The far end played the audio sent before mark ``name`` (or dropped it after a clear)."""

    def on_dtmf(self, digit: str) -> None:
        """The caller pressed a key."""


class CallTransport(Protocol):
    """A call's wire, as the runner sees it."""

    @property
    def sink(self) -> MediaSink:
        """Where the session's audio, marks and clears go."""

    @property
    def problems(self) -> list[str]:
        """What the call's record should say about the wire (e.g. malformed messages skipped)."""

    async def receive(self, into: CallInput) -> str:
        """Feed ``into`` until the wire ends; why it ended (``caller_hangup``, ``socket_closed``, ``stream_idle``…)."""

    async def close(self) -> None:
        """End the wire from this side, within a bound; idempotent."""


class CallRunner(CallInput):
    def __init__(
        self, svc: Services, call: CallDoc, org: Organization, agent: AgentDoc, transport: CallTransport
    ) -> None:
        self.svc, self.call, self.org, self.agent, self.transport = svc, call, org, agent, transport
        self.session: CallSession | None = None
        self._stopped_by_server = False
        self._observe_frame = svc.metrics.frame_handling.observe

    # --- inbound, from the transport (the per-frame path: kept cheap) ----------------------------------------

    def on_audio(self, frame: bytes) -> None:
        session = self.session
        if session is not None:
            began = time.perf_counter()
            session.push_audio(frame)
            self._observe_frame(time.perf_counter() - began)

    def on_mark(self, name: str) -> None:
        if self.session is not None:
            self.session.on_mark(name)

    def on_dtmf(self, digit: str) -> None:
        if self.session is not None:
            self.session.on_dtmf(digit)

    # --- the call ------------------------------------------------------------------------------------------

    async def run(self) -> CallResult:
        """Run the call to its end and finalize it; the outcome that was recorded."""
        call_id = self.call["_id"]
        self.svc.leases.add(call_id)  # the process-wide renewer keeps its lease (and slot) until it is finalized
        self.svc.live.add(call_id, self)  # a drain waits for it, then ends it politely (voicex/platform/live_calls.py)
        self.svc.metrics.active_calls.inc()
        outcome = CallResult(end_reason="error")
        try:
            outcome = await self._converse()
        except Exception as exc:  # anything else: the call still ends, with what was said, and says why
            log.exception("call failed")
            outcome.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.svc.metrics.active_calls.dec()
            try:
                with contextlib.suppress(Exception):
                    await self.transport.close()
                outcome = await self._close_session(outcome)
                await finalize_call(self.svc.db, call_id, outcome, dt.datetime.now(dt.UTC))
            finally:
                self.svc.leases.discard(call_id)
                self.svc.live.discard(call_id)
        return outcome

    async def end_politely(self) -> None:
        """The server is draining and this call outlived the drain timeout: say the closing line, then hang up."""
        if self.session is not None:
            await self.session.end_politely(DRAIN_END_REASON)
        else:  # still building its session (or apologizing): nothing to say yet, just end the wire
            await self.end_now()

    async def end_now(self) -> None:
        """The server stops now: end the wire without a closing line; the call is finalized as a shutdown."""
        self._stopped_by_server = True
        await self.transport.close()

    async def _converse(self) -> CallResult:
        try:
            parts = await build_parts(self.svc, self.agent, self.org)
        except ProviderError as exc:
            log.warning("agent cannot run: the caller hears why and the call ends", extra={"error": str(exc)})
            await self._apologize(UNAVAILABLE)
            return CallResult(end_reason="provider_error", errors=[f"provider_error: {exc}"])
        session = CallSession(
            parts.config,
            stt=parts.stt,
            llm=parts.llm,
            tts=parts.tts,
            sink=self.transport.sink,
            vad=parts.vad,
            on_turn=self.svc.metrics.observe_turn,
        )
        self.session = session
        await session.start()
        wire = asyncio.create_task(self.transport.receive(self))
        agent = asyncio.create_task(session.wait_ended())
        try:
            done, _ = await asyncio.wait({wire, agent}, return_when=asyncio.FIRST_COMPLETED)
            reason = (agent if agent in done else wire).result()  # the agent's own end wins a tie
            if self._stopped_by_server:
                reason = SHUTDOWN_END_REASON
        finally:
            for task in (wire, agent):
                task.cancel()
            await asyncio.gather(wire, agent, return_exceptions=True)
        return CallResult(end_reason=reason)

    async def _close_session(self, outcome: CallResult) -> CallResult:
        """The session's report (transcript, turns, usage, summary) under the end reason found, if it ran."""
        session = self.session
        if session is None:
            return outcome
        try:
            result = await session.close(outcome.end_reason)
        except Exception as exc:  # the record must still get what was said
            log.exception("closing the call session failed")
            transcript = session.conversation.transcript_dicts()
            errors = [*outcome.errors, f"close: {type(exc).__name__}: {exc}"]
            return CallResult(end_reason=outcome.end_reason, transcript=transcript, errors=errors)
        result.errors = [*outcome.errors, *result.errors, *self.transport.problems]
        return result

    async def _apologize(self, text: str) -> None:
        """Say ``text`` in the emergency voice (the caller hears why, never silence) while the wire runs."""
        voice = emergency_voice()
        if voice is None:
            return
        announcement = Announcement(self.transport.sink, voice, text)
        wire = asyncio.create_task(self.transport.receive(_MarksOnly(announcement)))
        try:
            await announcement.play(timeout=APOLOGY_TIMEOUT_SEC)
        finally:
            wire.cancel()
            await asyncio.gather(wire, return_exceptions=True)
            await voice.aclose()


class _MarksOnly(CallInput):
    """While an announcement plays, only mark echoes matter."""

    def __init__(self, announcement: Announcement) -> None:
        self.announcement = announcement

    def on_audio(self, frame: bytes) -> None:
        pass

    def on_mark(self, name: str) -> None:
        self.announcement.on_mark(name)

    def on_dtmf(self, digit: str) -> None:
        pass
