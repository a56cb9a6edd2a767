"""Benchmark 1 — added latency: caller voice-to-voice minus the agent's silenceTimeoutMs, per concurrency level.

Every call talks in turns (say an utterance, wait for the whole reply, repeat) for ``--seconds``; providers are the
scripted zero-latency ones, so what remains after that silence is Voicex's own cost. Targets: p99 ≤ 10 ms at 1 call,
≤ 25 ms at 100 calls. ``python -m scripts.bench.latency [--levels 1,50,100,200,300] [--seconds 60] [--json out]``

"code-added" also subtracts where the engine's turn detector ends each clip's speech after the caller's last loud
frame (the clip replayed offline through the same VAD, tail trim and defaults: ``caller.detector_offset_ms``).
That part is a turn-taking decision made on 20 ms frames; the rest is what Voicex's code and the wire added.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from scripts.bench.harness import SILENCE_TIMEOUT_MS, Bench, table, write_json

TARGETS_MS = {1: 10, 100: 25}


async def run(levels: list[int], seconds: float, workers: int, stagger_ms: float = 20.0) -> list[dict[str, Any]]:
    rows = []
    async with Bench() as bench:
        for n in levels:
            stats = await bench.run_calls(n, "talk", seconds, workers=workers, stagger_ms=stagger_ms)
            stats["target_p99_ms"] = TARGETS_MS.get(n)
            rows.append(stats)
            print(f"  {n} calls done: added p99 {stats['added_latency_ms']['p99']}", flush=True)
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    headers = ["calls", "turns", "added p50 ms", "added p95 ms", "added p99 ms", "target p99"]
    headers += ["code-added p50", "code-added p99", "server CPU %"]
    headers += ["caller CPU %", "caller max lag ms", "other procs CPU %", "completed"]
    body = []
    for r in rows:
        added, aligned = r["added_latency_ms"], r["code_added_ms"]
        body.append(
            [
                r["calls"],
                r["turns"],
                added["p50"],
                added["p95"],
                added["p99"],
                r["target_p99_ms"],
                aligned["p50"],
                aligned["p99"],
                r["server_cpu_pct"],
                r["caller_cpu_pct"],
                r["caller_max_send_lag_ms"],
                r["other_cpu_pct"],
                f"{r['completed']}/{r['calls']}",
            ]
        )
    return f"Added latency (voice-to-voice − silenceTimeoutMs {SILENCE_TIMEOUT_MS} ms)\n" + table(headers, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,50,100,200,300")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2, help="caller processes")
    parser.add_argument("--stagger-ms", type=float, default=20.0, help="between call starts (20: 50 new calls/s)")
    parser.add_argument("--json")
    parser.add_argument("--smoke", action="store_true", help="1 and 5 calls for 10 s")
    args = parser.parse_args()
    levels, seconds = ([1, 5], 10.0) if args.smoke else ([int(x) for x in args.levels.split(",")], args.seconds)
    rows = asyncio.run(run(levels, seconds, args.workers, args.stagger_ms))
    print(render(rows))
    write_json(args.json, {"benchmark": "latency", "silence_timeout_ms": SILENCE_TIMEOUT_MS, "levels": rows})


if __name__ == "__main__":
    main()
