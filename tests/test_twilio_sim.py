"""The simulated Twilio caller against a stand-in server over real HTTP and a real WebSocket, in real time.

Times compared here are all on the one event loop clock the caller and the stand-in share, so "within a frame"
is a real bound, not a tolerance for scheduling noise between processes.
"""

from __future__ import annotations

import asyncio
import os
import sys
import wave
from asyncio.subprocess import PIPE
from pathlib import Path

import numpy as np
import pytest

from pipelines.audio import tone
from scripts.twilio_sim import CallConfig, CallScript, SimulatedCall, place_call, run_calls
from tests.twilio_standin import AUTH_TOKEN, SID, Behaviour, StandIn

FRAME_MS = 20
SLACK = 0.05  # upper bounds on "soon": event-loop scheduling on a loaded CI machine; lower bounds stay exact
ROOT = Path(__file__).resolve().parents[1]


def speech(ms: int) -> bytes:
    """A loud 8 kHz PCM16 tone: speech to the stand-in, and to the simulator's speech labelling."""
    return tone(440, ms, amplitude=0.5)


def config(server: StandIn, **overrides: object) -> CallConfig:
    return CallConfig(server.base_url, "vx_test_key", AUTH_TOKEN, **overrides)  # type: ignore[arg-type]


async def test_a_call_follows_the_protocol_and_measures_the_reply(tmp_path: Path) -> None:
    async with StandIn(Behaviour(reply_delay_ms=150, reply_ms=300, chunk_ms=100)) as server:
        script = CallScript().silence(100).say(speech(200)).wait_for_agent_silence(3, quiet_ms=150).dtmf("7").hangup()
        result = await place_call(config(server, agent_id="agent-1"), script, wav_path=tmp_path / "heard.wav")

    hook, log = server.webhooks[0], server.streams[0]
    assert hook.signature_ok and hook.query == {"api_key": "vx_test_key", "agentId": "agent-1"}
    assert hook.form["CallStatus"] == "ringing" and hook.form["Direction"] == "inbound"
    assert hook.form["ApiVersion"] == "2010-04-01" and hook.form["FromCity"] == "" and hook.form["CalledZip"] == ""
    assert SID.match(hook.form["CallSid"]) and SID.match(hook.form["AccountSid"])
    assert log.signature_ok and log.headers["User-Agent"] == "Twilio.TmeWs/1.0" and "Origin" not in log.headers
    assert log.problems == []
    events = log.events()
    assert events[:2] == ["connected", "start"] and events[-1] == "stop"
    assert set(events[2:-1]) == {"media", "mark", "dtmf"}
    assert [m["dtmf"]["digit"] for _, m in log.messages if m["event"] == "dtmf"] == ["7"]
    assert log.messages[1][1]["start"]["callSid"] == hook.form["CallSid"] == result.call_sid

    assert result.outcome == "completed" and result.violations == [] and not result.server_closed
    assert result.custom_parameters == server.parameters
    assert result.frames_sent == events.count("media") and result.dtmf_sent == 1
    assert (result.media_received, result.marks_received, result.marks_echoed) == (3, 3, 3)

    # each mark came back only once the audio before it had played: 100, 200, 300 ms after it was sent
    for i in (1, 2, 3):
        played_for = log.echoes[f"r{i}"] - log.sent["media:r1"]
        assert i * 0.1 <= played_for + 0.001 and played_for < i * 0.1 + SLACK

    # voice-to-voice: caller's last speech frame → first reply sound played; the stand-in saw both ends
    assert log.last_loud_rx is not None
    (turn,) = result.turns
    expected_ms = (log.sent["media:r1"] - log.last_loud_rx) * 1000
    assert turn.latency_ms is not None and abs(turn.latency_ms - expected_ms) < FRAME_MS
    assert 150 + FRAME_MS <= turn.latency_ms + 5 and turn.latency_ms < 150 + FRAME_MS + SLACK * 1000
    assert turn.speech_end_s is not None and abs(turn.speech_end_s - turn.onset_s - 0.2) < SLACK

    with wave.open(str(tmp_path / "heard.wav")) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        heard = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert heard.size / 8000 == pytest.approx(result.duration_s, abs=0.002)
    loud = np.flatnonzero(np.abs(heard) > 1000) / 8000
    assert turn.speech_end_s is not None
    assert loud[0] == pytest.approx(turn.speech_end_s + turn.latency_ms / 1000, abs=0.002)
    assert loud[-1] - loud[0] == pytest.approx(0.3, abs=0.002)


