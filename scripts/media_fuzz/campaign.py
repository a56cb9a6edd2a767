"""Run fuzzed Media Streams against a real server and count what happened.

Every fuzzed stream is a real call: a signed voice webhook admits it (so the server accepts its ``start``),
then the plan's frames go over a real WebSocket. Afterwards the call record must be finalized: by the stream
itself, or — for a stream the server never accepted — by the status callback Twilio sends when the call
ends, exactly as in production. Server logs at ERROR are counted by a handler on the root logger.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from bson import ObjectId
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from scripts.media_fuzz.strategies import SID, Frame, StreamPlan, huge_frame, stream_plans
from scripts.twilio_sim.webhook import inbound_call_params, new_sid, parse_twiml, sign, voice_url
from voicex.store.db import Database

FINALIZE_TIMEOUT_S = 10.0
STREAM_TIMEOUT_S = 30.0


class ErrorLog(logging.Handler):
    """Collects every record at ERROR or above (the server logs unhandled exceptions there)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> ErrorLog:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)

    def summary(self) -> list[str]:
        return [
            f"{r.name}: {r.getMessage()} ({r.exc_info[1]!r})" if r.exc_info else r.getMessage() for r in self.records
        ]


@dataclass
class Target:
    """The server under test and the tenant whose line the fuzzed calls dial."""

    base_url: str
    api_key: str
    auth_token: str
    to_number: str
    db: Database


@dataclass
class Report:
    messages: int = 0
    streams: int = 0
    started: int = 0
    refused_handshakes: int = 0
    finalized: int = 0
    finalized_by_callback: int = 0
    not_finalized: list[str] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    end_reasons: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"messages sent       {self.messages}",
            f"streams             {self.streams} ({self.started} accepted a start)",
            f"calls finalized     {self.finalized}/{self.streams}"
            f" ({self.finalized_by_callback} by the status callback after a refused stream)",
            f"not finalized       {len(self.not_finalized)}",
            f"harness failures    {len(self.failures)}",
            f"end reasons         {dict(self.end_reasons.most_common())}",
            f"message kinds       {dict(self.kinds.most_common())}",
            f"elapsed             {self.seconds:.1f} s",
        ]


def generate_plans(examples: int, seed: int | None = None, max_messages: int = 60) -> list[StreamPlan]:
    """Draw ``examples`` stream plans with hypothesis (generation only: the server is checked in aggregate)."""
    plans: list[StreamPlan] = []

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(stream_plans(max_messages))
    def collect(plan: StreamPlan) -> None:
        plans.append(plan)

    (hypothesis_seed(seed)(collect) if seed is not None else collect)()
    return plans


def _start(params: dict[str, str]) -> str:
    start = {
        "accountSid": "AC" + "0" * 32,
        "streamSid": SID,
        "callSid": new_sid("CA"),
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": params,
    }
    return orjson.dumps({"event": "start", "sequenceNumber": "1", "start": start, "streamSid": SID}).decode()


_STOP = orjson.dumps({"event": "stop", "sequenceNumber": "2", "stop": {}, "streamSid": SID}).decode()


def _frames(plan: StreamPlan, params: dict[str, str]) -> list[Frame]:
    """The plan in wire order: connected, noise, the valid start, noise (maybe a second start), the ending."""
    after = list(plan.after)
    if "restart_at" in plan.extra:
        after.insert(plan.extra["restart_at"], Frame("start_twice", _start(params)))
    frames = [Frame("valid", '{"event":"connected","protocol":"Call","version":"1.0.0"}'), *plan.before]
    if plan.starts:
        frames.append(Frame("valid", _start(params)))
    frames += after
    ending = plan.ending
    if ending in ("stop", "stop_twice", "stop_then_garbage"):
        frames.append(Frame("valid", _STOP))
    if ending == "stop_twice":
        frames.append(Frame("stop_twice", _STOP))
    if ending == "stop_then_garbage":
        frames.append(Frame("after_stop", '{"event":"media","media":{"payload":"/w=="}}'))
    if ending == "huge":
        frames.append(huge_frame(plan.extra["huge_size"]))
    if ending == "invalid_utf8":
        frames.append(Frame("invalid_utf8", b'{"event":"media","x":"\xff\xfe"}', utf8=False))
    return frames


