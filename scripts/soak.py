"""Soak: cycling calls against one ``voicex serve`` process for a long time, watching what should not grow.

``--concurrency`` call lanes run from caller processes; each lane places a call (greeting, ``--turns`` caller
turns, hang up) and starts the next as soon as it ends. Every ``--interval`` seconds the driver scrapes the
server's ``/metrics``: RSS and open file descriptors (prometheus_client's process collector), asyncio tasks
and the driver's open MongoDB connections (``voicex_asyncio_tasks``, ``voicex_db_connections``).

Verdict: 0 failed calls (every call connected, greeted, answered every turn, completed with no protocol
violation, and its record was finalized as ``caller_hangup``); after the warm-up, RSS, fds, tasks and DB
connections grew ≤ 10 % (mean of the last quarter of samples against the first quarter); and once the calls
are over, tasks and non-DB fds are back to where they were before the first call (a per-call leak shows here).

``python -m scripts.soak [--minutes 30] [--concurrency 50] [--turns 3] [--interval 30] [--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient

from scripts.bench.harness import ROOT, Bench, hist_quantile, scrape
from scripts.twilio_sim import CallConfig, SimulatedCall, caller_audio
from voicex.server.demo import DEMO_ACCOUNT_SID

GROWTH_LIMIT = 0.10
IDLE_SLACK = 3  # background tasks/fds that may be mid-flight at an idle sample (a janitor pass, a scrape)
WATCHED = {
    "rss_mb": "process_resident_memory_bytes",
    "fds": "process_open_fds",
    "tasks": "voicex_asyncio_tasks",
    "db_conns": "voicex_db_connections",
    "active": "voicex_active_calls",
}


# ----- caller worker (its own process, so callers never steal the server's event loop) -------------------


async def _one_call(cfg: CallConfig, http: aiohttp.ClientSession, clips: list[Any], turns: int, n: int) -> str | None:
    """Place one call; None if it went as a caller expects, else what went wrong."""
    call = SimulatedCall(cfg, http)
    try:
        if not await call.dial():
            return f"not connected: {call.error or call.outcome}"
        greeted = await call.wait_for_agent_silence(timeout=20, quiet_ms=300)
        answered = 0
        for turn in range(turns):
            await call.say(clips[(n + turn) % len(clips)])
            answered += await call.wait_for_agent_silence(timeout=20, quiet_ms=300)
        await call.hangup()
        result = call.result()
        if greeted and answered == turns and result.outcome == "completed" and result.violation_count == 0:
            return None
        return f"greeted={greeted} answered={answered}/{turns} outcome={result.outcome} violations=" + str(
            result.violation_count
        )
    except Exception as exc:  # a failed call is a finding, not a crash of the soak
        return f"{type(exc).__name__}: {exc}"
    finally:
        await call.close()


async def worker(spec: dict[str, Any], clips: list[Any]) -> None:
    """Run ``spec["lanes"]`` lanes of back-to-back calls until the deadline; report counts to a file."""
    cfg = CallConfig(**spec["config"])
    deadline = time.monotonic() + spec["duration_s"]
    counts: Counter[str] = Counter()
    failures: list[str] = []
    progress = Path(spec["progress"])

    def report() -> None:
        progress.write_text(json.dumps({"counts": counts, "failures": failures[:20]}))

    async def lane(index: int) -> None:
        await asyncio.sleep(index * spec["stagger_s"])
        n = index
        while time.monotonic() < deadline:
            problem = await _one_call(cfg, http, clips, spec["turns"], n)
            counts["failed" if problem else "completed"] += 1
            if problem:
                failures.append(problem)
            n += 1

    async def reporter() -> None:
        while True:
            report()
            await asyncio.sleep(2)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        ticker = asyncio.create_task(reporter())
        await asyncio.gather(*(lane(i) for i in range(spec["lanes"])))
        ticker.cancel()
    report()


# ----- driver ---------------------------------------------------------------------------------------------


class Sampler:
    """Scrapes the server; each row also carries the event-loop lag p99 since the previous scrape and the
    machine's load, which tell a starved server (shared CPU) from a leaking one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.previous: dict[str, Any] = {}

    def __call__(self, t: float) -> dict[str, float]:
        metrics = scrape(self.url)
        row = {"t_s": round(t, 1)} | {key: float(metrics.get(name, -1)) for key, name in WATCHED.items()}
        row["rss_mb"] = round(row["rss_mb"] / 2**20, 1)
        lag = hist_quantile(self.previous, metrics, "voicex_event_loop_lag_seconds", 0.99)
        row["loop_lag_p99_ms"] = round(1000 * lag, 1) if lag is not None else -1.0
        row["load_1m"] = round(os.getloadavg()[0], 1)
        self.previous = metrics
        return row