async def test_marks_come_back_at_once_when_idle_and_all_together_on_clear(tmp_path: Path) -> None:
    behaviour = Behaviour(reply_ms=0, idle_mark=True, greeting_ms=1000, greeting_chunk_ms=500, clear_on_speech=True)
    async with StandIn(behaviour) as server, SimulatedCall(config(server)) as call:
        assert await call.dial()
        turn = await call.barge_in_after(200, speech(200))
        await call.silence(60)
        await call.hangup()
        result = call.result()
        call.write_wav(tmp_path / "heard.wav")
    log = server.streams[0]
    assert log.problems == [] and result.violations == []

    assert log.echoes["idle"] - log.sent["mark:idle"] < SLACK  # nothing buffered: straight back
    cleared = log.sent["clear"]
    for name in ("g1", "g2"):  # 1 s of greeting was queued; the clear came ~0.2 s in: both marks come back at once
        assert cleared <= log.echoes[name] < cleared + SLACK
        assert log.echoes[name] - log.sent["media:g1"] < 0.5
    assert result.marks_echoed == 3 and result.clears == 1

    assert turn is not None and turn.interrupted_agent
    assert call.stream is not None
    greeting_heard = call.stream.playback.segments[0].start - call.stream.t0
    # the caller starts in the frame after the asked-for moment; that frame's sound began up to 20 ms before it
    assert 0.2 - FRAME_MS / 1000 <= turn.onset_s - greeting_heard + 0.001 < 0.2 + SLACK
    assert log.first_loud_rx is not None
    # onset = first speech frame's send time - 20 ms; the stand-in cleared on receiving that frame
    expected_ms = (cleared - log.first_loud_rx) * 1000 + FRAME_MS
    assert turn.barge_in_ms is not None and abs(turn.barge_in_ms - expected_ms) < FRAME_MS / 2

    with wave.open(str(tmp_path / "heard.wav")) as wav:
        heard = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    loud = np.flatnonzero(np.abs(heard) > 1000) / 8000
    stopped_at = cleared - call.stream.t0
    assert loud[-1] == pytest.approx(stopped_at, abs=0.003)  # the greeting stops where the clear cut it


async def test_bad_server_messages_are_counted_and_a_server_hangup_is_seen() -> None:
    bad: list[str | bytes] = [
        b"\x00\x01binary",
        "not json",
        '{"event": "play", "streamSid": "{SID}"}',
        '{"event": "media", "streamSid": "{SID}", "media": {"payload": "/w==", "track": "outbound"}}',
        '{"event": "media", "streamSid": "MZ00000000000000000000000000000000", "media": {"payload": "/w=="}}',
        '{"event": "mark", "streamSid": "{SID}", "mark": {}}',
        '{"event": "media", "streamSid": "{SID}", "media": {"payload": "%%%"}}',
        '{"event": "clear", "streamSid": "{SID}", "sequenceNumber": "1"}',
    ]
    async with StandIn(Behaviour(reply_ms=0, bad_messages=bad, close_on_echo="ok")) as server:
        result = await place_call(config(server), CallScript().wait_closed(2.0).hangup())
    log = server.streams[0]
    assert result.violation_count == len(bad)
    assert result.violations[0].startswith("binary frame")
    assert (result.media_received, result.marks_echoed, result.clears) == (1, 1, 0)  # the valid ones still play
    assert result.server_closed and result.outcome == "completed"
    assert "stop" not in log.events()  # Twilio sends no stop when the server closed the socket
    assert 0.1 - 0.001 <= log.echoes["ok"] - log.sent["mark:ok"] < 0.1 + SLACK


