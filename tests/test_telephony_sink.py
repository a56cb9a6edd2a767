"""What Twilio receives from TwilioSink: the documented JSON, byte for byte, and a bounded wait on a stuck socket."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp import WSMsgType

from voicex.telephony import protocol
from voicex.telephony.sink import SEND_TIMEOUT_SEC, TwilioSink

SID = "MZ" + "0123456789abcdef" * 2


@pytest.mark.parametrize("stream_sid", [SID, 'MZ"quoted\\sid', "MZ\u00e9\u2028"])
def test_each_message_is_byte_for_byte_what_the_json_encoder_writes(stream_sid: str) -> None:
    out = protocol.Outbound(stream_sid)
    for payload in (b"\xff", bytes(range(256)) * 3, b"\x00" * 800):
        assert out.media(payload) == protocol.media_message(stream_sid, payload).encode()
        decoded = orjson.loads(out.media(payload))
        assert decoded["streamSid"] == stream_sid and decoded["media"]["payload"]
    for name in ("r1s0c0", 'a "quoted" \\ name', "\u00fcnicode"):
        assert out.mark(name) == protocol.mark_message(stream_sid, name).encode()
    assert out.clear == protocol.clear_message(stream_sid).encode()


class _Ws:
    """Records text frames; ``stuck`` makes every send wait like a socket whose peer stopped reading."""

    closed = False

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.stuck = False

    async def send_frame(self, data: bytes, opcode: WSMsgType) -> None:
        assert opcode is WSMsgType.TEXT
        if self.stuck:
            await asyncio.Event().wait()
        self.frames.append(data)


class _Transport(asyncio.WriteTransport):
    def __init__(self, buffered: int) -> None:
        super().__init__()
        self.buffered = buffered

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (4096, 16384)


async def test_media_mark_and_clear_go_out_as_text_frames_in_order() -> None:
    ws = _Ws()
    sink = TwilioSink(ws, SID, transport=_Transport(0))  # type: ignore[arg-type]
    await sink.send_audio(b"\xff" * 800)
    await sink.send_mark("r1s0c0")
    await sink.send_clear()
    assert [orjson.loads(frame)["event"] for frame in ws.frames] == ["media", "mark", "clear"]


@pytest.mark.parametrize("transport", [None, _Transport(20_000)], ids=["unknown", "backed-up"])
async def test_a_send_stuck_behind_a_peer_that_stopped_reading_ends_the_call(monkeypatch, transport) -> None:
    monkeypatch.setattr("voicex.telephony.sink.SEND_TIMEOUT_SEC", 0.05)
    assert SEND_TIMEOUT_SEC > 0.05
    ws, reasons = _Ws(), []
    ws.stuck = True
    sink = TwilioSink(ws, SID, on_broken=reasons.append, transport=transport)  # type: ignore[arg-type]
    await asyncio.wait_for(sink.send_audio(b"\xff" * 160), 5)
    assert reasons == ["send_timeout"] and sink.broken
    await sink.send_mark("after")  # a broken sink sends nothing more
    assert ws.frames == []
