"""The narrow contract between the engine and a transport (Twilio today, a browser WebSocket later).

The engine calls a :class:`MediaSink` to send agent audio, marks and clears; the transport feeds caller
audio, mark echoes and DTMF back into the session. Everything else (pacing, heard text, barge-in) is the
engine's, so a new transport is one small adapter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from providers.base import TELEPHONY_FORMAT, AudioFormat


class MediaSink(ABC):
    """Where agent audio goes. Implementations only serialize; they never buffer or pace."""

    format: AudioFormat = TELEPHONY_FORMAT

    @abstractmethod
    async def send_audio(self, payload: bytes) -> None:
        """Send agent audio (in ``format``) to be played after what was sent before."""

    @abstractmethod
    async def send_mark(self, name: str) -> None:
        """Ask to be told (``CallSession.on_mark``) when the audio sent so far has played."""

    @abstractmethod
    async def send_clear(self) -> None:
        """Drop all audio not yet played. Pending marks may be echoed afterwards; they do not mean 'played'."""

    async def close(self, reason: str) -> None:  # noqa: B027 - optional hook
        """The session ended the call (goodbye said, silence, max duration): end the stream."""
