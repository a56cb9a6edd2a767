"""Benchmark 3 — barge-in: reaction (speech onset → ``clear``) per sensitivity, and the reply after the interruption.

Callers talk over each agent reply 300 ms after its sound starts. The engine's rule is "barge in after
minSpeechMs of caller speech" (config/turn_taking.yaml: high 20, medium 60, low 600 ms + 2 real words), so the
reaction can never be shorter than minSpeechMs; the column "over rule" is the part Voicex itself adds.
Targets: p95 ≤ 150 ms at high, ≤ 250 ms at medium. ``python -m scripts.bench.barge_in [--calls 10] [--json out]``

Each call alternates a plain turn (the agent silent) and an interruption of the agent's reply to it, so the voice-to-
voice latency of both, minus the agent's silenceTimeoutMs, sits side by side: "normal reply − threshold" and
"reply after barge-in − threshold" should match (Pipecat: equal). ``--reply-smoke`` (~1 min) measures them where they
once parted: silenceTimeoutMs 200, a line noise floor of −36 dBFS (the scripted recognizer hears it as sound),
preemptive generation on and off. "unanswered" counts interruptions after which the agent made no sound at all.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import yaml

from scripts.bench.harness import ROOT, SILENCE_TIMEOUT_MS, Bench, pcts, table, write_json

TARGETS_MS = {"high": 150, "medium": 250}
REPLY_SMOKE = {"silence_ms": 200, "noise_dbfs": -36.0, "preemptive": ["on", "off"]}


def rule_ms() -> dict[str, int]:
    data = yaml.safe_load(Path(ROOT / "config" / "turn_taking.yaml").read_text())
    return {name: int(rule["minSpeechMs"]) for name, rule in data["sensitivity"].items()}


def reply_stats(calls: list[dict[str, Any]], silence_ms: int) -> dict[str, Any]:
    """Voice-to-voice minus the threshold, for plain turns and for interruptions, over every call of a level."""
    normal = [v - silence_ms for c in calls for v in c.get("normal_reply_ms", [])]
    barge = [v - silence_ms for c in calls for v in c.get("barge_reply_ms", [])]
    return {
        "normal_reply_over_ms": pcts(normal),
        "barge_reply_over_ms": pcts(barge),
        "unanswered_barges": sum(c.get("unanswered_barges", 0) for c in calls),
    }


async def run(
    sensitivities: list[str],
    calls: int,
    seconds: float,
    workers: int,
    *,
    silence_ms: int = SILENCE_TIMEOUT_MS,
    noise_dbfs: float | None = None,
    preemptive: list[str] | None = None,
) -> list[dict[str, Any]]:
    rules, rows = rule_ms(), []
    async with Bench() as bench:
        for level in sensitivities:
            for pre in preemptive or ["on"]:
                await bench.set_thresholds(
                    interruptionSensitivity=level, silenceTimeoutMs=silence_ms, preemptiveGeneration=pre
                )
                stats = await bench.run_calls(
                    calls, "barge", seconds, workers=workers, barge_after_ms=300, silence_timeout_ms=silence_ms,
                    noise_dbfs=noise_dbfs,
                )  # fmt: skip
                stats |= {"sensitivity": level, "min_speech_ms": rules[level], "target_p95_ms": TARGETS_MS.get(level)}
                stats |= {"silence_timeout_ms": silence_ms, "noise_dbfs": noise_dbfs, "preemptive": pre}
                stats |= reply_stats(bench.last_calls, silence_ms)
                p50, p95 = stats["barge_in_ms"]["p50"], stats["barge_in_ms"]["p95"]
                stats["over_rule_p50_ms"] = None if p50 is None else p50 - rules[level]
                stats["over_rule_p95_ms"] = None if p95 is None else p95 - rules[level]
                rows.append(stats)
                after = stats["barge_reply_over_ms"]["p50"]
                print(f"  {level} (preemptive {pre}): p95 {p95}, reply after barge-in − threshold {after}", flush=True)
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    headers = ["sensitivity", "minSpeechMs", "barge-ins", "p50 ms", "p95 ms", "target p95", "over rule p50"]
    headers += ["over rule p95", "completed"]
    keys = ["sensitivity", "min_speech_ms", "interrupted_turns", "p50", "p95", "target_p95_ms", "over_rule_p50_ms"]
    keys += ["over_rule_p95_ms", "ok"]
    body = [[(r | r["barge_in_ms"] | {"ok": f"{r['completed']}/{r['calls']}"})[k] for k in keys] for r in rows]
    reaction = table(headers, body)
    headers = ["sensitivity", "silenceTimeoutMs", "line noise dBFS", "preemptive", "normal reply − threshold p50"]
    headers += ["p95", "reply after barge-in − threshold p50", "p95", "unanswered"]
    body = [_reply_row(r) for r in rows]
    return f"{reaction}\n\nThe reply to an interruption beside the reply to a plain turn (ms)\n{table(headers, body)}"


def _reply_row(r: dict[str, Any]) -> list[Any]:
    normal, barge = r["normal_reply_over_ms"], r["barge_reply_over_ms"]
    noise = "none" if r["noise_dbfs"] is None else r["noise_dbfs"]
    head = [r["sensitivity"], r["silence_timeout_ms"], noise, r["preemptive"]]
    return [*head, normal["p50"], normal["p95"], barge["p50"], barge["p95"], r["unanswered_barges"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensitivities", default="high,medium,low")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--workers", type=int, default=1, help="caller processes")
    parser.add_argument("--silence-timeout-ms", type=int, default=SILENCE_TIMEOUT_MS, help="the agent's threshold")
    parser.add_argument("--noise-dbfs", type=float, help="the callers' line noise floor (default: none)")
    parser.add_argument("--preemptive", default="on", help="preemptiveGeneration values to run: on, off or on,off")
    parser.add_argument("--json")
    parser.add_argument("--smoke", action="store_true", help="1 call for 8 s at high sensitivity")
    parser.add_argument(
        "--reply-smoke", action="store_true", help="medium, 1 call for 20 s per preemptive value, at silenceTimeoutMs"
        " 200 with a −36 dBFS line noise floor (~1 min)"
    )  # fmt: skip
    args = parser.parse_args()
    calls, seconds = (args.calls, args.seconds)
    options: dict[str, Any] = {
        "silence_ms": args.silence_timeout_ms, "noise_dbfs": args.noise_dbfs, "preemptive": args.preemptive.split(",")
    }  # fmt: skip
    sensitivities = args.sensitivities.split(",")
    if args.smoke:
        calls, seconds, sensitivities = 1, 8.0, ["high"]
    if args.reply_smoke:
        calls, seconds, sensitivities, options = 1, 20.0, ["medium"], dict(REPLY_SMOKE)
    rows = asyncio.run(run(sensitivities, calls, seconds, args.workers, **options))
    print(render(rows))
    write_json(args.json, {"benchmark": "barge_in", "levels": rows})


if __name__ == "__main__":
    main()
