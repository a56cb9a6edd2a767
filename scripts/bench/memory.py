"""Benchmark 4 — memory per call: server RSS growth per held-open call (scripted providers: no models loaded).

After a warm-up call (lazy imports and first-use allocations), RSS at 0 calls is the baseline; then N calls are
held open with the caller silent (``hold``) or talking in turns (``talk``); per call = (peak RSS − baseline) / N.
Target: ≤ 2 MB per call. ``python -m scripts.bench.memory [--levels 100,300] [--seconds 30] [--json out]``
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from scripts.bench.harness import Bench, rss_mb, table, write_json

TARGET_MB = 2.0


async def run(levels: list[int], modes: list[str], seconds: float, workers: int) -> list[dict[str, Any]]:
    rows = []
    async with Bench() as bench:
        await bench.run_calls(2, "talk", 6, workers=1)
        await asyncio.sleep(2)
        pid = bench.servers[0][0].pid
        for mode in modes:
            for n in levels:
                baseline = rss_mb(pid)
                stats = await bench.run_calls(n, mode, seconds, workers=workers)
                stats |= {"mode": mode, "baseline_rss_mb": baseline, "target_mb": TARGET_MB}
                stats["per_call_mb"] = (stats["server_rss_mb"] - baseline) / n
                rows.append(stats)
                print(f"  {mode} {n}: {stats['per_call_mb']:.2f} MB/call", flush=True)
                await asyncio.sleep(2)
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    headers = ["callers", "calls", "RSS at 0 calls MB", "peak RSS MB", "MB per call", "target", "completed"]
    keys = ["mode", "calls", "baseline_rss_mb", "server_rss_mb", "per_call_mb", "target", "ok"]
    extra = [{"target": f"≤ {TARGET_MB}", "ok": f"{r['completed']}/{r['calls']}"} for r in rows]
    body = [[(r | e)[k] for k in keys] for r, e in zip(rows, extra, strict=True)]
    return table(headers, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="100,300")
    parser.add_argument("--modes", default="hold,talk")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2, help="caller processes")
    parser.add_argument("--json")
    parser.add_argument("--smoke", action="store_true", help="5 silent calls for 6 s")
    args = parser.parse_args()
    levels = [5] if args.smoke else [int(x) for x in args.levels.split(",")]
    modes = ["hold"] if args.smoke else args.modes.split(",")
    rows = asyncio.run(run(levels, modes, 6.0 if args.smoke else args.seconds, args.workers))
    print(render(rows))
    write_json(args.json, {"benchmark": "memory", "levels": rows})


if __name__ == "__main__":
    main()
