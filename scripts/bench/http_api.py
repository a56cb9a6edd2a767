"""Benchmark 6 — HTTP API: requests/s and p50/p99 latency of the dashboard API and of Twilio's signed webhooks.

Scenarios (each run at every concurrency level, closed loop: each of C client tasks sends its next request as soon
as the previous answer is read, over keep-alive connections):

- ``agents``: ``GET /api/dashboard/agents`` with ``x-api-key`` (key lookup, both rate-limit counters, org, agents,
  statuses; one agent in the org).
- ``voice``: an *admitted* call, the realistic hot case: ``POST /api/twilio/voice`` signed like Twilio (org by key,
  signature, agent, admission with an atomic slot claim, the call record, TwiML with a stream token), then the
  ``completed`` status callback Twilio sends when the caller hangs up before the stream opens, which finalizes the
  call and frees its slot. So at most C slots are held (the tenant's plan allows 300) and every admission does
  the full work instead of being refused as busy. Both requests are timed and reported separately.

The server is the harness's (``scripts/bench/harness.py``): a real ``voicex serve`` process on an embedded DB
process, rate limits raised to 1,000,000/min so they count but never refuse. The client runs in its own process
(``--client SPEC OUT``) so its CPU never competes inside the server's event loop; both are measured.
``python -m scripts.bench.http_api [--levels 1,8,32,64] [--seconds 10] [--scenarios agents,voice] [--json out]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from scripts.bench.harness import ROOT, Bench, Usage, cpu_seconds, pcts, system_busy, table, write_json
from scripts.twilio_sim.webhook import WEBHOOK_USER_AGENT, inbound_call_params, new_sid, sign, voice_url
from voicex.server.demo import DEMO_ACCOUNT_SID

SCENARIOS = ("agents", "voice")
WARMUP_S = 1.0


class ApiBench(Bench):
    """The harness's DB, tenant and server, without the caller speech clips (no media is streamed here)."""

    def _clips(self) -> None:
        return None


# ---- client process ---------------------------------------------------------------------------------------------


class Recorder:
    """Latencies (ms) per endpoint and answer counts, kept only for requests started after the warm-up."""

    def __init__(self, record_from: float) -> None:
        self.record_from = record_from
        self.latencies: dict[str, list[float]] = {}
        self.answers: dict[str, int] = {}
        self.errors: list[str] = []
        self.total = 0  # warm-up included: the server's CPU is divided by every request it served

    def add(self, endpoint: str, began: float, answer: str) -> None:
        self.total += 1
        if began < self.record_from:
            return
        self.latencies.setdefault(endpoint, []).append((time.perf_counter() - began) * 1000)
        key = f"{endpoint}:{answer}"
        self.answers[key] = self.answers.get(key, 0) + 1


async def agents_worker(http: aiohttp.ClientSession, spec: dict[str, Any], rec: Recorder, stop_at: float) -> None:
    url, headers = f"{spec['base_url']}/api/dashboard/agents", {"x-api-key": spec["api_key"]}
    while time.perf_counter() < stop_at:
        began = time.perf_counter()
        async with http.get(url, headers=headers) as response:
            body = await response.read()
        ok = response.status == 200 and body.startswith(b"[")  # the agents list: a bare JSON array
        rec.add("agents", began, "ok" if ok else f"http {response.status}")


async def voice_worker(http: aiohttp.ClientSession, spec: dict[str, Any], rec: Recorder, stop_at: float) -> None:
    base, key, token = spec["base_url"], spec["api_key"], spec["auth_token"]
    account = DEMO_ACCOUNT_SID  # the demo org's stored Twilio account (checked on every webhook)
    post_voice = voice_url(base, key, spec["agent_id"])
    post_status = f"{base}/api/twilio/status?api_key={key}"  # the key is hex: nothing to encode
    while time.perf_counter() < stop_at:
        call_sid = new_sid("CA")
        params = inbound_call_params(account, call_sid, "+14155550123", "+15005550006")
        headers = {"X-Twilio-Signature": sign(token, post_voice, params), "User-Agent": WEBHOOK_USER_AGENT}
        began = time.perf_counter()
        async with http.post(post_voice, data=params, headers=headers) as response:
            body = await response.text()
        admitted = response.status == 200 and "<Stream" in body
        rec.add("voice", began, "admitted" if admitted else f"refused {response.status}")
        status = {"AccountSid": account, "ApiVersion": "2010-04-01", "CallSid": call_sid, "CallStatus": "completed"}
        status |= {"CallDuration": "0", "Direction": "inbound", "From": "+14155550123", "To": "+15005550006"}
        status |= {"SequenceNumber": "0", "Timestamp": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())}
        headers = {"X-Twilio-Signature": sign(token, post_status, status), "User-Agent": WEBHOOK_USER_AGENT}
        began = time.perf_counter()
        async with http.post(post_status, data=status, headers=headers) as response:
            await response.read()
        rec.add("status", began, "ok" if response.status == 204 else f"http {response.status}")


