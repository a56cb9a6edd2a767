"""Media Streams messages: the ones Twilio sends (built exactly as TWILIO.md §1.2 shows) and a strict check of the
ones a server sends back (§1.4), so a test can assert a server never earns warning 31950/31951.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import orjson

FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law
FRAME_MS = 20
MEDIA_FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
_B64_CACHE_MAX = 4096  # distinct frames remembered: a run's clips and silence, bounded for arbitrary audio
_b64_cache: dict[bytes, str] = {}


def wire(message: dict[str, Any]) -> bytes:
    """The text frame Twilio sends for ``message``: compact JSON, ASCII-escaped, keys in the order built."""
    return json.dumps(message, separators=(",", ":")).encode()


def b64_payload(frame: bytes) -> str:
    """Base64 of a μ-law frame, cached: callers send the same clip and silence frames thousands of times."""
    encoded = _b64_cache.get(frame)
    if encoded is None:
        if len(_b64_cache) >= _B64_CACHE_MAX:
            _b64_cache.clear()
        encoded = _b64_cache[frame] = base64.b64encode(frame).decode("ascii")
    return encoded


@dataclass
class StreamIds:
    account_sid: str
    call_sid: str
    stream_sid: str


class TwilioMessages:
    """Builds Twilio→server frames and owns the numbering: ``sequenceNumber`` counts every message after
    ``connected``; ``chunk`` counts media only; ``timestamp`` is the media clock in ms from a non-zero start."""

    def __init__(self, ids: StreamIds, timestamp_offset_ms: int = 155) -> None:
        self.ids = ids
        self.timestamp_offset_ms = timestamp_offset_ms
        self.sequence = 0
        self.chunk = 0
        # media_bytes() fills this template: the exact bytes wire(media()) gives, without building a dict
        self._media_tail = '"},"streamSid":' + json.dumps(ids.stream_sid) + "}"

    def _next(self) -> str:
        self.sequence += 1
        return str(self.sequence)

    @staticmethod
    def connected() -> dict[str, Any]:
        return {"event": "connected", "protocol": "Call", "version": "1.0.0"}

    def start(self, custom_parameters: dict[str, str]) -> dict[str, Any]:
        ids = self.ids
        return {
            "event": "start",
            "sequenceNumber": self._next(),
            "start": {
                "accountSid": ids.account_sid,
                "streamSid": ids.stream_sid,
                "callSid": ids.call_sid,
                "tracks": ["inbound"],
                "mediaFormat": dict(MEDIA_FORMAT),
                "customParameters": dict(custom_parameters),
            },
            "streamSid": ids.stream_sid,
        }

    def media(self, payload: bytes) -> dict[str, Any]:
        self.chunk += 1
        timestamp = self.timestamp_offset_ms + (self.chunk - 1) * FRAME_MS
        return {
            "event": "media",
            "sequenceNumber": self._next(),
            "media": {
                "track": "inbound",
                "chunk": str(self.chunk),
                "timestamp": str(timestamp),
                "payload": base64.b64encode(payload).decode("ascii"),
            },
            "streamSid": self.ids.stream_sid,
        }

    def media_bytes(self, payload: bytes) -> bytes:
        """``wire(self.media(payload))``, byte for byte, at a fraction of the cost (one per call every 20 ms)."""
        self.chunk += 1
        self.sequence += 1
        timestamp = self.timestamp_offset_ms + (self.chunk - 1) * FRAME_MS
        return (
            f'{{"event":"media","sequenceNumber":"{self.sequence}","media":{{"track":"inbound","chunk":"{self.chunk}",'
            f'"timestamp":"{timestamp}","payload":"{b64_payload(payload)}{self._media_tail}'
        ).encode()

    def dtmf(self, digit: str) -> dict[str, Any]:
        return {
            "event": "dtmf",
            "streamSid": self.ids.stream_sid,
            "sequenceNumber": self._next(),
            "dtmf": {"track": "inbound_track", "digit": digit},
        }

    def mark(self, name: str) -> dict[str, Any]:
        sid = self.ids.stream_sid
        return {"event": "mark", "sequenceNumber": self._next(), "streamSid": sid, "mark": {"name": name}}

    def stop(self) -> dict[str, Any]:
        ids = self.ids
        return {
            "event": "stop",
            "sequenceNumber": self._next(),
            "streamSid": ids.stream_sid,
            "stop": {"accountSid": ids.account_sid, "callSid": ids.call_sid},
        }


@dataclass(frozen=True)
class ServerMedia:
    payload: bytes


@dataclass(frozen=True)
class ServerMark:
    name: str


@dataclass(frozen=True)
class ServerClear:
    pass


ServerMessage = ServerMedia | ServerMark | ServerClear

_SHAPES: dict[str, tuple[set[str], str | None, set[str]]] = {
    # event: (top-level keys, nested object key, nested keys)
    "media": ({"event", "streamSid", "media"}, "media", {"payload"}),
    "mark": ({"event", "streamSid", "mark"}, "mark", {"name"}),
    "clear": ({"event", "streamSid"}, None, set()),
}


class Violation(ValueError):
    """A server message Twilio would reject (31951) and drop."""


def parse_server_message(text: str, stream_sid: str | None) -> ServerMessage:
    """One server text frame → a message, or Violation saying what Twilio would object to.

    Strict on purpose: only media/mark/clear, exactly the documented fields (extra fields count, §1.4), the
    active streamSid, a non-empty base64 μ-law payload without a WAV/AU header.
    """
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:  # stricter than json (NaN, lone surrogates, huge ints): let json decide
        try:
            message = json.loads(text)
        except ValueError:
            raise Violation("not JSON") from None
    if not isinstance(message, dict):
        raise Violation("not a JSON object")
    event = message.get("event")
    if event not in _SHAPES:
        raise Violation(f"unknown event {event!r}")
    keys, nested_key, nested_keys = _SHAPES[event]
    if set(message) != keys:
        raise Violation(f"{event}: fields {sorted(message)} != {sorted(keys)}")
    if stream_sid is None or message["streamSid"] != stream_sid:
        raise Violation(f"{event}: streamSid {message['streamSid']!r} is not the active stream")
    if nested_key is None:
        return ServerClear()
    nested = message[nested_key]
    if not isinstance(nested, dict) or set(nested) != nested_keys:
        raise Violation(f"{event}: {nested_key} must be an object with exactly {sorted(nested_keys)}")
    if event == "mark":
        if not isinstance(nested["name"], str):
            raise Violation("mark: name must be a string")
        return ServerMark(nested["name"])
    payload_text = nested["payload"]
    if not isinstance(payload_text, str) or not payload_text:
        raise Violation("media: payload must be a non-empty string")
    try:
        payload = base64.b64decode(payload_text, validate=True)
    except (binascii.Error, ValueError):
        raise Violation("media: payload is not base64") from None
    if payload[:4] in (b"RIFF", b".snd"):
        raise Violation("media: payload carries a WAV/AU header")
    return ServerMedia(payload)
