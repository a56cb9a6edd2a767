"""One simulated phone call: Twilio's signed voice webhook, then a real-time bidirectional Media Stream.

:class:`SimulatedCall` is the caller's API (speak, stay quiet, wait for the agent, talk over it, press keys, hang
up) and the place the call's measurements come out (:meth:`SimulatedCall.result`, :meth:`SimulatedCall.write_wav`).
"""

from __future__ import annotations

import asyncio
import wave
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from scripts.twilio_sim.caller_audio import AudioSource, CallerAudio, LineNoise, caller_audio, silence_audio
from scripts.twilio_sim.messages import StreamIds
from scripts.twilio_sim.results import CallResult, TurnMetrics
from scripts.twilio_sim.stream import MediaStream, now
from scripts.twilio_sim.webhook import (
    TwimlAnswer,
    connect_url,
    inbound_call_params,
    new_sid,
    parse_twiml,
    post_voice_webhook,
    sign,
    voice_url,
)

STREAM_USER_AGENT = "Twilio.TmeWs/1.0"
DTMF_KEYS = "0123456789*#ABCD"


@dataclass
class CallConfig:
    """Where to call and as whom. ``public_url`` is the URL the server believes it has (default: ``base_url``).

    ``noise_dbfs``: the line's background level (pink noise, telephone band); None: digital silence between words.
    """

    base_url: str
    api_key: str
    auth_token: str
    agent_id: str | None = None
    public_url: str | None = None
    from_number: str = "+14155550123"
    to_number: str = "+15005550006"
    account_sid: str | None = None
    timestamp_offset_ms: int = 155
    timeout_s: float = 10.0
    noise_dbfs: float | None = None