async def client_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``concurrency`` closed-loop tasks of one scenario for warm-up + ``seconds``; return what was recorded."""
    worker = agents_worker if spec["scenario"] == "agents" else voice_worker
    start = time.perf_counter()
    rec = Recorder(start + WARMUP_S)
    stop_at = start + WARMUP_S + float(spec["seconds"])
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as http:
        results = await asyncio.gather(
            *(worker(http, spec, rec, stop_at) for _ in range(int(spec["concurrency"]))), return_exceptions=True
        )
    window = max(1e-9, time.perf_counter() - rec.record_from)  # includes the last in-flight answers
    rec.errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)][:5]
    out = {"window_s": window, "latencies_ms": rec.latencies, "answers": rec.answers, "errors": rec.errors}
    return out | {"requests_total": rec.total}


# ---- driver -----------------------------------------------------------------------------------------------------


async def run_level(bench: ApiBench, scenario: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """One scenario at one concurrency: the client process's results plus server/client CPU and machine load."""
    proc_server, url = bench.servers[0]
    spec = {"scenario": scenario, "concurrency": concurrency, "seconds": seconds, "base_url": url}
    spec |= {"api_key": bench.api_key, "auth_token": bench.token, "agent_id": bench.agent_id}
    spec_path, out_path = bench.tmp / f"http-{scenario}-{concurrency}.json", bench.tmp / f"http-out-{scenario}.json"
    spec_path.write_text(json.dumps(spec))
    out_path.unlink(missing_ok=True)
    busy0, load0 = system_busy(), os.getloadavg()[0]
    server, db = Usage(proc_server.pid), Usage(bench.db_pid)
    server.start()
    db.start()
    cpu0 = cpu_seconds(server.pid), cpu_seconds(db.pid)
    cmd = [sys.executable, "-m", "scripts.bench.http_api", "--client", str(spec_path), str(out_path)]
    client_proc = subprocess.Popen(cmd, cwd=ROOT)  # noqa: ASYNC220 - polled below without blocking the loop
    client = Usage(client_proc.pid)
    client.start()
    client_cpu, limit = 0.0, time.monotonic() + WARMUP_S + seconds + 60
    while client_proc.poll() is None and time.monotonic() < limit:
        server.sample()
        client_cpu = max(client_cpu, cpu_seconds(client_proc.pid))  # read before the process is reaped
        await asyncio.sleep(0.25)
    if client_proc.poll() is None:
        client_proc.kill()
    cpu_used = cpu_seconds(server.pid) - cpu0[0], cpu_seconds(db.pid) - cpu0[1]
    server.stop()
    db.stop()
    client.stop(client_cpu)
    busy1 = system_busy()
    machine = 100 * (os.cpu_count() or 1) * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    data = json.loads(out_path.read_text()) if out_path.exists() else {"window_s": 1, "latencies_ms": {}}
    endpoints = {}
    for endpoint, values in data["latencies_ms"].items():
        endpoints[endpoint] = {"requests": len(values), "rps": len(values) / data["window_s"]} | pcts(values)
    answers, served = data.get("answers", {}), max(1, data.get("requests_total", 0))
    return {
        "scenario": scenario,
        "concurrency": concurrency,
        "endpoints": endpoints,
        "answers": answers,
        "unexpected": sum(n for k, n in answers.items() if not k.endswith((":ok", ":admitted"))),
        "errors": data.get("errors", ["client produced no results"]),
        "server_cpu_pct": server.cpu_pct,
        "server_rss_mb": max(server.rss, default=0.0),
        "db_cpu_pct": db.cpu_pct,
        "server_cpu_ms_per_request": 1000 * cpu_used[0] / served,  # less sensitive to a shared machine than req/s
        "db_cpu_ms_per_request": 1000 * cpu_used[1] / served,
        "client_cpu_pct": client.cpu_pct,
        "machine_cpu_pct": machine,
        "other_cpu_pct": max(0.0, machine - server.cpu_pct - db.cpu_pct - client.cpu_pct),
        "load_avg_1m": load0,
    }


async def run(levels: list[int], seconds: float, scenarios: list[str]) -> list[dict[str, Any]]:
    rows = []
    async with ApiBench() as bench:
        for scenario in scenarios:
            for c in levels:
                row = await run_level(bench, scenario, c, seconds)
                rows.append(row)
                summary = {e: round(v["rps"], 1) for e, v in row["endpoints"].items()}
                print(f"  {scenario} x{c}: req/s {summary}, unexpected {row['unexpected']}", flush=True)
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    headers = ["endpoint", "concurrency", "requests", "req/s", "p50 ms", "p99 ms", "unexpected answers"]
    headers += ["server CPU ms/req", "DB CPU ms/req", "server CPU %", "DB CPU %", "client CPU %", "other procs CPU %"]
    headers.append("load 1m")
    body = []
    for r in rows:
        for endpoint, e in r["endpoints"].items():
            body.append([endpoint, r["concurrency"], e["requests"], e["rps"], e["p50"], e["p99"], r["unexpected"]])
            body[-1] += [r["server_cpu_ms_per_request"], r["db_cpu_ms_per_request"], r["server_cpu_pct"]]
            body[-1] += [r["db_cpu_pct"], r["client_cpu_pct"], r["other_cpu_pct"]]
            body[-1].append(r["load_avg_1m"])
    return table(headers, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,8,32,64", help="concurrent client tasks")
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per level (after 1 s warm-up)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--json")
    parser.add_argument("--smoke", action="store_true", help="concurrency 1 and 4 for 2 s")
    parser.add_argument("--client", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        spec = json.loads(Path(args.client[0]).read_text())
        Path(args.client[1]).write_text(json.dumps(asyncio.run(client_main(spec))))
        return
    scenarios = [s for s in args.scenarios.split(",") if s]
    if unknown := set(scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    levels, seconds = ([1, 4], 2.0) if args.smoke else ([int(x) for x in args.levels.split(",")], args.seconds)
    rows = asyncio.run(run(levels, seconds, scenarios))
    print(render(rows))
    write_json(args.json, {"benchmark": "http_api", "seconds": seconds, "levels": rows})


if __name__ == "__main__":
    main()
