"""SttStream's audio hand-off: every caller frame reaches the recognizer once, in order, without blocking calls.

Two paths: a recognizer that takes audio synchronously (``send_audio_nowait``) is fed on the frame path; any
other gets frames from a buffer drained by one sender task. Both must keep order, survive a recognizer
failure (the next one of a fallback chain takes over) and drop audio only when a recognizer stalls for 10 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pipelines.audio import silence, tone
from pipelines.stt_stream import SttStream
from providers.base import ProviderError, STTProvider, STTSession, Transcript
from providers.scripted import ScriptedSTT


class _Session(STTSession):
    """Records the audio it gets; ``gate`` (when set up) holds each async send like a slow network."""

    def __init__(self, *, nowait: bool, fail_at: int | None = None) -> None:
        self.nowait = nowait
        self.fail_at = fail_at
        self.audio: list[bytes] = []
        self.gate: asyncio.Event | None = None
        self.closed = asyncio.Event()

    def _take(self, chunk: bytes) -> None:
        if self.fail_at is not None and len(self.audio) == self.fail_at:
            raise ProviderError("fake", "connection dropped")
        self.audio.append(chunk)

    async def send_audio(self, chunk: bytes) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self._take(chunk)

    def send_audio_nowait(self, chunk: bytes) -> bool:
        if self.nowait:
            self._take(chunk)
        return self.nowait

    async def finalize(self) -> None:
        return None

    async def transcripts(self) -> AsyncIterator[Transcript]:
        await self.closed.wait()
        return
        yield  # an async generator that ends when the session is closed

    async def close(self) -> None:
        self.closed.set()


class _Provider(STTProvider):
    """Hands out the given sessions in turn; ``failover`` is what a fallback chain offers. ``opened`` records the
    endpointing each session was asked for."""

    def __init__(self, *sessions: _Session) -> None:
        self.sessions = list(sessions)
        self.opened: list[tuple[str, int | None]] = []

    async def open_session(self, *, language: str = "en", endpointing_ms: int | None = None) -> STTSession:
        self.opened.append(("open", endpointing_ms))
        return self.sessions.pop(0)

    async def failover(
        self, failure: ProviderError, *, language: str = "en", endpointing_ms: int | None = None
    ) -> STTSession:
        if not self.sessions:
            raise failure
        self.opened.append(("failover", endpointing_ms))
        return self.sessions.pop(0)


def _frames(count: int, start: int = 0) -> list[bytes]:
    return [i.to_bytes(2, "big") * 160 for i in range(start, start + count)]


async def _stream(
    provider: _Provider, switched: list[str] | None = None, endpointing_ms: int | None = None
) -> SttStream:
    stream = SttStream(
        provider,
        language="en",
        endpointing_ms=endpointing_ms,
        on_transcript=lambda text, final: None,
        on_switch=(lambda: switched.append("switched")) if switched is not None else None,
    )
    await stream.start()
    return stream


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_recognizer_that_takes_audio_synchronously_has_each_frame_as_soon_as_it_is_pushed() -> None:
    session = _Session(nowait=True)
    stream = await _stream(_Provider(session))
    for frame in _frames(3):
        stream.push(frame)
    assert session.audio == _frames(3)  # no loop turn needed
    await stream.close()


async def test_a_slow_recognizer_gets_every_frame_in_order_including_those_pushed_while_it_was_busy() -> None:
    session = _Session(nowait=False)
    session.gate = asyncio.Event()
    stream = await _stream(_Provider(session))
    for frame in _frames(5):
        stream.push(frame)
        await _settle()
    assert session.audio == []  # its first send is still waiting on the network
    session.gate.set()
    await _settle()
    assert session.audio == _frames(5)
    stream.push(_frames(1, 5)[0])  # the sender went idle: a new frame wakes it
    await _settle()
    assert session.audio == _frames(6)
    assert stream.dropped_chunks == 0
    await stream.close()


async def test_audio_beyond_ten_seconds_behind_a_stalled_recognizer_is_dropped_and_counted() -> None:
    session = _Session(nowait=False)
    session.gate = asyncio.Event()
    stream = await _stream(_Provider(session))
    stream.push(_frames(1)[0])
    await _settle()  # the sender holds frame 0, stuck in its send
    for frame in _frames(510, 1):
        stream.push(frame)
    assert stream.dropped_chunks == 10
    session.gate.set()
    await _settle()
    assert session.audio == _frames(501)  # the oldest 10 s went through, in order
    await stream.close()


async def test_a_recognizer_failing_on_the_frame_path_hands_the_call_to_the_next_one() -> None:
    first, second = _Session(nowait=True, fail_at=2), _Session(nowait=False)
    switched: list[str] = []
    stream = await _stream(_Provider(first, second), switched)
    frames = _frames(6)
    for frame in frames[:3]:
        stream.push(frame)  # the third one breaks the first recognizer
    await _settle()
    assert switched == ["switched"] and not stream.failed
    assert stream.errors == ["stt fake: connection dropped"]
    for frame in frames[3:]:
        stream.push(frame)
        await _settle()
    assert first.audio == frames[:2]
    assert second.audio == frames[3:]  # the new recognizer goes through the sender task
    await stream.close()


async def test_a_failure_with_no_recognizer_left_marks_the_stream_failed_and_later_audio_is_ignored() -> None:
    session = _Session(nowait=True, fail_at=0)
    stream = await _stream(_Provider(session))
    stream.push(_frames(1)[0])
    await _settle()
    assert stream.failed
    stream.push(_frames(1, 1)[0])  # nobody to take it: ignored, not an error
    assert session.audio == [] and stream.dropped_chunks == 0
    await stream.close()


async def test_the_scripted_recognizer_fed_on_the_frame_path_still_hears_words_only_in_loud_audio() -> None:
    heard: list[tuple[str, bool]] = []
    stream = SttStream(
        ScriptedSTT(["first words", "second words"]),
        language="en",
        on_transcript=lambda text, final: heard.append((text, final)),
    )
    await stream.start()
    for frame in [silence(20)] * 20 + [tone(300, 20, amplitude=0.2)] * 4:  # 80 ms of speech: too short for words
        stream.push(frame)
    await _settle()
    assert heard == []
    stream.push(tone(300, 20, amplitude=0.2))  # 100 ms of speech: the interim shows up
    await _settle()
    assert heard == [("first words", False)]
    assert await stream.end_of_turn(1.0) == "first words"
    await stream.close()


async def test_the_calls_endpointing_reaches_the_recognizer_and_the_one_that_takes_over() -> None:
    first, second = _Session(nowait=True, fail_at=0), _Session(nowait=True)
    provider = _Provider(first, second)
    stream = await _stream(provider, [], endpointing_ms=200)
    stream.push(_frames(1)[0])  # breaks the first recognizer
    await _settle()
    assert provider.opened == [("open", 200), ("failover", 200)]
    await stream.close()


def _scripted_frames(session: STTSession, pattern: list[tuple[bool, int]]) -> None:
    for loud, ms in pattern:
        for _ in range(ms // 20):
            session.send_audio_nowait(tone(300, 20, amplitude=0.2) if loud else silence(20))


async def _drain(session: STTSession, into: list[Transcript]) -> None:
    async for transcript in session.transcripts():
        into.append(transcript)


async def test_the_scripted_recognizer_finalizes_after_endpointing_ms_of_quiet_and_not_before() -> None:
    session = await ScriptedSTT(["Hello there.", "Second."]).open_session(endpointing_ms=200)
    got: list[Transcript] = []
    reader = asyncio.create_task(_drain(session, got))
    _scripted_frames(session, [(True, 400), (False, 180)])
    await _settle()
    assert got == [Transcript("Hello there.", is_final=False)]  # 180 ms of quiet: still open
    _scripted_frames(session, [(False, 20)])
    await _settle()
    assert got[1:] == [Transcript("Hello there.", is_final=True)]  # 200 ms: the final at once, the utterance closed
    _scripted_frames(session, [(False, 1000), (True, 200)])  # more quiet adds nothing; speech is a new utterance
    await _settle()
    assert got[2:] == [Transcript("Second.", is_final=False)]
    await session.finalize()  # the engine ends the turn: the open utterance's final
    await _settle()
    assert got[3:] == [Transcript("Second.", is_final=True)]
    await session.finalize()  # nothing open: an empty final answers
    await _settle()
    assert got[4:] == [Transcript("", is_final=True)]
    await session.close()
    await reader


async def test_the_scripted_recognizer_defaults_to_300_ms_of_endpointing() -> None:
    session = await ScriptedSTT("Hi.").open_session()
    got: list[Transcript] = []
    reader = asyncio.create_task(_drain(session, got))
    _scripted_frames(session, [(True, 200), (False, 280)])
    await _settle()
    assert not any(t.is_final for t in got)
    _scripted_frames(session, [(False, 20)])
    await _settle()
    assert [t for t in got if t.is_final] == [Transcript("Hi.", is_final=True)]
    await session.close()
    await reader


async def test_a_turn_with_a_hesitation_gathers_both_finals_without_asking_for_another() -> None:
    heard: list[tuple[str, bool]] = []
    provider = ScriptedSTT(["I'd like to", "book a table."])
    stream = SttStream(
        provider, language="en", endpointing_ms=200, on_transcript=lambda text, final: heard.append((text, final))
    )
    await stream.start()
    for loud, ms in [(True, 600), (False, 400), (True, 600), (False, 200)]:
        for _ in range(ms // 20):
            stream.push(tone(300, 20, amplitude=0.2) if loud else silence(20))
            await _settle()
    assert [final for _, final in heard] == [False, True, False, True]
    assert heard[-1] == ("I'd like to book a table.", True)
    finalized = False

    async def no_finalize() -> None:
        nonlocal finalized
        finalized = True

    provider.sessions[0].finalize = no_finalize  # type: ignore[method-assign]
    assert await stream.end_of_turn(1.0) == "I'd like to book a table."
    assert not finalized  # the finals already covered the turn
    await stream.close()
