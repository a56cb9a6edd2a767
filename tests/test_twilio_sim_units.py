"""The simulated Twilio caller's pure parts: Twilio's playback buffer, TwiML reading, server-message checks, caller
audio, the webhook parameter set. Exact expectations, no sockets, no sleeping."""

from __future__ import annotations

import io
import json
import wave

import numpy as np
import pytest
from twilio.request_validator import RequestValidator

from pipelines.audio import pcm16_to_ulaw, tone, ulaw_to_pcm16
from scripts.twilio_sim import (
    PlaybackBuffer,
    Violation,
    caller_audio,
    inbound_call_params,
    new_sid,
    parse_server_message,
    parse_twiml,
    percentile,
    sign,
    voice_url,
)
from scripts.twilio_sim.messages import StreamIds, TwilioMessages, wire
from scripts.twilio_sim.playback import first_audible_sample, first_audible_ulaw

SID = "MZ" + "0" * 32


def ulaw_ms(ms: int) -> bytes:
    return pcm16_to_ulaw(tone(500, ms))


def test_a_mark_comes_back_at_once_when_nothing_is_buffered() -> None:
    buffer = PlaybackBuffer()
    assert buffer.mark("idle", now=5.0) == 5.0
    assert buffer.pop_due_marks(5.0) == ["idle"]


def test_a_mark_comes_back_when_the_audio_before_it_has_played() -> None:
    buffer = PlaybackBuffer()
    buffer.enqueue(ulaw_ms(200), now=1.0)
    buffer.mark("a", now=1.0)
    buffer.enqueue(ulaw_ms(100), now=1.05)  # queued behind the first 200 ms: plays 1.2 .. 1.3
    buffer.mark("b", now=1.05)
    assert buffer.pop_due_marks(1.199) == []
    assert buffer.pop_due_marks(1.2) == ["a"]
    assert buffer.next_mark_due() == pytest.approx(1.3)
    assert buffer.pop_due_marks(1.3) == ["b"]


def test_audio_after_a_gap_starts_when_it_arrives() -> None:
    buffer = PlaybackBuffer()
    buffer.enqueue(ulaw_ms(100), now=0.0)
    second = buffer.enqueue(ulaw_ms(100), now=0.5)
    assert second.start == 0.5
    assert buffer.playing_at(0.05) and not buffer.playing_at(0.2) and buffer.playing_at(0.55)


def test_clear_cuts_what_is_playing_drops_the_rest_and_returns_every_pending_mark() -> None:
    buffer = PlaybackBuffer()
    buffer.enqueue(ulaw_ms(500), now=0.0)
    buffer.mark("m1", now=0.0)
    buffer.enqueue(ulaw_ms(500), now=0.0)
    buffer.mark("m2", now=0.0)
    assert buffer.clear(now=0.2) == ["m1", "m2"]
    assert buffer.next_mark_due() is None
    assert [round(s.end, 3) for s in buffer.segments] == [0.2]
    assert buffer.mark("after", now=0.25) == 0.25  # nothing buffered any more
    heard = np.frombuffer(buffer.render(0.0, 1.0), dtype="<i2")
    assert heard.size == 8000
    assert np.abs(heard[:1600]).max() > 1000 and not heard[1600:].any()


def test_render_places_audio_on_the_timeline_with_silence_around_it() -> None:
    buffer = PlaybackBuffer()
    buffer.enqueue(ulaw_ms(100), now=10.3)
    heard = np.frombuffer(buffer.render(10.0, 10.5), dtype="<i2")
    loud = np.flatnonzero(np.abs(heard) > 1000)
    assert heard.size == 4000
    assert loud[0] == pytest.approx(2400, abs=8) and loud[-1] == pytest.approx(3200, abs=8)


def test_first_sound_ignores_leading_silence_and_audio_from_before() -> None:
    buffer = PlaybackBuffer()
    buffer.enqueue(ulaw_ms(100), now=0.0)  # an older reply, received before t=1
    buffer.enqueue(b"\xff" * 800 + ulaw_ms(100), now=1.0)  # 100 ms of silence, then sound
    assert buffer.audible_since(1.0) == pytest.approx(1.1, abs=0.001)
    assert buffer.audible_since(0.0, before=0.5) == pytest.approx(0.0, abs=0.001)
    assert buffer.audible_since(2.0) is None


def test_twiml_with_a_stream_gives_its_url_and_parameters() -> None:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://v.example.com/api/twilio/stream">'
        '<Parameter name="callId" value="abc" /><Parameter name="token" value="t.1.x" /></Stream></Connect>'
        "<Hangup /></Response>"
    )
    answer = parse_twiml(xml, "https://v.example.com/api/twilio/voice?api_key=k")
    assert answer.stream_url == "wss://v.example.com/api/twilio/stream"
    assert answer.parameters == {"callId": "abc", "token": "t.1.x"}


def test_twiml_refusal_and_relative_stream_urls() -> None:
    refused = parse_twiml("<Response><Say>Sorry, no.</Say><Hangup /></Response>", "https://x/api/twilio/voice")
    assert (refused.stream_url, refused.said, refused.hangup) == (None, "Sorry, no.", True)
    relative = parse_twiml('<Response><Connect><Stream url="/s" /></Connect></Response>', "https://x.io/api/v?k=1")
    assert relative.stream_url == "wss://x.io/s"
    with pytest.raises(ValueError, match="unidirectional"):
        parse_twiml('<Response><Start><Stream url="wss://x/s" /></Start></Response>', "https://x/")


