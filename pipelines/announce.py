"""One fixed sentence spoken on a call that has no conversation to run (its agent cannot be built).

The caller must hear why the call ends rather than silence; the sentence is played out like any reply (paced,
with marks), and :meth:`Announcement.play` returns once it has been heard or the time is up.
"""

from __future__ import annotations

import asyncio
import contextlib

from pipelines.output import MediaSink
from pipelines.playout import Playout
from pipelines.reply import Reply
from providers.base import TTSOptions, TTSProvider


class Announcement:
    def __init__(self, sink: MediaSink, tts: TTSProvider, text: str, options: TTSOptions | None = None) -> None:
        self.playout = Playout(sink)
        self._reply = Reply(playout=self.playout, tts=tts, tts_options=options or TTSOptions(), text=text)

    def on_mark(self, name: str) -> None:
        """The transport echoed a mark: that much of the sentence has been heard."""
        self.playout.on_mark(name)

    async def play(self, timeout: float) -> bool:
        """Speak the sentence and wait until it has played; False when ``timeout`` (seconds) ran out first."""

        async def speak() -> None:
            await self._reply.run()
            await self.playout.wait_idle()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(speak(), timeout)
            return True
        return False
