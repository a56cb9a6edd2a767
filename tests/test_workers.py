"""``voicex serve --workers N`` (voicex/server/workers.py): N processes on one port, one database, one drain.

Process-level, as an operator runs it: the supervisor and its workers are real processes on a loopback port.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scripts.multiproc import Cluster
from scripts.twilio_sim import CallConfig, SimulatedCall, caller_audio, synthesize
from tests.voicex_process import clean_env, http, run, start_serve

pytestmark = pytest.mark.slow


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (from /proc), the embedded database's included."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != "Z":
                found.add(int(entry.name))
    return found


def workers_of(pid: int) -> set[int]:
    return {child for child in children(pid) if b"voicex" in Path(f"/proc/{child}/cmdline").read_bytes()}


def _rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))


def _two(pids: set[int]) -> set[int] | None:
    return pids if len(pids) == 2 else None


def wait_for(predicate, limit_s: float = 30.0):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_two_workers_share_the_port_a_dead_one_is_replaced_and_one_signal_stops_them_all(tmp_path) -> None:
    env = clean_env(VOICEX_WARM_LOCAL_MODELS="false", VOICEX_LOG_LEVEL="INFO")
    server = start_serve(env, tmp_path, extra=("--workers", "2"))
    try:
        first = wait_for(lambda: _two(workers_of(server.process.pid)))
        wait_for(lambda: server.log().count('"msg":"event loop"') == 2)  # both serving
        assert http("GET", f"{server.url}/api/ready")[0] == 200

        victim = min(first)
        os.kill(victim, signal.SIGKILL)  # a worker crashes
        replaced = wait_for(lambda: _two(workers_of(server.process.pid) - {victim}))
        assert (first - {victim}) <= replaced  # the other worker was left alone
        for _ in range(10):  # the port keeps answering while and after the worker is replaced
            assert http("GET", f"{server.url}/api/ready")[0] == 200
        assert "worker died; restarting it" in server.log()
        wait_for(lambda: server.log().count('"msg":"event loop"') == 3)  # the new worker is serving

        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in replaced)  # every worker exited with it
        assert server.log().count('"msg":"drained: every call ended on its own"') == 2
    finally:
        server.stop()


def test_metrics_add_up_every_workers_numbers_whichever_worker_is_scraped(tmp_path) -> None:
    env = clean_env(VOICEX_WARM_LOCAL_MODELS="false")
    server = start_serve(env, tmp_path, extra=("--workers", "2"))
    try:
        pids = wait_for(lambda: _two(workers_of(server.process.pid)))
        for _ in range(20):  # requests spread over both workers
            http("GET", f"{server.url}/api/health")
        time.sleep(1.5)  # each worker publishes its numbers every second
        seen = set()
        for _ in range(6):
            text = urllib.request.urlopen(f"{server.url}/metrics", timeout=10).read().decode()
            families = {family.name: family for family in text_string_to_metric_families(text)}
            health = [
                sample.value
                for sample in families["voicex_http_requests"].samples
                if sample.name == "voicex_http_requests_total" and sample.labels["route"] == "/api/health"
            ]
            seen.add(health[0])
            rss = families["process_resident_memory_bytes"].samples[0].value
            smallest = min(_rss_bytes(pid) for pid in pids)
            assert rss > 1.5 * smallest  # both workers' memory, not one's
        assert max(seen) >= 20  # all 20 requests, whichever worker answered the scrape
    finally:
        server.stop()


def test_a_drain_over_http_reaches_one_worker_and_the_whole_server_drains(tmp_path) -> None:
    env = clean_env(VOICEX_WARM_LOCAL_MODELS="false", VOICEX_LOG_LEVEL="INFO")
    server = start_serve(env, tmp_path, extra=("--workers", "2"))
    try:
        wait_for(lambda: _two(workers_of(server.process.pid)))
        created = run(
            ["admin", "create", "--email", "ops@voicex.example", "--password", "ops-password-1"], env, tmp_path
        )
        assert created.returncode == 0, created.stderr
        status, body = http(
            "POST", f"{server.url}/api/auth/signin", {"email": "ops@voicex.example", "password": "ops-password-1"}
        )
        assert status == 200
        status, drained = http(
            "POST", f"{server.url}/api/admin/drain", headers={"Authorization": f"Bearer {body['token']}"}
        )
        assert (status, drained["status"]) == (202, "draining")

        assert server.process.wait(timeout=30) == 0  # the other worker drained too, and the supervisor exited
        assert "drained over HTTP: draining the others" in server.log()
        assert "worker died" not in server.log()  # a drained worker is not "restarted"
    finally:
        server.stop()


async def test_a_worker_killed_mid_call_loses_only_its_own_calls() -> None:
    """10 calls spread over 2 workers; kill -9 one: its calls end as server_lost, the others finish normally."""
    async with Cluster() as cluster, aiohttp.ClientSession() as session:
        server = await cluster.start_server(workers=2)
        org = await cluster.make_org(session, server, "enterprise")
        thresholds = {"idleTimeoutMs": 60000, "maxCallDurationSec": 1800}
        async with await cluster.make_agent(session, server, org, thresholds=thresholds) as response:
            agent_id = (await response.json())["_id"]
        config = CallConfig(server.url, org.api_key, cluster.twilio_token, agent_id=agent_id, timeout_s=60)
        calls = [SimulatedCall(config, session) for _ in range(10)]
        assert all(await asyncio.gather(*(call.dial() for call in calls)))
        assert None not in await asyncio.gather(*(call.wait_for_agent_audio(timeout=60) for call in calls))
        pid_of = {doc["_id"]: doc["pid"] async for doc in cluster.db.server_instances.find()}
        where = {doc["callSid"]: pid_of[doc["serverId"]] async for doc in cluster.db.calls.find({"status": "active"})}
        assert len(set(where.values())) == 2, "the port spread the calls over both workers"
        victim = where[calls[0].ids.call_sid]
        lost = [call for call in calls if where[call.ids.call_sid] == victim]
        kept = [call for call in calls if where[call.ids.call_sid] != victim]

        os.kill(victim, signal.SIGKILL)
        await asyncio.gather(*(call.close() for call in lost))  # their lines drop with the process
        for call in kept:  # the other worker's callers go on talking, then hang up
            await call.say(caller_audio(synthesize("And are you open on Saturday?")), wait=False)
        assert None not in await asyncio.gather(*(call.wait_for_agent_audio(timeout=30) for call in kept))
        await asyncio.gather(*(call.hangup() for call in kept))

        ended: dict[str, str] = {}
        for _ in range(300):  # the janitor of the surviving (or the restarted) worker finalizes the lost calls
            ended = {
                doc["callSid"]: doc.get("endReason")
                async for doc in cluster.db.calls.find({"status": {"$ne": "active"}})
            }
            if len(ended) == len(calls):
                break
            await asyncio.sleep(0.2)
        assert {ended.get(call.ids.call_sid) for call in lost} == {"server_lost"}
        assert {ended.get(call.ids.call_sid) for call in kept} == {"caller_hangup"}
        assert "worker died; restarting it" in server.log_tail(20000)