async def test_a_refusal_is_reported_with_what_was_said() -> None:
    async with StandIn() as server:
        result = await place_call(CallConfig(server.base_url, "refuse", AUTH_TOKEN), CallScript().say(speech(100)))
    assert result.outcome == "refused" and result.refused_text == "This number is not in service."
    assert server.streams == [] and result.stream_sid is None and result.frames_sent == 0


async def test_a_wrong_auth_token_is_visible_to_the_server() -> None:
    async with StandIn() as server:
        result = await place_call(CallConfig(server.base_url, "k", "wrong-token"), CallScript().hangup())
    assert result.outcome == "completed"  # the stand-in only records; the real server answers 403
    assert not server.webhooks[0].signature_ok and not server.streams[0].signature_ok


async def test_behind_a_proxy_urls_are_signed_as_public_and_dialled_locally() -> None:
    public = "https://voice.example.com"
    async with StandIn(public_url=public) as server:
        result = await place_call(config(server, public_url=public), CallScript().silence(40).hangup())
    assert server.webhooks[0].signature_ok and server.streams[0].signature_ok
    assert server.stream_url == "wss://voice.example.com" + server.stream_path  # signed as public, path and all
    assert result.outcome == "completed" and server.streams[0].problems == []


async def test_three_concurrent_calls_complete_with_latencies() -> None:
    async with StandIn(Behaviour(reply_delay_ms=100, reply_ms=100, chunk_ms=100)) as server:
        summary = await run_calls(
            3,
            lambda i: CallScript().silence(20 * i).say(speech(160)).wait_for_agent_silence(3, quiet_ms=100).hangup(),
            config(server),
        )
    stats = summary.stats()
    assert (stats["calls"], stats["completed"], stats["violations"]) == (3, 3, 0)
    assert len(summary.latencies_ms) == 3 and len({r.call_sid for r in summary.results}) == 3
    p50 = stats["latency_p50_ms"]
    assert p50 is not None and 100 + FRAME_MS <= p50 + 5 < 100 + FRAME_MS + SLACK * 1000
    assert all(log.problems == [] and log.events()[-1] == "stop" for log in server.streams)
    assert len({log.stream_sid for log in server.streams}) == 3


async def test_the_cli_prints_a_turn_table(tmp_path: Path) -> None:
    clip = tmp_path / "hello.wav"
    with wave.open(str(clip), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(tone(440, 200, rate=16000, amplitude=0.5))
    heard, env = tmp_path / "o.wav", {**os.environ, "PYTHONPATH": ""}  # the script must find the repo itself
    async with StandIn(Behaviour(reply_delay_ms=50, reply_ms=100)) as server:
        argv = ["--base-url", server.base_url, "--auth-token", AUTH_TOKEN, "--say-wav", str(clip), "--wav", str(heard)]
        argv += "--api-key vx_cli --greeting-timeout 0.1 --quiet-ms 100".split()
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "scripts" / "twilio_caller.py"), *argv, stdout=PIPE, stderr=PIPE, env=env
        )
        out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()
    text = out.decode()
    assert ": completed" in text and "latency ms" in text and "violations 0" in text
    assert heard.stat().st_size > 44


async def test_closing_without_hangup_drops_the_line_without_stop() -> None:
    async with StandIn(Behaviour(reply_ms=0)) as server:
        call = SimulatedCall(config(server))
        assert await call.dial()
        await call.silence(60)
        await call.close()
        await asyncio.sleep(0.05)
        result = call.result()
    assert result.outcome == "completed" and not result.server_closed
    assert server.streams[0].events()[-1] == "media" and result.frames_sent == server.streams[0].events().count("media")