class SimulatedCall:
    """A caller on a Twilio line. ``dial()`` first; then speak, wait, press keys and ``hangup()``."""

    def __init__(self, config: CallConfig, http: aiohttp.ClientSession | None = None) -> None:
        self.config = config
        self.ids = StreamIds(config.account_sid or new_sid("AC"), new_sid("CA"), new_sid("MZ"))
        self._outcome = "new"  # before a stream: new | refused | error
        self.error: str | None = None
        self.twiml = ""
        self.answer: TwimlAnswer | None = None
        self.stream: MediaStream | None = None
        self._http = http
        self._own_http = http is None

    async def __aenter__(self) -> SimulatedCall:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.hangup()
        await self.close()

    @property
    def outcome(self) -> str:
        """new, refused, error (webhook, handshake or a broken socket), streaming, or completed."""
        if self.stream is None:
            return self._outcome
        if not self.stream.is_ended:
            return "streaming"
        return "error" if self.stream.error else "completed"

    @property
    def ended(self) -> bool:
        return self.stream is None or self.stream.is_ended

    async def dial(self) -> bool:
        """Ring the webhook and, if the TwiML connects a stream, open it and send connected + start.

        Returns True when streaming; otherwise ``outcome`` is "refused" (TwiML said and hung up) or "error".
        """
        cfg = self.config
        if self._http is None:
            self._http = aiohttp.ClientSession()
        public = cfg.public_url or cfg.base_url
        params = inbound_call_params(self.ids.account_sid, self.ids.call_sid, cfg.from_number, cfg.to_number)
        signed_url = voice_url(public, cfg.api_key, cfg.agent_id)
        post_url = voice_url(cfg.base_url, cfg.api_key, cfg.agent_id)
        try:
            reply = await post_voice_webhook(self._http, post_url, signed_url, params, cfg.auth_token, cfg.timeout_s)
            self.twiml = reply.body
            if reply.status != 200:
                return self._fail(f"webhook answered HTTP {reply.status}: {reply.body[:200]}")
            self.answer = parse_twiml(reply.body, signed_url)
        except (aiohttp.ClientError, TimeoutError, ValueError, SyntaxError) as exc:
            return self._fail(f"webhook: {type(exc).__name__}: {exc}")
        if self.answer.stream_url is None:
            self._outcome = "refused"
            return False
        stream_url = self.answer.stream_url
        headers = {"X-Twilio-Signature": sign(cfg.auth_token, stream_url), "User-Agent": STREAM_USER_AGENT}
        try:
            ws = await asyncio.wait_for(
                self._http.ws_connect(connect_url(stream_url, public, cfg.base_url), headers=headers), cfg.timeout_s
            )
        except aiohttp.WSServerHandshakeError as exc:
            return self._fail(f"stream handshake answered HTTP {exc.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._fail(f"stream connect: {type(exc).__name__}: {exc}")
        noise = None if cfg.noise_dbfs is None else LineNoise(cfg.noise_dbfs)
        self.stream = MediaStream(ws, self.ids, cfg.timestamp_offset_ms, noise)
        await self.stream.open(self.answer.parameters)
        return True

    def _fail(self, message: str) -> bool:
        self._outcome, self.error = "error", message
        return False

    async def hangup(self) -> None:
        """The caller hangs up: Twilio sends ``stop`` and closes the socket."""
        if self.stream is not None:
            await self.stream.hangup(self.config.timeout_s)

    async def wait_closed(self, timeout: float) -> bool:
        """Wait for the call to end (e.g. the server closes the stream); True if it did."""
        if self.stream is None:
            return True
        try:
            await asyncio.wait_for(self.stream.ended.wait(), timeout)
        except TimeoutError:
            return False
        await self.stream.close(self.config.timeout_s)
        return True

    async def close(self) -> None:
        """Release the socket, the clocks and (if we made it) the HTTP session. Safe to call twice.

        Without :meth:`hangup` first this drops the connection without ``stop``, like a lost network path.
        """
        if self.stream is not None:
            await self.stream.close(self.config.timeout_s)
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None

    # ----- the caller's side -----------------------------------------------------------------------------------

    async def say(self, audio: AudioSource | CallerAudio, rate: int = 8000, wait: bool = True) -> TurnMetrics | None:
        """Speak ``audio`` (WAV path/bytes, or PCM16 at ``rate``) in real time after anything already queued.

        With ``wait`` (default) returns once the last frame was sent, with the turn it opened (None if it held no
        speech, the call is over, or ``wait`` is False).
        """
        if self.ended:
            return None
        assert self.stream is not None
        clip = audio if isinstance(audio, CallerAudio) else caller_audio(audio, rate)
        utterance = self.stream.enqueue(clip)
        if not wait:
            return None
        await asyncio.shield(utterance.done)
        return None if utterance.turn is None else self._turn_metrics(utterance.turn)

    async def silence(self, ms: int) -> None:
        """Stay quiet for ``ms`` (silence frames keep flowing, as on a real line)."""
        if not self.ended:
            assert self.stream is not None
            await asyncio.shield(self.stream.enqueue(silence_audio(ms)).done)

    async def dtmf(self, digit: str) -> None:
        """Press a key: a ``dtmf`` message (track ``inbound_track``) between media frames."""
        if len(digit) != 1 or digit not in DTMF_KEYS:
            raise ValueError(f"not a DTMF key: {digit!r}")
        if not self.ended:
            assert self.stream is not None
            await self.stream.send_dtmf(digit)

    async def wait_for_agent_audio(self, timeout: float = 10.0) -> float | None:
        """Wait until the caller hears agent sound that arrived after their last words; returns when it began."""
        stream = self.stream
        if stream is None:
            return None
        since = stream.last_speech_end()
        deadline = now() + timeout
        while not stream.is_ended and now() < deadline:
            heard = stream.playback.audible_since(since)
            if heard is not None and heard <= now():
                return heard
            # nothing can change before the sound is due or new audio arrives: no polling
            await stream.wait_change(deadline if heard is None else min(heard, deadline))
        return None

    async def wait_for_agent_silence(
        self, timeout: float = 10.0, quiet_ms: int = 500, audio_timeout: float | None = None
    ) -> bool:
        """Wait until the agent has replied (sound after the caller's last words) and then been quiet ``quiet_ms``.

        ``audio_timeout`` bounds the wait for the reply to start (default: ``timeout``), so "no greeting" costs
        little while a long reply may still finish. False on a timeout or when the call ends first.
        """
        deadline = now() + timeout
        if await self.wait_for_agent_audio(min(timeout, audio_timeout or timeout)) is None:
            return False
        assert self.stream is not None
        stream = self.stream
        while not stream.is_ended and now() < deadline:
            if now() - stream.playback.play_end >= quiet_ms / 1000:
                return True
            # new audio moves play_end later, a clear moves it to now: both wake this wait
            await stream.wait_change(min(stream.playback.play_end + quiet_ms / 1000, deadline))
        return False

    async def barge_in_after(
        self, ms_into_agent_speech: int, audio: AudioSource | CallerAudio, rate: int = 8000, timeout: float = 10.0
    ) -> TurnMetrics | None:
        """Talk over the agent: ``ms_into_agent_speech`` after its sound starts, speak ``audio``."""
        started = await self.wait_for_agent_audio(timeout)
        if started is None:
            return None
        delay = started + ms_into_agent_speech / 1000 - now()
        if delay > 0:
            await asyncio.sleep(delay)
        return await self.say(audio, rate=rate)

    # ----- results ----------------------------------------------------------------------------------------------

    def _turn_metrics(self, index: int) -> TurnMetrics:
        stream = self.stream
        assert stream is not None
        turn = stream.turns[index]
        following = stream.turns[index + 1].onset if index + 1 < len(stream.turns) else float("inf")
        metrics = TurnMetrics(index + 1, turn.onset - stream.t0, None, turn.interrupted)
        if turn.end is not None:
            metrics.speech_end_s = turn.end - stream.t0
            heard = stream.playback.audible_since(turn.end, before=following)
            if heard is not None and heard <= (stream.end_time or now()):
                metrics.latency_ms = (heard - turn.end) * 1000
        if turn.interrupted:
            clear = next((c for c in stream.counters.clears if turn.onset <= c < following), None)
            metrics.barge_in_ms = None if clear is None else (clear - turn.onset) * 1000
        return metrics

    def recording(self) -> bytes:
        """PCM16 at 8 kHz of what the caller heard, from stream start to the end (or now), silence included."""
        stream = self.stream
        if stream is None:
            return b""
        return stream.playback.render(stream.t0, stream.end_time or now())

    def write_wav(self, path: str | Path) -> float:
        """Write :meth:`recording` as an 8 kHz 16-bit mono WAV; returns its length in seconds."""
        pcm = self.recording()
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(pcm)
        return len(pcm) / 2 / 8000

    def result(self) -> CallResult:
        """Outcome, per-turn measurements and protocol counters (call after hangup for final numbers)."""
        result = CallResult(
            outcome=self.outcome,
            call_sid=self.ids.call_sid,
            refused_text=self.answer.said if self.outcome == "refused" and self.answer else None,
            error=self.error,
            twiml=self.twiml,
            custom_parameters=dict(self.answer.parameters) if self.answer else {},
        )
        stream = self.stream
        if stream is None:
            return result
        c = stream.counters
        result.error = stream.error
        result.stream_sid = self.ids.stream_sid
        result.turns = [self._turn_metrics(i) for i in range(len(stream.turns))]
        result.frames_sent, result.dtmf_sent = c.frames_sent, c.dtmf_sent
        result.media_received, result.media_bytes_received = c.media_received, c.media_bytes
        result.marks_received, result.marks_echoed, result.clears = c.marks_received, c.marks_echoed, len(c.clears)
        result.violations = list(c.violations)
        result.server_closed, result.close_code = stream.server_closed, stream.close_code
        result.duration_s = (stream.end_time or now()) - stream.t0
        result.max_send_lag_ms = c.max_send_lag_s * 1000
        return result