async def _send(ws: aiohttp.ClientWebSocketResponse, frame: Frame) -> bool:
    if ws.closed:
        return False
    try:
        if isinstance(frame.data, str):
            await ws.send_str(frame.data)
        elif frame.utf8:
            await ws.send_bytes(frame.data)
        else:
            await ws.send_frame(frame.data, aiohttp.WSMsgType.TEXT)
    except (ConnectionError, aiohttp.ClientError, RuntimeError):
        return False
    return True


async def _drain(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> None:
    """Read (and drop) what the server sends until it closes or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while not ws.closed and (left := deadline - time.monotonic()) > 0:
        try:
            message = await asyncio.wait_for(ws.receive(), left)
        except TimeoutError:
            return
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return


async def _finalized(db: Database, call_id: ObjectId, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        call = await db.calls.find_one({"_id": call_id}, projection={"status": 1, "endReason": 1, "streamSid": 1})
        if call is None or call["status"] != "active":
            return call
        await asyncio.sleep(0.05)
    return None


async def _status_callback(http: aiohttp.ClientSession, target: Target, call_sid: str) -> None:
    """What Twilio posts when the call ends (after a refused stream it goes on to ``<Hangup/>``)."""
    url = f"{target.base_url}/api/twilio/status?api_key={target.api_key}"
    params = {"CallSid": call_sid, "CallStatus": "completed", "SequenceNumber": "3", "CallDuration": "1"}
    async with http.post(url, data=params, headers={"X-Twilio-Signature": sign(target.auth_token, url, params)}):
        pass


async def run_stream(http: aiohttp.ClientSession, target: Target, plan: StreamPlan, report: Report) -> None:
    """Admit one call, play ``plan`` on its stream, then check the call record was finalized."""
    call_sid = new_sid("CA")
    url = voice_url(target.base_url, target.api_key)
    params = inbound_call_params(new_sid("AC"), call_sid, "+15005550001", target.to_number)
    async with http.post(url, data=params, headers={"X-Twilio-Signature": sign(target.auth_token, url, params)}) as r:
        answer = parse_twiml(await r.text(), url)
    if answer.stream_url is None:
        report.failures.append(f"webhook refused the call: {answer.said}")
        return
    report.streams += 1
    call_id = ObjectId(answer.parameters["callId"])
    headers = {"X-Twilio-Signature": sign(target.auth_token, answer.stream_url)}
    try:
        async with http.ws_connect(answer.stream_url, headers=headers, max_msg_size=0) as ws:
            reader = asyncio.create_task(_drain(ws, STREAM_TIMEOUT_S))
            for frame in _frames(plan, answer.parameters):
                if not await _send(ws, frame):
                    break
                report.messages += 1
                report.kinds[frame.kind] += 1
            if plan.ending != "client_close":
                await asyncio.wait({reader}, timeout=5.0)  # the server closes after stop or a bad frame
            reader.cancel()
    except aiohttp.WSServerHandshakeError as exc:
        report.refused_handshakes += 1
        report.failures.append(f"stream handshake answered {exc.status}")
    call = await _finalized(target.db, call_id, 2.0)
    if call is None:
        stored = await target.db.calls.find_one({"_id": call_id}, projection={"streamSid": 1})
        if stored is not None and not stored.get("streamSid"):
            await _status_callback(http, target, call_sid)
            report.finalized_by_callback += 1
        call = await _finalized(target.db, call_id, FINALIZE_TIMEOUT_S)
    if call is None:
        report.not_finalized.append(str(call_id))
        return
    report.finalized += 1
    report.started += int(bool(call.get("streamSid")))
    report.end_reasons[str(call.get("endReason"))] += 1


async def run_campaign(target: Target, plans: list[StreamPlan], concurrency: int = 8) -> Report:
    """Play every plan, ``concurrency`` streams at a time."""
    report, gate, started = Report(), asyncio.Semaphore(concurrency), time.monotonic()

    async def one(plan: StreamPlan) -> None:
        async with gate:
            try:
                await asyncio.wait_for(run_stream(http, target, plan, report), STREAM_TIMEOUT_S + 30)
            except Exception as exc:  # a harness-side surprise is a finding too, but must not stop the run
                report.failures.append(f"{type(exc).__name__}: {exc}")

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(one(plan) for plan in plans))
    report.seconds = time.monotonic() - started
    return report
