"""Malformed Media Streams traffic over real WebSockets: no crash, no unhandled error, every call finalized,
and a normal call on another tenant answered meanwhile. The ≥ 10,000-message campaign is
``scripts/fuzz_media_stream.py``; this is its bounded in-suite version (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import base64

import orjson
import pytest

from pipelines.audio import FRAME_BYTES_ULAW, Framer
from scripts.media_fuzz import ErrorLog, Target, generate_plans, run_campaign
from scripts.media_fuzz.bystander import BystanderReport, normal_call
from scripts.twilio_sim import CallConfig
from tests.telephony import AUTH_TOKEN, make_line
from voicex.telephony import protocol

pytestmark = [pytest.mark.slow, pytest.mark.scripted_providers]


def test_payloads_of_any_size_are_cut_into_whole_frames() -> None:
    reframer = Framer(FRAME_BYTES_ULAW)  # what the stream handler uses
    assert reframer.push(b"\xff" * 160) == [b"\xff" * 160]
    assert reframer.push(b"\x01" * 100) == []
    frames = reframer.push(b"\x02" * 381)  # 100 pending + 381 = 3 frames, 1 byte left over
    assert [len(f) for f in frames] == [160, 160, 160] and frames[0][:100] == b"\x01" * 100
    assert reframer.push(b"\x03" * 159) == [b"\x02" + b"\x03" * 159]


@pytest.mark.parametrize("timestamp", ["²", "٣", "9" * 5000, "-1", 155])
def test_a_timestamp_that_is_not_plain_digits_is_ignored(timestamp: object) -> None:
    media = {"payload": base64.b64encode(b"\xff" * 160).decode(), "timestamp": timestamp}
    event = protocol.parse(orjson.dumps({"event": "media", "media": media}))
    assert isinstance(event, protocol.Media) and event.timestamp_ms is None


async def test_fuzzed_streams_leave_the_server_and_other_calls_unharmed(server, services) -> None:
    fuzz_line = await make_line(server, services, plan="enterprise")
    normal_line = await make_line(server, services)
    base = f"http://127.0.0.1:{server.server.port}"
    target = Target(base, fuzz_line.tenant.api_key, AUTH_TOKEN, fuzz_line.number, services.db)
    plans = generate_plans(60, max_messages=40)
    bystander = BystanderReport()
    with ErrorLog() as errors:
        config = CallConfig(base, normal_line.tenant.api_key, AUTH_TOKEN, to_number=normal_line.number)
        report, _ = await asyncio.gather(
            run_campaign(target, plans, concurrency=6), normal_call(config, services.db, bystander)
        )

    assert report.messages >= 500 and report.streams == len(plans) and report.failures == []
    assert report.started > 0 and report.kinds["odd_payload_size"] > 0 and report.kinds["binary"] > 0
    assert report.finalized == report.streams and report.not_finalized == []
    assert errors.summary() == []
    assert (bystander.calls, bystander.answered, bystander.completed, bystander.violations) == (1, 1, 1, 0)
    assert bystander.problems == []
    assert (await server.get("/api/health")).status == 200
