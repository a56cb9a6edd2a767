"""Draining a server (voicex/server/drain.py): no new calls, running calls finish, the rest end politely.

The calls run through the real call runner on an in-memory wire (tests/memory_transport.py); the drain is the
function ``voicex serve`` runs after its first SIGTERM. The process-level walk (SIGTERM to a real ``voicex serve``
with 20 simulated Twilio calls in flight) is scripts/drain_test.py.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from pipelines.call_config import SessionConfig
from scripts.drain_test import run as run_drain_test
from tests.factories import make_tenant
from tests.memory_transport import MemoryTransport
from tests.telephony import call_params, make_line, parse_twiml, post_signed
from tests.test_call_runner import _admitted, _question
from voicex.calls.runner import CallRunner
from voicex.server.admin import create_platform_admin
from voicex.server.drain import drain
from voicex.telephony.webhooks import DRAINING

pytestmark = pytest.mark.scripted_providers

CLOSING_LINE = SessionConfig.__dataclass_fields__["goodbye_shutdown"].default


async def _running(server, services, transport: MemoryTransport) -> tuple[CallRunner, asyncio.Task]:
    org, agent, call = await _admitted(server, services)
    runner = CallRunner(services, call, org, agent, transport)
    task = asyncio.create_task(runner.run())
    for _ in range(200):  # until the agent has greeted: the call is under way
        if runner.session is not None and transport.sink.marks:
            break
        await asyncio.sleep(0.02)
    return runner, task


async def _record(services, runner: CallRunner) -> dict:
    return await services.db.calls.find_one({"_id": runner.call["_id"]})


async def test_calls_in_flight_when_a_drain_begins_finish_normally(server, services) -> None:
    calls = [await _running(server, services, MemoryTransport(_question())) for _ in range(3)]
    services.live.begin_drain()

    ready = await server.get("/api/ready")
    assert ready.status == 503
    assert (await ready.json())["checks"]["calls"] == "draining"

    await asyncio.wait_for(drain(services, asyncio.Event()), 60)
    assert len(services.live) == 0
    for runner, task in calls:
        outcome = task.result()
        assert outcome.end_reason == "caller_hangup"  # the caller finished the call, nobody was cut
        record = await _record(services, runner)
        assert (record["status"], record["endReason"]) == ("completed", "caller_hangup")
        said = [entry["text"] for entry in record["transcript"] if entry["role"] == "assistant"]
        assert said == ["Hello from Voicex.", "Sure, I can help with that."]
    assert services.metrics.draining._value.get() == 1


async def test_calls_outliving_the_drain_timeout_hear_the_closing_line_then_hang_up(
    server, services, monkeypatch
) -> None:
    monkeypatch.setattr(services.settings, "drain_timeout_sec", 0.5)
    transport = MemoryTransport([], tail_sec=60)  # a caller who stays on the line, silent
    runner, task = await _running(server, services, transport)
    services.live.begin_drain()

    await asyncio.wait_for(drain(services, asyncio.Event()), 40)

    outcome = task.result()
    assert outcome.end_reason == "server_drain" and transport.sink.closed_reason == "server_drain"
    record = await _record(services, runner)
    assert (record["status"], record["endReason"]) == ("completed", "server_drain")
    said = [entry["text"] for entry in record["transcript"] if entry["role"] == "assistant"]
    assert said[-1] == CLOSING_LINE  # said to its end (heard: the far end echoed its marks) before hanging up
    assert await services.db.call_slots.count_documents({"callId": runner.call["_id"]}) == 0  # its slot is free


async def test_a_second_signal_stops_at_once_and_still_finalizes_every_call(server, services, monkeypatch) -> None:
    monkeypatch.setattr(services.settings, "drain_timeout_sec", 300)
    transports = [MemoryTransport([], tail_sec=60) for _ in range(2)]
    calls = [await _running(server, services, transport) for transport in transports]
    services.live.begin_drain()
    hard_stop = asyncio.Event()
    draining = asyncio.create_task(drain(services, hard_stop))
    await asyncio.sleep(0.2)
    assert not draining.done()  # the drain waits for the calls

    hard_stop.set()
    await asyncio.wait_for(draining, 15)

    for (runner, task), transport in zip(calls, transports, strict=True):
        assert task.result().end_reason == "server_shutdown" and transport.closed
        record = await _record(services, runner)
        assert record["endReason"] == "server_shutdown" and record["status"] == "completed"
        said = [entry["text"] for entry in record["transcript"] if entry["role"] == "assistant"]
        assert CLOSING_LINE not in said


async def test_only_a_platform_admin_drains_a_server_over_http(server, services) -> None:
    tenant = await make_tenant(server, services)
    refused = await server.post("/api/admin/drain", headers=tenant.jwt)
    assert refused.status == 403 and not services.live.draining

    await create_platform_admin(services.db, "ops@voicex.example", "ops-password-1")
    signin = await server.post("/api/auth/signin", json={"email": "ops@voicex.example", "password": "ops-password-1"})
    admin = {"Authorization": f"Bearer {(await signin.json())['token']}"}
    assert (await server.get("/api/ready")).status == 200

    answer = await server.post("/api/admin/drain", headers=admin)
    assert answer.status == 202
    assert await answer.json() == {"status": "draining", "activeCalls": 0, "timeoutSec": 300.0}
    assert services.live.draining and (await server.get("/api/ready")).status == 503
    again = await server.post("/api/admin/drain", headers=admin)
    assert again.status == 202  # idempotent


async def test_new_calls_while_draining_are_told_to_call_back_and_admitted_ones_keep_their_answer(
    server, services
) -> None:
    line = await make_line(server, services)
    voice = f"/api/twilio/voice?api_key={line.tenant.api_key}"
    before = call_params(line.number)
    admitted = parse_twiml(await (await post_signed(server, voice, before)).text())
    assert "stream" in admitted
    services.live.begin_drain()

    refused = await post_signed(server, voice, call_params(line.number))
    assert refused.status == 200
    assert parse_twiml(await refused.text()) == {"say": DRAINING, "hangup": True}
    assert await services.db.calls.count_documents({}) == 1  # nothing admitted, no slot taken
    again = parse_twiml(await (await post_signed(server, voice, before)).text())
    assert again == admitted  # Twilio's retry of a call admitted before the drain: the same stream


async def test_with_a_redirect_url_new_calls_go_to_another_instance_with_their_query(
    server, services, monkeypatch
) -> None:
    monkeypatch.setattr(services.settings, "drain_redirect_url", "https://other.voicex.example")
    line = await make_line(server, services)
    services.live.begin_drain()
    path = f"/api/twilio/voice?api_key={line.tenant.api_key}&agentId={line.agent['_id']}"

    answer = ET.fromstring(await (await post_signed(server, path, call_params(line.number))).text())

    redirect = answer.find("Redirect")
    assert redirect is not None and redirect.get("method") == "POST"
    assert redirect.text == f"https://other.voicex.example{path}"
    assert answer.find("Connect") is None and await services.db.calls.count_documents({}) == 0


@pytest.mark.slow
async def test_sigterm_in_the_middle_of_calls_to_a_real_server_cuts_nobody() -> None:
    """scripts/drain_test.py, smaller: a real `voicex serve --workers 2`, SIGTERM while every caller talks."""
    report = await run_drain_test(calls=6, workers=2)
    assert report.greeted == 6 and report.completed_by_caller == 6 and report.cut == 0
    assert report.new_webhooks > 0 and report.new_refused == report.new_webhooks
    assert set(report.ready_while_draining) == {503}
    assert report.exit_status == 0 and report.exit_s >= report.last_call_end_s
