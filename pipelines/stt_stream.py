"""The call's streaming STT session: audio in without blocking the frame path, transcripts out per turn.

Audio reaches the recognizer without a task hop per frame when it can: a session that takes audio
synchronously (:meth:`STTSession.send_audio_nowait`) is fed on the frame path; any other gets frames through a
plain buffer that one sender task drains, woken only when it has gone idle (an ``asyncio.Queue`` per frame was
the frame path's costliest step).

The recognizer finalizes on its own at pauses of ``endpointing_ms`` (the agent's ``endpointingMs``), which
never end the turn: a turn with hesitations gathers several finals, and its text is all of them plus the
latest interim. :meth:`end_of_turn` asks for one more final only when an interim is still open.

When the recognizer fails mid-call and the provider is a fallback chain, the next recognizer in the chain
takes over (``on_switch`` tells the session, whose audio converter may need another format). Without one
left, :attr:`SttStream.failed` is set, so the session can tell the caller instead of staying silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from providers.base import ProviderError, STTProvider, STTSession

log = logging.getLogger(__name__)

_MAX_QUEUED_CHUNKS = 500  # 10 s of 20 ms frames: beyond this the STT is down and audio is dropped


class SttStream:
    def __init__(
        self,
        provider: STTProvider,
        *,
        language: str,
        endpointing_ms: int | None = None,
        on_transcript: Callable[[str, bool], None],
        on_late_final: Callable[[str], None] | None = None,
        on_switch: Callable[[], None] | None = None,
    ) -> None:
        self.provider = provider
        self.language = language
        self.endpointing_ms = endpointing_ms  # the recognizer's pause before a final; None: its own default
        self._on_transcript = on_transcript
        self._on_late_final = on_late_final
        self._on_switch = on_switch
        self._switching: asyncio.Task[None] | None = None
        self.failed = False  # no recognizer is left for this call
        self._session: STTSession | None = None
        self._pending: deque[bytes] = deque()  # audio for the sender task, oldest first
        self._wake: asyncio.Future[None] | None = None  # set while the sender task waits for audio
        self._sending = False  # the sender task is inside send_audio: a nowait push would overtake it
        self._nowait = True  # the session may take audio synchronously, until it says it cannot
        self._tasks: list[asyncio.Task[None]] = []
        self._finals: list[str] = []
        self._interim = ""
        self._final_arrived = asyncio.Event()
        self._late_final_expected = False
        self._drop_late_final = False  # the pending utterance was discarded (a false interruption)
        self.dropped_chunks = 0
        self.errors: list[str] = []

    async def start(self) -> None:
        try:
            self._session = await self.provider.open_session(language=self.language, endpointing_ms=self.endpointing_ms)
        except ProviderError as exc:
            self._record(exc)
            self.failed = True
            return
        self._run_tasks()

    def _run_tasks(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._send()), loop.create_task(self._receive())]

    def push(self, chunk: bytes) -> None:
        """Hand caller audio (provider format) to the recognizer; never blocks the frame path."""
        session = self._session
        if session is None or not chunk:
            return
        pending = self._pending
        if self._nowait and not pending and not self._sending:
            try:
                if session.send_audio_nowait(chunk):
                    return
            except ProviderError as exc:
                self._fail(exc)
                return
            self._nowait = False
        if len(pending) >= _MAX_QUEUED_CHUNKS:
            self.dropped_chunks += 1
            return
        pending.append(chunk)
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)

    async def end_of_turn(self, wait_sec: float) -> str:
        """Ask for the final transcript of the turn; use the best interim if it does not come in time."""
        if self._session is not None and not self._finals_cover_interim():
            self._final_arrived.clear()
            try:
                await self._session.finalize()
                await asyncio.wait_for(self._final_arrived.wait(), wait_sec)
            except TimeoutError:
                self._late_final_expected = bool(self._interim)
            except ProviderError as exc:
                self._fail(exc)
        text = " ".join([*self._finals, self._interim]).strip()
        self._finals, self._interim = [], ""
        return " ".join(text.split())

    def best_text(self) -> str:
        """The turn's words so far: its finals and the latest interim."""
        return " ".join(" ".join([*self._finals, self._interim]).split())

    @property
    def open_text(self) -> str:
        """The utterance in progress: the recognizer's latest interim ("" once it was finalized, or none is open)."""
        return " ".join(self._interim.split())

    def discard_turn(self) -> None:
        """A false interruption: its words (a backchannel) must not open the caller's next turn.

        If STT was still working on it (an interim, no final yet), its final is dropped when it comes, unless
        new speech shows up first (then the final may carry that speech too, and is kept).
        """
        self._drop_late_final = bool(self._interim)
        self._finals, self._interim = [], ""

    def _finals_cover_interim(self) -> bool:
        return not self._interim and bool(self._finals)

    async def _send(self) -> None:
        session = self._session
        assert session is not None
        pending = self._pending
        loop = asyncio.get_running_loop()
        try:
            while True:
                while pending:  # everything that came in since the last wake-up, in order
                    self._sending = True
                    try:
                        await session.send_audio(pending.popleft())
                    finally:
                        self._sending = False
                self._wake = loop.create_future()
                await self._wake
        except ProviderError as exc:
            self._fail(exc)

    async def _receive(self) -> None:
        assert self._session is not None
        try:
            async for transcript in self._session.transcripts():
                text = transcript.text.strip()
                if self._drop_late_final:
                    self._drop_late_final = not transcript.is_final and not text
                    if transcript.is_final:
                        continue
                if transcript.is_final:
                    if self._late_final_expected and text and self._on_late_final is not None:
                        self._late_final_expected = False
                        self._on_late_final(text)
                        continue
                    if text:
                        self._finals.append(text)
                    self._interim = ""
                    self._final_arrived.set()
                else:
                    self._interim = text
                if text:
                    self._on_transcript(self.best_text(), transcript.is_final)
        except ProviderError as exc:
            self._fail(exc)

    def _record(self, exc: ProviderError) -> None:
        log.warning("speech recognition failed", extra={"provider": exc.provider, "error": exc.message})
        self.errors.append(f"stt {exc.provider}: {exc.message}")

    def _fail(self, exc: ProviderError) -> None:
        """The session broke: move to the next recognizer of a fallback chain, or mark the STT as failed."""
        self._record(exc)
        if self._session is None or self._switching is not None:
            return  # the other task already reported this session's failure
        self._switching = asyncio.get_running_loop().create_task(self._failover(exc))

    async def _failover(self, exc: ProviderError) -> None:
        old, self._session = self._session, None
        current = asyncio.current_task()
        others = [task for task in self._tasks if task is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        self._finals, self._interim = [], ""  # partial words of a recognizer that is gone: not to be trusted
        failover = getattr(self.provider, "failover", None)
        try:
            if failover is None:
                raise exc
            session = await failover(exc, language=self.language, endpointing_ms=self.endpointing_ms)
        except ProviderError:
            self.failed = True
            return
        self._pending.clear()  # audio in the failed recognizer's format
        self._wake, self._sending, self._nowait = None, False, True
        self._session = session
        self._run_tasks()
        self._switching = None
        if self._on_switch is not None:
            self._on_switch()

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._switching] if self._switching is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