def growth(rows: list[dict[str, float]], key: str) -> float | None:
    """Relative change from the first quarter of ``rows`` to the last quarter (means)."""
    k = max(1, len(rows) // 4)
    if len(rows) < 2:
        return None
    first = sum(r[key] for r in rows[:k]) / k
    last = sum(r[key] for r in rows[-k:]) / k
    return None if first <= 0 else (last - first) / first


async def _read_progress(paths: list[Path]) -> tuple[Counter[str], list[str]]:
    counts: Counter[str] = Counter()
    failures: list[str] = []
    for path in paths:
        try:
            data = json.loads(await asyncio.to_thread(path.read_text))
        except (OSError, ValueError):
            continue
        counts.update(data["counts"])
        failures += data["failures"]
    return counts, failures


async def soak(
    minutes: float, concurrency: int, turns: int, interval_s: float, warmup_s: float, workers: int
) -> dict[str, Any]:
    duration_s = minutes * 60
    async with Bench() as bench:
        _, url = bench.servers[0]
        await asyncio.sleep(2)
        sample = Sampler(url)
        idle_before = await asyncio.to_thread(sample, 0.0)
        procs, progress = [], []
        per = [concurrency // workers + (1 if w < concurrency % workers else 0) for w in range(workers)]
        config = {"base_url": url, "api_key": bench.api_key, "auth_token": bench.token, "agent_id": bench.agent_id}
        config["account_sid"] = DEMO_ACCOUNT_SID  # the demo org's stored Twilio account (checked on every webhook)
        for w, lanes in enumerate(per):
            spec = {"config": config | {"timeout_s": 30.0}, "clips": bench.clips, "turns": turns, "lanes": lanes}
            spec |= {"duration_s": duration_s, "stagger_s": 0.2 * workers, "progress": str(bench.tmp / f"p{w}.json")}
            spec_path = bench.tmp / f"soak-{w}.json"
            spec_path.write_text(json.dumps(spec))
            cmd = [sys.executable, "-m", "scripts.soak", "--worker", str(spec_path)]
            procs.append(subprocess.Popen(cmd, cwd=ROOT))  # noqa: ASYNC220 - polled below, never awaited
            progress.append(Path(spec["progress"]))
        started = time.monotonic()
        rows: list[dict[str, float]] = []
        print(_header(), flush=True)
        while any(p.poll() is None for p in procs):
            await asyncio.sleep(min(interval_s, max(0.5, started + (len(rows) + 1) * interval_s - time.monotonic())))
            if time.monotonic() - started > duration_s + 300:
                for p in procs:
                    p.kill()
            try:
                row = await asyncio.to_thread(sample, time.monotonic() - started)
            except OSError:
                continue  # a starved server answered late: skip this sample
            counts, _ = await _read_progress(progress)
            row |= {"completed": counts["completed"], "failed": counts["failed"]}
            rows.append(row)
            print(_line(row), flush=True)
        # Idle means every call's record is written (a backlogged server may still be finishing calls whose
        # sockets closed long ago); only then do leftover tasks and fds mean a leak. Bounded: 2 minutes.
        for _ in range(240):
            if (await _records(bench.uri))["active"] == 0:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)
        idle_after = await asyncio.to_thread(sample, time.monotonic() - started)
        counts, failures = await _read_progress(progress)
        records = await _records(bench.uri)
    steady = [r for r in rows if warmup_s <= r["t_s"] <= duration_s]
    return {
        "minutes": minutes,
        "concurrency": concurrency,
        "turns": turns,
        "samples": rows,
        "idle_before": idle_before,
        "idle_after": idle_after,
        "calls": counts["completed"] + counts["failed"],
        "completed": counts["completed"],
        "failed": counts["failed"],
        "failures": failures[:10],
        "records": records,
        "growth": {key: growth(steady, key) for key in ("rss_mb", "fds", "tasks", "db_conns")},
        "steady_samples": len(steady),
    }


async def _records(uri: str) -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        cursor = await client["voicex"].calls.aggregate([{"$group": {"_id": "$endReason", "n": {"$sum": 1}}}])
        reasons = {str(row["_id"]): row["n"] async for row in cursor}
        active = await client["voicex"].calls.count_documents({"status": "active"})
    finally:
        await client.close()
    return {"end_reasons": reasons, "active": active}


def verdict(result: dict[str, Any]) -> dict[str, bool]:
    before, after = result["idle_before"], result["idle_after"]
    grown = [v for v in result["growth"].values() if v is not None]
    reasons = result["records"]["end_reasons"]
    return {
        "no failed calls": result["failed"] == 0 and result["calls"] > 0,
        "every record finalized as caller_hangup": result["records"]["active"] == 0
        and set(reasons) == {"caller_hangup"}
        and reasons["caller_hangup"] == result["calls"],
        "growth after warm-up ≤ 10 %": bool(grown) and all(v <= GROWTH_LIMIT for v in grown),
        "tasks back to idle": after["tasks"] <= before["tasks"] + IDLE_SLACK,
        "fds back to idle": after["fds"] - after["db_conns"] <= before["fds"] - before["db_conns"] + IDLE_SLACK,
    }


def _header() -> str:
    names = ("t (s)", "active calls", "RSS MB", "fds", "tasks", "DB conns", "calls done", "failed", "loop lag p99 ms")
    names += ("load 1m",)
    return "| " + " | ".join(names) + " |\n" + "|---" * len(names) + "|"


def _line(r: dict[str, float]) -> str:
    cells = [r["t_s"], r["active"], r["rss_mb"], r["fds"], r["tasks"], r["db_conns"], r["completed"], r["failed"]]
    cells += [r["loop_lag_p99_ms"], r["load_1m"]]
    return "| " + " | ".join(f"{c:g}" for c in cells) + " |"


def render(result: dict[str, Any]) -> str:
    before, after = result["idle_before"], result["idle_after"]
    pct = {k: "-" if v is None else f"{100 * v:+.1f} %" for k, v in result["growth"].items()}
    lines = [
        f"calls: {result['calls']} ({result['completed']} completed, {result['failed']} failed) over"
        f" {result['minutes']:g} min, {result['concurrency']} at a time, {result['turns']} turns each",
        f"records: {result['records']['end_reasons']}, still active: {result['records']['active']}",
        f"growth after warm-up ({result['steady_samples']} samples): RSS {pct['rss_mb']}, fds {pct['fds']},"
        f" tasks {pct['tasks']}, DB connections {pct['db_conns']}",
        f"idle before → after: RSS {before['rss_mb']:g} → {after['rss_mb']:g} MB, fds {before['fds']:g} →"
        f" {after['fds']:g}, tasks {before['tasks']:g} → {after['tasks']:g}, DB connections"
        f" {before['db_conns']:g} → {after['db_conns']:g}",
    ]
    lines += [f"{'PASS' if ok else 'FAIL'}  {name}" for name, ok in verdict(result).items()]
    lines += [f"  failure: {f}" for f in result["failures"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--interval", type=float, default=30, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=None, help="seconds ignored by the growth check")
    parser.add_argument("--workers", type=int, default=2, help="caller processes")
    parser.add_argument("--json", help="write samples and verdict here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(Path(args.worker).read_text())
        asyncio.run(worker(spec, [caller_audio(Path(p).read_bytes()) for p in spec["clips"]]))
        return
    warmup = args.warmup if args.warmup is not None else min(300.0, args.minutes * 60 / 5)
    result = asyncio.run(soak(args.minutes, args.concurrency, args.turns, args.interval, warmup, args.workers))
    result["verdict"] = verdict(result)
    print(render(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    raise SystemExit(0 if all(result["verdict"].values()) else 1)


if __name__ == "__main__":
    main()
