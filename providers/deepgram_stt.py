"""Deepgram live speech-to-text over its WebSocket API, through the official deepgram-sdk (v7).

Phone audio goes to Deepgram as it arrives from Twilio (8 kHz μ-law, no conversion), so the input format is
TELEPHONY_FORMAT. One background task per session owns the socket: it reads Results and maps them to
:class:`Transcript`, and reconnects once if the socket drops (a call should survive one network blip; a second
drop is surfaced as a ProviderError through ``transcripts()`` so the engine can fall back). Audio sent while
reconnecting is buffered (bounded) and flushed to the new socket, so the caller's words are not lost.
A keep-alive task sends Deepgram's KeepAlive whenever no audio went out for ``keepalive_interval`` seconds,
since Deepgram closes a live stream after ~10 s without data. A socket that sends only garbage (binary frames,
Results without a transcript) is a failed recognizer, not a quiet one: after ``_MAX_MALFORMED`` such messages
in a row the session fails with a ProviderError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed, WebSocketException

from providers.base import TELEPHONY_FORMAT, ProviderError, STTProvider, STTSession, Transcript
from providers.egress import EgressPolicy
from providers.egress_http import websocket_connect_options

with warnings.catch_warnings():
    # The SDK's async socket client is built on websockets' legacy API, which warns on import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from deepgram import DeepgramClientEnvironment
    from deepgram.listen.v1 import raw_client as _raw_client  # noqa: F401  (imported here for the same reason)
    from deepgram.listen.v1.socket_client import AsyncV1SocketClient
    from deepgram.listen.v1.types import ListenV1Error, ListenV1Results
    from websockets.legacy.client import connect as websocket_connect
    from websockets.legacy.exceptions import InvalidStatusCode

log = logging.getLogger(__name__)

NAME = "deepgram"
MODELS = ("nova-2-phonecall", "nova-2", "nova-3")
_RECONNECTS = 1
_MAX_BUFFERED_BYTES = TELEPHONY_FORMAT.bytes_per_second * 10  # audio kept while reconnecting
_MAX_MALFORMED = 10  # malformed messages in a row that make the session fail


def _environment(base_url: str | None) -> DeepgramClientEnvironment:
    """An SDK environment for a self-hosted/loopback Deepgram; the SDK appends ``/v1/listen`` to ``production``."""
    if not base_url:
        return DeepgramClientEnvironment.PRODUCTION
    url = base_url.rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "https", url
    http = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    ws = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    return DeepgramClientEnvironment(
        base=f"{http}://{rest}", production=f"{ws}://{rest}", agent=f"{ws}://{rest}", agent_rest=f"{http}://{rest}"
    )


class _Dropped(Exception):
    """The socket ended without us asking for it."""


class DeepgramSTTSession(STTSession):
    def __init__(self, provider: DeepgramSTT, params: dict[str, Any]) -> None:
        self._provider = provider
        self._params = params
        self._out: asyncio.Queue[Transcript | ProviderError | None] = asyncio.Queue()
        self._socket: AsyncV1SocketClient | None = None
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()  # audio sent while the socket is being re-established
        self._pending_finalize = False
        self._failure: ProviderError | None = None
        self._closing = False
        self._reconnects_left = _RECONNECTS
        self._malformed = 0
        self._last_send = asyncio.get_running_loop().time()
        self._reader: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect; raises ProviderError (401 → retryable False) if the first connection fails."""
        self._reader = asyncio.create_task(self._run(), name="deepgram-reader")
        try:
            await self._opened
        except BaseException:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            raise
        self._keepalive = asyncio.create_task(self._keep_alive(), name="deepgram-keepalive")

    # --- the STTSession interface ------------------------------------------------------------------

    async def send_audio(self, chunk: bytes) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closing or not chunk:
            return
        socket = self._socket
        if socket is not None:
            try:
                await socket.send_media(chunk)
                self._last_send = asyncio.get_running_loop().time()
                return
            except ConnectionClosed:
                pass  # the reader sees the drop too and reconnects
        self._buffer.extend(chunk)
        if len(self._buffer) > _MAX_BUFFERED_BYTES:
            del self._buffer[: len(self._buffer) - _MAX_BUFFERED_BYTES]

    async def finalize(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closing:
            return
        socket = self._socket
        if socket is not None:
            try:
                await socket.send_finalize()
                return
            except ConnectionClosed:
                pass
        self._pending_finalize = True

    async def transcripts(self) -> AsyncIterator[Transcript]:
        while (item := await self._out.get()) is not None:
            if isinstance(item, ProviderError):
                raise item
            yield item

    async def close(self) -> None:
        """Ask Deepgram to flush what it heard (CloseStream), wait briefly for it, then let go of the socket."""
        if self._closing:
            if self._reader is not None:
                await asyncio.gather(self._reader, return_exceptions=True)
            return
        self._closing = True
        if self._keepalive is not None:
            self._keepalive.cancel()
            await asyncio.gather(self._keepalive, return_exceptions=True)
        socket = self._socket
        if socket is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await socket.send_close_stream()
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), self._provider.close_timeout)
            except TimeoutError:
                self._reader.cancel()
                await asyncio.gather(self._reader, return_exceptions=True)

    # --- the socket task ---------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                try:
                    await self._connection()
                    return
                except _Dropped as exc:
                    if self._closing:
                        return
                    if self._reconnects_left <= 0:
                        raise ProviderError(NAME, f"connection lost: {exc}", retryable=True) from exc
                    self._reconnects_left -= 1
                    log.warning("deepgram connection dropped, reconnecting", extra={"error": str(exc)})
        except ProviderError as exc:
            if not self._opened.done():
                self._opened.set_exception(exc)
                return
            self._failure = exc
            self._out.put_nowait(exc)
        finally:
            self._socket = None
            self._out.put_nowait(None)

    async def _connection(self) -> None:
        """One socket's life: connect (bounded by connect_timeout), then read until it closes."""
        opened = False
        try:
            async with asyncio.timeout(self._provider.connect_timeout) as deadline:
                async with self._provider.connect(self._params) as socket:
                    deadline.reschedule(None)
                    opened = True
                    await self._on_open(socket)
                    async for message in socket:
                        self._on_message(message)
        except InvalidStatusCode as exc:  # the upgrade was answered with an HTTP error
            status = exc.status_code
            raise ProviderError(
                NAME, f"connection refused (HTTP {status})", retryable=status not in (401, 403), status=status
            ) from exc
        except TimeoutError as exc:
            if not opened:
                raise ProviderError(NAME, "timed out connecting", retryable=True, kind="timeout") from exc
            raise _Dropped("timed out") from exc
        except (ConnectionClosed, WebSocketException, OSError) as exc:
            if not opened:
                raise ProviderError(NAME, f"cannot connect: {exc}", retryable=True, kind="unreachable") from exc
            raise _Dropped(str(exc) or type(exc).__name__) from exc
        finally:
            self._socket = None
        if not self._closing:
            raise _Dropped("closed by the server")

    async def _on_open(self, socket: AsyncV1SocketClient) -> None:
        while self._buffer:
            data, self._buffer = bytes(self._buffer), bytearray()
            await socket.send_media(data)
        if self._pending_finalize:
            self._pending_finalize = False
            await socket.send_finalize()
        if self._closing:
            await socket.send_close_stream()
        self._last_send = asyncio.get_running_loop().time()
        self._socket = socket
        if not self._opened.done():
            self._opened.set_result(None)

    def _on_message(self, message: object) -> None:
        """Results → Transcript; anything odd is skipped (the SDK already drops frames that are not JSON)."""
        if isinstance(message, ListenV1Error):
            log.warning("deepgram error message", extra={"error": message.description or message.message})
            return
        if message is None or isinstance(message, bytes | bytearray | dict):  # not a Deepgram event at all
            self._skip_malformed("deepgram sent a message that is not a known event")
            return
        if not isinstance(message, ListenV1Results):
            return  # Metadata, SpeechStarted, UtteranceEnd: the engine has its own VAD and turn detector
        alternatives = getattr(message.channel, "alternatives", None)
        if not isinstance(alternatives, list) or not alternatives:
            self._skip_malformed("deepgram results without alternatives skipped")
            return
        text = getattr(alternatives[0], "transcript", None)
        if not isinstance(text, str):
            self._skip_malformed("deepgram results without a transcript skipped")
            return
        self._malformed = 0
        is_final = message.is_final is True or message.speech_final is True
        if not text.strip() and not is_final:
            return
        confidence = getattr(alternatives[0], "confidence", None)
        confidence = float(confidence) if isinstance(confidence, int | float) else None
        self._out.put_nowait(Transcript(text.strip(), is_final=is_final, confidence=confidence))

    def _skip_malformed(self, what: str) -> None:
        self._malformed += 1
        if self._malformed <= 3:
            log.warning(what)
        if self._malformed >= _MAX_MALFORMED:
            raise ProviderError(NAME, f"malformed responses: {self._malformed} in a row", retryable=True)

    async def _keep_alive(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self._provider.keepalive_interval
        while True:
            delay = self._last_send + interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            socket = self._socket
            if socket is not None:
                with contextlib.suppress(ConnectionClosed):
                    await socket.send_keep_alive()
            self._last_send = loop.time()


class DeepgramSTT(STTProvider):
    """Streaming STT on Deepgram (nova-2-phonecall, nova-2, nova-3), fed telephony μ-law directly."""

    name = NAME
    input_format = TELEPHONY_FORMAT

    def __init__(
        self,
        api_key: str,
        model: str = "nova-2-phonecall",
        *,
        base_url: str | None = None,
        endpointing_ms: int = 300,
        utterance_end_ms: int = 1000,
        smart_format: bool = True,
        keepalive_interval: float = 5.0,
        connect_timeout: float = 10.0,
        close_timeout: float = 3.0,
        egress: EgressPolicy | None = None,
    ) -> None:
        self.model = model
        self.endpointing_ms = endpointing_ms  # for sessions opened without one
        self.utterance_end_ms = utterance_end_ms  # Deepgram's minimum is 1000
        self.smart_format = smart_format
        self.keepalive_interval = keepalive_interval
        self.connect_timeout = connect_timeout
        self.close_timeout = close_timeout
        self._listen_url = _environment(base_url).production + "/v1/listen"
        self._headers = {"Authorization": f"Token {api_key}", "User-Agent": "voicex (deepgram live)"}
        self._egress = egress

    @contextlib.asynccontextmanager
    async def connect(self, params: dict[str, Any]) -> AsyncIterator[AsyncV1SocketClient]:
        """The SDK's live socket, opened here so a tenant's endpoint is reached at the address its egress policy
        checked (the SDK's own ``listen.v1.connect`` resolves the host itself, after any check)."""
        query = {key: str(value).lower() if isinstance(value, bool) else value for key, value in params.items()}
        url = f"{self._listen_url}?{urlencode(query)}"
        options = websocket_connect_options(await self._egress.check(url)) if self._egress is not None else {}
        async with websocket_connect(url, extra_headers=self._headers, **options) as protocol:
            yield AsyncV1SocketClient(websocket=protocol)

    def params(self, language: str, endpointing_ms: int | None = None) -> dict[str, Any]:
        """The query parameters of the live request (booleans are sent as "true"/"false" by the SDK).

        ``endpointing`` is Deepgram's pause before it finalizes (the agent's ``endpointingMs``); the turn itself
        is ended by the engine's detector, never by Deepgram.
        """
        return {
            "model": self.model,
            "language": language,
            "encoding": "mulaw",
            "sample_rate": self.input_format.sample_rate,
            "channels": 1,
            "interim_results": True,
            "endpointing": self.endpointing_ms if endpointing_ms is None else endpointing_ms,
            "utterance_end_ms": self.utterance_end_ms,
            "vad_events": True,
            "smart_format": self.smart_format,
            "punctuate": True,
        }

    async def open_session(self, *, language: str = "en", endpointing_ms: int | None = None) -> STTSession:
        session = DeepgramSTTSession(self, self.params(language, endpointing_ms))
        await session.start()
        return session


def create(
    category: str, model: str, credentials: dict[str, Any], settings: dict[str, Any], egress: EgressPolicy | None = None
) -> DeepgramSTT:
    """Registry factory: credentials {"apiKey"}; settings "baseUrl" (self-hosted Deepgram, tests) and
    "timeoutSec" (the longest wait for the live socket to open)."""
    if category != "stt":
        raise ProviderError(NAME, f"no {category} adapter", retryable=False)
    api_key = credentials.get("apiKey")
    if not api_key:
        raise ProviderError(NAME, "missing credential apiKey", retryable=False, status=401)
    timeout = float(settings.get("timeoutSec") or 10.0)
    return DeepgramSTT(
        str(api_key),
        model or MODELS[0],
        base_url=settings.get("baseUrl") or None,
        connect_timeout=timeout,
        egress=egress,
    )
