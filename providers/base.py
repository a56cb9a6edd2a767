"""The three small interfaces the conversation engine talks to: streaming STT, streaming LLM, streaming TTS.

Every adapter (Deepgram, OpenAI, Groq, Ollama, ElevenLabs, Edge, the embedded offline stack, the scripted
test providers) implements one of these and nothing more, so the engine never knows which vendor it uses.
Audio crosses these interfaces as raw bytes in a declared :class:`AudioFormat`; the engine converts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

Encoding = Literal["pcm16", "mulaw"]


@dataclass(frozen=True)
class AudioFormat:
    """Mono audio: 16-bit little-endian PCM or 8-bit μ-law, at ``sample_rate`` Hz."""

    encoding: Encoding
    sample_rate: int

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * (2 if self.encoding == "pcm16" else 1)


TELEPHONY_FORMAT = AudioFormat("mulaw", 8000)


# Why a provider failed, in words a tenant may see (``message`` may quote the vendor's reply; this never does).
FailureKind = Literal["unreachable", "timeout", "auth", "bad_response", "refused"]


class ProviderError(Exception):
    """A provider failed. ``retryable`` says whether the same request could succeed later (a 5xx, a timeout, a busy
    local model) or never will (a missing or rejected key, an unknown model). Fallback chains take over in both
    cases (a caller is waiting either way); ``status`` is the HTTP status behind it, if any. ``kind`` classifies
    the failure; when not given it follows from ``status`` (401/403: auth, any other: bad_response)."""

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        retryable: bool = True,
        status: int | None = None,
        kind: FailureKind | None = None,
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message
        self.retryable = retryable
        self.status = status
        if kind is None and status is not None:
            kind = "auth" if status in (401, 403) else "bad_response"
        self.kind = kind


# --- speech to text ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transcript:
    """A transcript of the caller's current utterance: interim (may change) or final (settled)."""

    text: str
    is_final: bool
    confidence: float | None = None


class STTSession(ABC):
    """One streaming recognition session for one call."""

    @abstractmethod
    async def send_audio(self, chunk: bytes) -> None:
        """Push caller audio in the provider's ``input_format``; never blocks for long."""

    def send_audio_nowait(self, chunk: bytes) -> bool:
        """Optional fast path: take ``chunk`` synchronously, exactly as :meth:`send_audio` would.

        The engine calls it on the per-frame path (50 times a second per call), so only a session whose
        ``send_audio`` does no I/O and never waits should implement it; that saves a task wake-up per frame.
        It may raise :class:`ProviderError` like ``send_audio``. The default returns False (not taken), and
        after one False the engine uses ``send_audio`` for the rest of the session.
        """
        return False

    @abstractmethod
    async def finalize(self) -> None:
        """The caller's turn ended: emit a final transcript for what was said as soon as possible."""

    @abstractmethod
    def transcripts(self) -> AsyncIterator[Transcript]:
        """Interim and final transcripts as they arrive; ends when the session is closed."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connection; idempotent."""


class _Closable:
    async def aclose(self) -> None:
        """Release pooled connections; called when the call that built this adapter ends."""


class STTProvider(_Closable, ABC):
    name: str = "stt"
    input_format: AudioFormat = AudioFormat("pcm16", 16000)

    @abstractmethod
    async def open_session(self, *, language: str = "en", endpointing_ms: int | None = None) -> STTSession:
        """Start a recognition session (for example, open the vendor's WebSocket).

        ``endpointing_ms`` is the pause after which the recognizer finalizes what it heard so far (None: the
        adapter's own default). It only paces finals: the engine's turn detector decides when a turn ends.
        """


# --- language model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class LLMChunk:
    """A piece of the streamed reply; the last chunk of a stream may carry only ``usage``."""

    text: str = ""
    usage: Usage | None = None


@dataclass(frozen=True)
class LLMOptions:
    """One request's sampling. A call always passes its agent's values (the agent schema holds those defaults);
    these defaults are only the adapters' fallback for requests made outside a call (provider checks, tests)."""

    temperature: float = 0.7
    max_tokens: int = 256
    extra: dict[str, object] = field(default_factory=dict)


class LLMProvider(_Closable, ABC):
    name: str = "llm"
    # Worth starting answers the caller may never hear (preemptive generation)? Not for a model on the
    # call's own CPU: there a speculative answer slows the STT final and the real answer it competes with.
    speculative: bool = True

    async def prefill(self, messages: list[ChatMessage]) -> None:
        """Warm up for a conversation that starts with ``messages`` (e.g. evaluate the system prompt while the
        greeting plays). Optional; local models use it, hosted APIs need nothing."""

    @abstractmethod
    def stream_chat(self, messages: list[ChatMessage], options: LLMOptions) -> AsyncIterator[LLMChunk]:
        """Stream the reply to ``messages``; cancelling the iteration must stop generation."""


# --- text to speech ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TTSOptions:
    """Per-call delivery; the voice is the adapter's model (an agent's ttsModelId), so every voice of a fallback
    chain keeps its own."""

    speed: float = 1.0
    language: str = "en"


class TTSProvider(_Closable, ABC):
    name: str = "tts"
    output_format: AudioFormat = AudioFormat("pcm16", 16000)

    @abstractmethod
    def synthesize(self, text: str, options: TTSOptions) -> AsyncIterator[bytes]:
        """Stream audio for ``text`` in ``output_format`` as soon as it is produced."""
