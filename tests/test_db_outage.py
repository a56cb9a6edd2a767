"""MongoDB restarts while calls are talking: the calls keep answering and, once it is back, nothing is lost.

The server runs on its own MongoDB-wire server (SecantusDB, a child process the test stops with SIGTERM and
starts again on the same port and data dir, like an operator's restart); the callers are the simulated
Twilio caller, the agent is on the scripted providers. Half the calls hang up while the database is down.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path

import pytest
from bson import ObjectId

from scripts.db_outage_test import RETRY_LINE, DbOutage, Target, scenario, verify
from scripts.twilio_sim import synthesize
from tests.telephony import AUTH_TOKEN, Line, make_line, start_server
from voicex.platform.embedded_db import EmbeddedMongo, free_port
from voicex.platform.settings import load_settings
from voicex.server.runtime import Runtime
from voicex.store.usage import add_usage

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the caller's speech needs espeak-ng"),
]

DB_NAME = "voicex"


@cache
def question() -> bytes:
    return synthesize("Hello, what time do you open tomorrow?")


class RetryLog(logging.Handler):
    """Counts finalizations that failed once and were retried (the server logs each at WARNING)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.finalize_retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == RETRY_LINE and getattr(record, "write", "") == "finalize call":
            self.finalize_retries += 1


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedMongo, Runtime, object, Line]]:
    database = EmbeddedMongo(tmp_path / "db", port=free_port())
    uri = await asyncio.to_thread(database.start)
    settings = load_settings(
        data_dir=tmp_path / "data", mongodb_uri=uri, db_name=DB_NAME, enable_scripted_providers=True
    )
    runtime = await Runtime.start(settings)
    client = await start_server(runtime.services)
    # no "are you still there?" while the callers wait out the outage, so each transcript is exactly predictable
    line = await make_line(client, runtime.services, plan="pro", thresholds={"idleTimeoutMs": 60000})
    try:
        yield database, runtime, client, line
    finally:
        await client.close()
        await runtime.close()
        await asyncio.to_thread(database.stop)


async def test_calls_survive_a_database_restart_and_nothing_is_lost(world) -> None:
    database, _, client, line = world
    retries = RetryLog()
    logging.getLogger("voicex.store.retry").addHandler(retries)
    try:
        target = Target(f"http://127.0.0.1:{client.server.port}", line.tenant.api_key, AUTH_TOKEN, line.agent["_id"])
        run = await scenario(
            target,
            DbOutage(database, "restart"),
            question(),
            calls=4,
            outage_s=2.0,
            finalize_retries=lambda: retries.finalize_retries,
        )
    finally:
        logging.getLogger("voicex.store.retry").removeHandler(retries)

    # the callers heard an answer to every turn, before, during and after the outage
    assert (run["turns_before"], run["turns_during"], run["turns_after"]) == ("4/4", "4/4", "2/2")
    assert run["violations"] == 0
    # readiness said so while the database was away, and recovered
    assert run["ready_during"].get(503, 0) >= 1 and run["ready_during"].get(200, 0) == 0
    assert run["ready_after_restart_s"] is not None
    # the two calls that ended meanwhile could not be written at once; their finalization was retried
    assert run["finalize_retries_logged"] >= 2

    check = await verify(database.uri, DB_NAME, run["call_ids"], run["caller_turns"])
    assert check["finalized"] == check["records"] == 4
    assert check["end_reasons"] == {"caller_hangup": 4}
    assert check["transcripts_complete"] == 4  # greeting + every answer + every caller turn
    assert check["usage_calls"] == 4 and check["counted_twice"] == 0 and check["usage_pending"] == 0
    assert check["usage_minutes"] == pytest.approx(check["record_minutes"], abs=1e-3)
    assert check["slots_held"] == 0 and check["reaped_while_live"] == 0

    # the dashboard shows each call completed with every word said, as if nothing had happened
    greeting, answer = ("assistant", "Hello from Voicex."), ("assistant", "Sure, I can help with that.")
    for call_id, turns in zip(run["call_ids"], run["caller_turns"], strict=True):
        record = await (await client.get(f"/api/dashboard/calls/{call_id}", headers=line.tenant.key)).json()
        said = [(entry["role"], entry["text"]) for entry in record["transcript"] if entry["role"] != "event"]
        assert record["status"] == "completed"
        assert said == [greeting] + [("user", "Hello there."), answer] * turns


async def test_usage_of_a_call_is_counted_once_however_often_it_is_written(world) -> None:
    """A retry after a lost reply, or the janitor finishing a crashed finalization, re-sends the increment."""
    _, runtime, client, line = world
    org_id, call_id = ObjectId(line.tenant.org_id), ObjectId()
    moment = dt.datetime.now(dt.UTC)
    assert await add_usage(runtime.services.db, org_id, moment, once=call_id, calls=1, minutes=2.5)
    assert not await add_usage(runtime.services.db, org_id, moment, once=call_id, calls=1, minutes=2.5)
    assert await add_usage(runtime.services.db, org_id, moment, once=ObjectId(), calls=1, minutes=1.0)

    body = await (await client.get("/api/dashboard/analytics/usage?days=1", headers=line.tenant.key)).json()
    assert body[-1]["calls"] == 2 and body[-1]["minutes"] == 3.5
    assert set(body[-1]) == {"date", "calls", "minutes", "tokens", "ttsChars"}
