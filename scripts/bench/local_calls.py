"""Benchmark 5 — the embedded offline stack in whole calls: caller speech end → first agent audio, per turn.

``scripts/bench_local.py`` times each stage on its own; this places real calls, so the stages compete as they
do on a line: a ``voicex serve`` process on the ``local`` providers (Whisper tiny.en, SmolLM2-135M, Piper; warmed
at start), the simulated Twilio caller in another process, the embedded DB in a third, all on this machine.
The caller measures from its last loud frame to the first audible agent sample; the call record says where the
time went (end-of-turn delay, STT final, LLM first token and first sentence, TTS first audio, and the server's
own speech end → first audio out). Calls run one at a time, ``--calls`` per setting, with the LLM's temperature
at 0 so every setting hears the same replies (SmolLM2's first sentence length is the biggest variable).

    python -m scripts.bench.local_calls [--calls 4] [--seconds 30] [--silence-timeout-ms 300]
        [--preemptive off,on] [--turns] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bson import ObjectId
from pymongo import MongoClient

from scripts.bench.harness import Bench, table, write_json
from scripts.twilio_sim.results import percentile

STAGES = (  # call-record turn fields, in the order they happen
    ("end_of_turn_delay", "EOT delay"),
    ("stt_final_latency", "STT final"),
    ("llm_ttft", "LLM 1st token"),
    ("llm_first_sentence", "LLM 1st sentence"),
    ("tts_ttfb", "TTS 1st audio"),
    ("e2e_latency", "server e2e"),
)
TARGET_MS = 800


def records(uri: str, call_ids: list[str], timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    """The finalized call records (a call is finalized a moment after the caller hangs up)."""
    ids = [ObjectId(i) for i in call_ids if i]
    deadline = time.monotonic() + timeout
    with MongoClient(uri) as client:
        calls = client["voicex"]["calls"]
        while True:
            found = {str(c["_id"]): c for c in calls.find({"_id": {"$in": ids}})}
            if all(c.get("status") != "active" for c in found.values()) and len(found) == len(ids):
                return found
            if time.monotonic() > deadline:
                return found
            time.sleep(0.3)


def turn_rows(calls: list[dict[str, Any]], found: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per answered caller turn: the caller's measure beside the server's breakdown of it."""
    rows = []
    for call in calls:
        record = found.get(call.get("call_id") or "", {})
        server_turns = record.get("turns", [])
        replies = [e["text"] for e in record.get("transcript", []) if e["role"] == "assistant"][1:]  # not the greeting
        for i, latency in enumerate(call["latencies_ms"]):
            server = server_turns[i] if i < len(server_turns) else {}
            row = {"caller_ms": latency} | {key: server.get(key) for key, _ in STAGES}
            row["reply"] = replies[i] if i < len(replies) else ""
            row["preemptive"] = server.get("preemptive")
            row["gap_ms"] = None if server.get("e2e_latency") is None else latency - server["e2e_latency"]
            rows.append(row)
    return rows


def median(values: list[float | None]) -> float | None:
    """The shared percentile (linear interpolation, as every benchmark here) over the turns that had the step."""
    return percentile([v for v in values if v is not None], 50)


async def run(
    calls: int, seconds: float, silence_timeout: int, modes: list[str], workers: int = 1
) -> list[dict[str, Any]]:
    out = []
    async with Bench(provider="local") as bench:
        # the turn ends after silence_timeout ms of caller silence; STT endpointing stays at its default (300 ms)
        base = {"silenceTimeoutMs": silence_timeout, "idleTimeoutMs": 60000, "maxCallDurationSec": 3600}
        await bench.set_thresholds(**base, preemptiveGeneration="off")
        await bench.update_agent({"llmConfig.temperature": 0.0})  # greedy: the same replies for every setting
        await bench.run_calls(1, "talk", 5, workers=1)  # the models finish warming: not measured
        for mode in modes:
            await bench.set_thresholds(preemptiveGeneration=mode)
            rows: list[dict[str, Any]] = []
            completed = 0
            for _ in range(calls):
                stats = await bench.run_calls(1, "talk", seconds, workers=workers)
                completed += stats["completed"]
                rows += turn_rows(bench.last_calls, records(bench.uri, [c.get("call_id") for c in bench.last_calls]))
                print(f"  preemptive {mode}: {len(rows)} turns so far", flush=True)
            caller = [r["caller_ms"] for r in rows]
            summary = {
                "preemptive": mode,
                "silence_timeout_ms": silence_timeout,
                "calls": calls,
                "completed": completed,
                "turns": len(rows),
                "caller_p50_ms": median(caller),
                "caller_p95_ms": sorted(caller)[max(0, round(0.95 * len(caller)) - 1)] if caller else None,
                "gap_p50_ms": median([r["gap_ms"] for r in rows]),
                "stages_p50_ms": {key: median([r[key] for r in rows]) for key, _ in STAGES},
                "rows": rows,
            }
            out.append(summary)
    return out


def render(results: list[dict[str, Any]], show_turns: bool) -> str:
    headers = ["preemptive", "turns", "caller p50", "caller p95", "target p50"]
    headers += [label + " p50" for _, label in STAGES] + ["caller − server p50", "completed"]
    body = [
        [r["preemptive"], r["turns"], r["caller_p50_ms"], r["caller_p95_ms"], TARGET_MS]
        + [r["stages_p50_ms"][key] for key, _ in STAGES]
        + [r["gap_p50_ms"], f"{r['completed']}/{r['calls']}"]
        for r in results
    ]
    text = f"Embedded stack, whole calls (silenceTimeoutMs {results[0]['silence_timeout_ms']}; ms)\n"
    text += table(headers, body)
    if show_turns:
        headers = ["preemptive", "caller"] + [label for _, label in STAGES] + ["caller − server", "held answer used"]
        headers += ["reply (start)"]
        body = [
            [r["preemptive"], t["caller_ms"]]
            + [t[key] for key, _ in STAGES]
            + [t["gap_ms"], t["preemptive"], t["reply"][:60]]
            for r in results
            for t in r["rows"]
        ]
        text += "\n\nPer turn (ms)\n" + table(headers, body)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4, help="calls per setting, one at a time")
    parser.add_argument("--seconds", type=float, default=30, help="each call talks in turns this long")
    parser.add_argument("--silence-timeout-ms", type=int, default=300, help="caller silence that ends a turn")
    parser.add_argument("--preemptive", default="off,on", help="preemptiveGeneration settings to compare")
    parser.add_argument("--turns", action="store_true", help="also print every turn")
    parser.add_argument("--smoke", action="store_true", help="one short call per setting (the test suite's check)")
    parser.add_argument("--json")
    args = parser.parse_args()
    calls, seconds = (1, 8.0) if args.smoke else (args.calls, args.seconds)
    modes = [m for m in args.preemptive.split(",") if m]
    results = asyncio.run(run(calls, seconds, args.silence_timeout_ms, modes))
    print(render(results, args.turns))
    write_json(args.json, {"benchmark": "local_calls", "results": results})


if __name__ == "__main__":
    main()
