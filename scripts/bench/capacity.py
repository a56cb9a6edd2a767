"""Benchmark 2 — capacity: the most concurrent calls one server process sustains on this machine.

Each level runs every call talking in turns (VAD on every frame, real-time audio both ways). A level is sustained
when every call completes, the caller hears no underrun inside a reply, and the server's inbound frame handling
p99 and event-loop lag p99 (from /metrics) are both under 20 ms. Target: ≥ 300 calls on 2 cores.
``python -m scripts.bench.capacity [--levels 50,100,...] [--seconds 45] [--json out]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from scripts.bench.harness import Bench, table, write_json

BUDGET_MS = 20.0


def verdict(r: dict[str, Any]) -> list[str]:
    """Why a level is not sustained (empty: sustained)."""
    problems = []
    if r["completed"] < r["calls"]:
        problems.append(f"{r['calls'] - r['completed']} calls failed")
    if r["underruns"]:
        problems.append(f"{r['underruns']} underruns")
    for key in ("frame_p99_ms", "loop_lag_p99_ms"):
        if r[key] is None or r[key] >= BUDGET_MS:
            problems.append(f"{key} {r[key]}")
    return problems


async def run(
    levels: list[int],
    seconds: float,
    workers: int,
    servers: int,
    keep_going: bool,
    stagger_ms: float = 20.0,
    server_workers: int = 1,
) -> list[dict]:
    rows = []
    async with Bench(servers=servers, server_workers=server_workers) as bench:
        for n in levels:
            stats = await bench.run_calls(n, "talk", seconds, workers=workers, stagger_ms=stagger_ms)
            stats["problems"] = verdict(stats)
            stats["sustained"] = not stats["problems"]
            rows.append(stats)
            print(f"  {n} calls: {'sustained' if stats['sustained'] else stats['problems']}", flush=True)
            if not stats["sustained"] and not keep_going:
                break
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    headers = ["calls", "completed", "underruns", "frame p99 ms", "loop lag p99 ms", "server CPU %", "server RSS MB"]
    headers += ["caller CPU %", "caller max lag ms", "DB CPU %", "other procs CPU %", "load 1m", "sustained"]
    keys = ["calls", "completed", "underruns", "frame_p99_ms", "loop_lag_p99_ms", "server_cpu_pct", "server_rss_mb"]
    keys += ["caller_cpu_pct", "caller_max_send_lag_ms", "db_cpu_pct", "other_cpu_pct", "load_avg_1m", "ok"]
    body = [[(r | {"ok": "yes" if r["sustained"] else "no"}).get(k) for k in keys] for r in rows]
    best = max((r["calls"] for r in rows if r["sustained"]), default=0)
    return table(headers, body) + f"\nMax sustained level: {best} calls (target ≥ 300)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="50,100,150,200,250,300")
    parser.add_argument("--seconds", type=float, default=45)
    parser.add_argument("--workers", type=int, default=2, help="caller processes")
    parser.add_argument("--servers", type=int, default=1, help="server processes sharing one DB (scale-out)")
    parser.add_argument(
        "--server-workers", type=int, default=1, help="`voicex serve --workers N` behind each server's port"
    )
    parser.add_argument("--stagger-ms", type=float, default=20.0, help="between call starts (20: 50 new calls/s)")
    parser.add_argument("--keep-going", action="store_true", help="run every level even after one fails")
    parser.add_argument("--json")
    parser.add_argument("--smoke", action="store_true", help="2 and 4 calls for 8 s")
    args = parser.parse_args()
    levels, seconds = ([2, 4], 8.0) if args.smoke else ([int(x) for x in args.levels.split(",")], args.seconds)
    keep_going = args.keep_going or args.smoke
    rows = asyncio.run(
        run(levels, seconds, args.workers, args.servers, keep_going, args.stagger_ms, args.server_workers)
    )
    print(render(rows))
    best = max((r["calls"] for r in rows if r["sustained"]), default=0)
    loop = os.environ.get("VOICEX_EVENT_LOOP", "default")
    write_json(
        args.json,
        {
            "benchmark": "capacity",
            "servers": args.servers,
            "server_workers": args.server_workers,
            "event_loop": loop,
            "max_sustained": best,
            "levels": rows,
        },
    )


if __name__ == "__main__":
    main()
