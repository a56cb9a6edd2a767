"""Hypothesis strategies for malformed Twilio Media Streams traffic (protocol facts: docs/twilio-protocol.md §1).

Most messages start from a documented shape and break one thing (a missing key, a number where a string
belongs, bad base64, an odd payload size): almost-right messages reach deepest into the parser and the call
session. The rest is plain garbage, binary frames, unknown events and frames past the server's size limit.
A :class:`StreamPlan` arranges them around the one valid ``start`` so order is fuzzed too (media before
start, start twice, stop twice, messages after stop).
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field
from typing import Any

import orjson
from hypothesis import strategies as st

from voicex.telephony.stream import MAX_MESSAGE_BYTES

KNOWN_EVENTS = frozenset({"connected", "start", "media", "mark", "dtmf", "stop"})
ENDINGS = ("stop", "stop_twice", "stop_then_garbage", "huge", "invalid_utf8", "client_close")
# Endings that make the server close the stream itself (it must still finalize the call).
SERVER_CLOSES = frozenset({"huge", "invalid_utf8"})


@dataclass(frozen=True)
class Frame:
    """One WebSocket frame: ``data`` str → text frame, bytes → binary frame; ``utf8=False`` forces a text
    opcode on bytes that are not UTF-8."""

    kind: str
    data: str | bytes
    utf8: bool = True


@dataclass
class StreamPlan:
    """What one fuzzed caller sends: frames before the valid start, whether it starts, frames after, the end."""

    before: list[Frame]
    starts: bool
    after: list[Frame]
    ending: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.before) + len(self.after) + int(self.starts) + (2 if self.ending == "stop_twice" else 1)


SID = "MZ" + "0" * 32
_ints = st.integers(-(2**63), 2**64 - 1)  # what JSON libraries (orjson) encode; bigger ones are sent as raw text
_scalars = st.none() | st.booleans() | _ints | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
json_values = st.recursive(
    _scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)
# Strings a parser may take for numbers: unicode digits, signs, exponents, 5,000 digits (past int()'s limit).
_numberish = st.sampled_from(["²", "٣", "-1", "+5", "1e5", "0x10", " 7", "", "9" * 5000, "1_000", "NaN"]) | st.text(
    "0123456789²³¹٠١٢", max_size=12
)
# Which documented messages may be broken where: a parsable stop ends a stream and a parsable start before
# the real one is refused, so those two are only mutated where that is the point.
AUDIO = ("media", "mark", "dtmf")
STARTED = (*AUDIO, "start", "connected")
ALL = (*STARTED, "stop")
_payload_sizes = st.sampled_from([0, 1, 2, 80, 159, 161, 319, 320, 321, 480, 1600, 15999, 16000, 16001, 20000])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@st.composite
def payloads(draw: st.DrawFn) -> tuple[str, str]:
    """(kind, media.payload text): good 20 ms frames, odd sizes, random bytes, and text that is not base64."""
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return "media", _b64(bytes([draw(st.integers(0, 255))]) * 160)
    if choice == 1:
        size = draw(_payload_sizes | st.integers(0, 20_000))
        return "odd_payload_size", _b64(bytes([draw(st.integers(0, 255))]) * size)
    if choice == 2:
        return "odd_payload_size", _b64(draw(st.binary(max_size=400)))
    if choice == 3:
        good = _b64(draw(st.binary(min_size=1, max_size=200)))
        broken = draw(st.sampled_from([good.rstrip("="), good + "=", "=" + good, good.replace("+", "-"), good + "\n"]))
        return "bad_base64", broken
    text = draw(st.text(max_size=300))
    return "bad_base64", text


@st.composite
def templates(draw: st.DrawFn, names: tuple[str, ...] = ALL) -> tuple[str, dict[str, Any]]:
    """A well-formed inbound message of one of ``names``."""
    name = draw(st.sampled_from(names))
    seq = str(draw(st.integers(1, 10_000)))
    if name == "media":
        _, payload = draw(payloads())
        media = {"track": "inbound", "chunk": seq, "timestamp": str(draw(st.integers(0, 10**7))), "payload": payload}
        return name, {"event": "media", "sequenceNumber": seq, "media": media, "streamSid": SID}
    if name == "mark":
        return name, {
            "event": "mark",
            "sequenceNumber": seq,
            "mark": {"name": draw(st.text(max_size=40))},
            "streamSid": SID,
        }
    if name == "dtmf":
        digit = draw(st.sampled_from(list("0123456789*#ABCD")) | st.text(max_size=3))
        return name, {"event": "dtmf", "sequenceNumber": seq, "dtmf": {"track": "inbound_track", "digit": digit}}
    if name == "stop":
        stop = {"accountSid": "AC" + "0" * 32, "callSid": "CA" + "0" * 32}
        return name, {"event": "stop", "sequenceNumber": seq, "stop": stop, "streamSid": SID}
    if name == "connected":
        return name, {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = {
        "accountSid": "AC" + "0" * 32,
        "streamSid": SID,
        "callSid": "CA" + "0" * 32,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"callId": draw(st.text(max_size=24)), "token": draw(st.text(max_size=40))},
    }
    return name, {"event": "start", "sequenceNumber": "1", "start": start, "streamSid": SID}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _other_type(value: Any) -> st.SearchStrategy[Any]:
    """A JSON value of another type than ``value``: numbers for strings, strings for numbers, and so on."""
    if isinstance(value, str):
        return (
            st.integers(-(2**63), 2**63)
            | st.floats(allow_nan=False)
            | st.booleans()
            | st.none()
            | st.lists(_scalars, max_size=3)
        )
    if isinstance(value, bool | int | float):
        return st.just(str(value)) | _numberish | st.none() | st.dictionaries(st.text(max_size=5), _scalars, max_size=2)
    if isinstance(value, dict):
        return _scalars | st.lists(_scalars, max_size=3)
    return _scalars | st.dictionaries(st.text(max_size=5), _scalars, max_size=2)


@st.composite
def mutated(draw: st.DrawFn, names: tuple[str, ...] = ALL) -> Frame:
    """A documented message with one field deleted, retyped, made number-like, or an unknown key added."""
    name, message = draw(templates(names))
    message = copy.deepcopy(message)
    path = draw(st.sampled_from(_paths(message)))
    parent: Any = message
    for key in path[:-1]:
        parent = parent[key]
    key, op = path[-1], draw(st.sampled_from(["delete", "retype", "numberish", "extra"]))
    if op == "delete":
        del parent[key]
        return Frame("missing_field", orjson.dumps(message).decode())
    if op == "extra" and isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=10).filter(lambda k: k != "event"))] = draw(json_values)
        return Frame("unknown_field", orjson.dumps(message).decode())
    if path == ("event",):  # keep the event a string outside the start/stop set: those are drawn on purpose
        parent[key] = draw(_ints | st.none() | st.lists(st.just(name), max_size=2))
        return Frame("wrong_type", orjson.dumps(message).decode())
    replacement = draw(_numberish if op == "numberish" else _other_type(parent[key]))
    parent[key] = replacement
    return Frame("wrong_type", orjson.dumps(message).decode())


@st.composite
def well_formed(draw: st.DrawFn) -> Frame:
    """A documented message with fuzzed content (payload sizes, base64, mark names, digits)."""
    name, message = draw(templates(AUDIO))
    kind = "valid" if name != "media" else draw(payloads())[0]
    if name == "media":
        message["media"]["payload"] = draw(payloads())[1]
    return Frame(kind, orjson.dumps(message).decode())


_unknown_event = (st.text(max_size=20) | st.sampled_from(["clear", "Media", "START", "stop ", "closed"])).filter(
    lambda name: name not in KNOWN_EVENTS
)


@st.composite
def garbage(draw: st.DrawFn) -> Frame:
    """Not a message at all: broken JSON, JSON that is not an object, unknown events, binary frames."""
    choice = draw(st.integers(0, 6))
    if choice == 0:
        return Frame("invalid_json", draw(st.text(max_size=200)) or "{")
    if choice == 1:
        whole = orjson.dumps(draw(templates())[1]).decode()
        return Frame("invalid_json", whole[: draw(st.integers(0, max(0, len(whole) - 1)))] or "{")
    if choice == 2:
        depth = draw(st.integers(1, 3000))
        if draw(st.booleans()):  # a number no 64-bit integer holds, where the server expects one
            return Frame("wrong_type", '{"event":"start","start":{"mediaFormat":{"sampleRate":%s}}}' % ("9" * depth))
        return Frame("invalid_json", draw(st.sampled_from(["[", '{"a":'])) * depth)
    if choice == 3:
        return Frame(
            "not_an_object", orjson.dumps(draw(json_values.filter(lambda v: not isinstance(v, dict)))).decode()
        )
    if choice == 4:
        message = {"event": draw(_unknown_event), **draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3))}
        return Frame("unknown_event", orjson.dumps(message).decode())
    if choice == 5:
        return Frame("binary", draw(st.binary(max_size=512)))
    return Frame("binary", orjson.dumps(draw(templates(AUDIO))[1]))


def noise(names: tuple[str, ...]) -> st.SearchStrategy[Frame]:
    """Any single bad or odd frame; mutated messages are drawn from ``names``."""
    return st.one_of(mutated(names), well_formed(), garbage())


def huge_frame(size: int) -> Frame:
    """A text frame past the server's limit, shaped like a media message so it is not rejected for syntax."""
    message = {"event": "media", "streamSid": SID, "media": {"payload": "A" * max(0, size - 80)}}
    return Frame("huge", orjson.dumps(message).decode())


@st.composite
def stream_plans(draw: st.DrawFn, max_messages: int = 60) -> StreamPlan:
    """One fuzzed stream: most start validly (so the session sees the noise); some never start at all."""
    starts = draw(st.sampled_from([True, True, True, True, False]))  # hypothesis favours the first
    before = draw(st.lists(noise(AUDIO if starts else ALL), max_size=max_messages // 6))
    after = draw(st.lists(noise(STARTED), min_size=max_messages // 3, max_size=max_messages)) if starts else []
    ending = draw(st.sampled_from(ENDINGS))
    extra: dict[str, Any] = {}
    if after and draw(st.booleans()):
        extra["restart_at"] = draw(st.integers(0, len(after)))  # the valid start, sent a second time
    if ending == "huge":
        extra["huge_size"] = draw(st.integers(MAX_MESSAGE_BYTES + 1, 4 * MAX_MESSAGE_BYTES))
    return StreamPlan(before, starts, after, ending, extra)