@pytest.mark.parametrize(
    ("message", "why"),
    [
        ({"event": "play", "streamSid": SID}, "unknown event"),
        ({"event": "clear", "streamSid": SID, "sequenceNumber": "3"}, "fields"),
        ({"event": "media", "streamSid": SID, "media": {"payload": "/w==", "track": "outbound"}}, "exactly"),
        ({"event": "media", "streamSid": "MZother", "media": {"payload": "/w=="}}, "not the active stream"),
        ({"event": "media", "streamSid": SID, "media": {"payload": "not base64!"}}, "not base64"),
        ({"event": "media", "streamSid": SID, "media": {"payload": "UklGRgAAAABXQVZF"}}, "header"),
        ({"event": "mark", "streamSid": SID, "mark": {"name": 7}}, "string"),
    ],
)
def test_server_messages_twilio_would_reject_are_violations(message: dict[str, object], why: str) -> None:
    with pytest.raises(Violation, match=why):
        parse_server_message(json.dumps(message), SID)


def test_documented_server_messages_pass() -> None:
    media = parse_server_message(json.dumps({"event": "media", "streamSid": SID, "media": {"payload": "/38="}}), SID)
    assert media.payload == b"\xff\x7f"  # type: ignore[union-attr]
    assert parse_server_message(json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": "x"}}), SID)
    assert parse_server_message(json.dumps({"event": "clear", "streamSid": SID}), SID)
    with pytest.raises(Violation, match="not JSON"):
        parse_server_message("hello", SID)
    # what only the json module accepts is still judged as before (orjson is tried first, for speed)
    head = '{"event":"%s","streamSid":"' + SID + '",'
    assert parse_server_message(head % "mark" + '"mark":{"name":"\\ud800"}}', SID)
    with pytest.raises(Violation, match="non-empty string"):
        parse_server_message(head % "media" + '"media":{"payload":NaN}}', SID)


def test_a_stereo_44k_wav_becomes_8k_frames_with_speech_marked() -> None:
    rate = 44100
    speech = np.frombuffer(tone(300, 400, rate=rate), dtype="<i2")
    mono = np.concatenate([speech, np.zeros(rate // 5, dtype="<i2")])  # 400 ms of tone, 200 ms of silence
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.repeat(mono, 2).tobytes())
    clip = caller_audio(out.getvalue())
    assert len(clip.frames) == 30 and all(len(f) == 160 for f in clip.frames)
    assert clip.speech[:19] == [True] * 19 and clip.speech[22:] == [False] * 8


def test_raw_pcm_is_resampled_from_its_rate() -> None:
    clip = caller_audio(tone(300, 1000, rate=16000), rate=16000)
    assert len(clip.frames) == 50 and all(clip.speech[1:-1])


def test_the_webhook_carries_the_full_inbound_parameter_set_and_a_valid_signature() -> None:
    account, call = new_sid("AC"), new_sid("CA")
    params = inbound_call_params(account, call, "+14155550123", "+15005550006")
    assert {"CallSid", "AccountSid", "From", "To", "Caller", "Called", "CallStatus", "ApiVersion", "Direction"} <= set(
        params
    )
    assert params["CallStatus"] == "ringing" and params["Direction"] == "inbound" and params["FromCity"] == ""
    assert len(call) == 34 and call.startswith("CA") and int(call[2:], 16) >= 0
    url = voice_url("https://v.example.com/", "vx_key", "agent 1")
    assert url == "https://v.example.com/api/twilio/voice?api_key=vx_key&agentId=agent+1"
    assert RequestValidator("tok").validate(url, params, sign("tok", url, params))
    without_empty = {k: v for k, v in params.items() if v}
    assert not RequestValidator("tok").validate(url, without_empty, sign("tok", url, params))


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([300.0, 100.0, 200.0], 50) == 200.0
    assert percentile([100.0, 200.0], 95) == pytest.approx(195.0)


def test_media_frames_on_the_wire_are_the_bytes_json_dumps_gives() -> None:
    ids = StreamIds(new_sid("AC"), new_sid("CA"), new_sid("MZ"))
    fast, slow = TwilioMessages(ids, timestamp_offset_ms=171), TwilioMessages(ids, timestamp_offset_ms=171)
    frames = [b"\xff" * 160, ulaw_ms(20), bytes(range(160)), b"\xff" * 160, b"\x00"]
    assert wire(slow.start({})) == wire(fast.start({}))  # numbering continues across message types
    for frame in frames * 3:
        sent = fast.media_bytes(frame)
        assert sent == json.dumps(slow.media(frame), separators=(",", ":")).encode()
        message = json.loads(sent)
        assert isinstance(message["sequenceNumber"], str) and isinstance(message["media"]["timestamp"], str)
    assert (fast.sequence, fast.chunk) == (16, 15)


def test_first_sound_read_from_ulaw_matches_the_decoded_pcm() -> None:
    for value in range(256):
        ulaw = b"\xff" * 7 + bytes([value])
        assert first_audible_ulaw(ulaw) == first_audible_sample(ulaw_to_pcm16(ulaw))
    assert first_audible_ulaw(b"") is None and first_audible_ulaw(ulaw_ms(20)) == first_audible_sample(
        ulaw_to_pcm16(ulaw_ms(20))
    )
