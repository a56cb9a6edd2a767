"""Playout under a transport whose sends yield (the real Twilio sink awaits the socket): a pause or a clear may land
while a resume is still replaying. Found by profiling: a pause during a replay left the writer's wake-up event set
while paused, so the reply writer spun without ever yielding and froze every call on the event loop."""

from __future__ import annotations

import asyncio

from pipelines.output import MediaSink
from pipelines.playout import Playout

CHUNK = 800  # 100 ms of μ-law at 8 kHz: Playout's default chunk


class GatedSink(MediaSink):
    """Records every message; ``send_audio`` records, then waits for ``gate`` like a socket waiting to drain."""

    def __init__(self) -> None:
        self.log: list[tuple[str, object]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.audio_sent = asyncio.Event()

    async def send_audio(self, payload: bytes) -> None:
        self.log.append(("media", payload))
        self.audio_sent.set()
        await self.gate.wait()

    async def send_mark(self, name: str) -> None:
        self.log.append(("mark", name))
        await asyncio.sleep(0)

    async def send_clear(self) -> None:
        self.log.append(("clear", None))
        await asyncio.sleep(0)

    def media_after_last_clear(self) -> list[bytes]:
        last = max(i for i, (kind, _) in enumerate(self.log) if kind == "clear")
        return [bytes(p) for kind, p in self.log[last + 1 :] if kind == "media"]  # type: ignore[arg-type]


async def _three_chunks_sent() -> tuple[Playout, GatedSink, list[bytes]]:
    sink = GatedSink()
    playout = Playout(sink, lead_ms=1000)  # room for all three chunks at once: no pacing waits in these tests
    playout.begin_reply()
    chunks = [bytes([k]) * CHUNK for k in range(3)]
    await playout.write(playout.begin_segment("hello there"), b"".join(chunks))
    return playout, sink, chunks


async def _replay_held_mid_send(playout: Playout, sink: GatedSink) -> asyncio.Task[None]:
    await playout.pause()
    sink.gate.clear()
    sink.audio_sent.clear()
    resume = asyncio.create_task(playout.resume())
    await sink.audio_sent.wait()  # the replay's first chunk is on the wire; its send has not returned
    return resume


async def test_a_pause_during_a_replay_holds_the_writer_and_keeps_the_rest_for_the_next_resume() -> None:
    playout, sink, chunks = await _three_chunks_sent()
    resume = await _replay_held_mid_send(playout, sink)
    await playout.pause()
    sink.gate.set()
    await resume
    assert playout.paused
    assert not playout._resumed.is_set()  # the writer's wake-up: set while paused, it would spin the event loop
    assert sink.media_after_last_clear() == []  # nothing more of the replay after the second clear
    await playout.resume()
    assert sink.media_after_last_clear() == chunks  # every unheard chunk, once, in order
    assert not playout.paused and playout._resumed.is_set()


async def test_a_clear_during_a_replay_stops_it_and_releases_the_writer() -> None:
    playout, sink, _ = await _three_chunks_sent()
    resume = await _replay_held_mid_send(playout, sink)
    await playout.clear()
    sink.gate.set()
    await resume
    assert sink.media_after_last_clear() == []
    assert not playout.paused and not playout.speaking and playout._resumed.is_set()
