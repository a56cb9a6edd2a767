"""Play part of the labelled turn-taking set through the whole server: real calls, judged by what the caller hears.

score.py drives the VAD and TurnDetector offline; this places a simulated Twilio call per scenario against a real
``voicex serve`` process (scripts/bench/harness.py: embedded DB, scripted zero-latency providers), streams the
scenario's WAV in real time from the call's first frame, and judges the call from the caller's side only (agent
sound as Twilio's buffer plays it, ``clear`` messages). scripts/turn_quality/server_calls.py has the details.

    agent silent (turn, complete, incomplete, numbers, floor_onset, burst_listening): answered = agent sound that
        starts after the true end of the last word; "answer − threshold" = that delay minus silenceTimeoutMs;
        premature = an answer starting inside a labelled pause (or up to 200 ms after it; "< threshold": in a pause
        shorter than silenceTimeoutMs) or inside speech; early = an answer before the first word; false turn = any
        answer in a scenario without words
    agent speaking (backchannel, burst, interruption, *_level, floor_onset with the agent talking): the agent's
        long greeting plays from the call's start, so the labelled sound lands ~3 s into it ("into agent");
        audible stop = a ``clear`` from the sound's onset to 500 ms after its end; reaction = onset → first clear;
        after it the agent resumed (its greeting still playing at hang-up) or gave up its turn (the scripted reply,
        or nothing); quiet = clear → next agent sound; reply − threshold (interruptions) = the interruption's end →
        the reply, minus silenceTimeoutMs; other clears = clears outside that window (floor_onset, no words: the
        window is the floor, so any clear there is an audible stop and a false turn)

Usage:
    python -m scripts.turn_quality.server_replay [--set data/turn_quality]
        [--kinds turn,backchannel,burst,interruption,floor_onset,incomplete] [--backgrounds quiet,noisy,babble,...]
        [--limit 4] [--calls 4] [--silence-timeout-ms 700] [--sensitivity medium] [--vad adaptive]
        [--turn-detection silence] [--knob speechStartMs=80] [--json out.json]

``--limit`` is per kind, background (the manifest's ``variant``) and agent state (floor_onset has both), spread
evenly over each group (pauses, voices, SNRs). Thresholds default to config/turn_taking.yaml (the product's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp

from scripts.bench.harness import Bench, fmt
from scripts.turn_quality.metrics import percentile
from scripts.turn_quality.score import load_config, resolve
from scripts.turn_quality.server_calls import Plan, create_agents, plan, play
from scripts.twilio_sim import CallConfig
from voicex.platform.settings import load_settings
from voicex.server.demo import DEMO_ACCOUNT_SID
from voicex.server.runtime import Runtime

DEFAULT_KINDS = "turn,backchannel,burst,interruption,floor_onset,incomplete"
HOLD = {"idleTimeoutMs": 60000, "maxCallDurationSec": 3600}  # no reprompt, no goodbye inside a scenario


def select(
    scenarios: list[dict[str, Any]], kinds: list[str], backgrounds: list[str] | None, limit: int | None
) -> list[dict[str, Any]]:
    """Up to ``limit`` scenarios per (kind, variant, agent speaking or not), spread over the group: a diagonal
    through the manifest's nesting (pair x pause x voice, background x SNR x sentence...), so that one run sees
    pauses, voices and SNRs."""
    groups: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
    for scenario in scenarios:
        if scenario["kind"] in kinds and (backgrounds is None or scenario["variant"] in backgrounds):
            key = (scenario["kind"], scenario["variant"], scenario["agent"] is not None)  # floor_onset has both
            groups.setdefault(key, []).append(scenario)
    chosen = []
    for items in groups.values():
        n = len(items) if limit is None else min(limit, len(items))
        step = len(items) // max(1, n)
        picks = [min(len(items) - 1, i * len(items) // n + i * (step // n)) for i in range(n)]
        chosen += [items[i] for i in dict.fromkeys(picks)]
    return chosen


def thresholds(args: argparse.Namespace) -> dict[str, Any]:
    """The agents' thresholds: every knob's default, the CLI's choices over them, and no idle reprompt."""
    values: dict[str, Any] = dict(load_config().defaults())
    for knob in args.knob:
        name, _, raw = knob.partition("=")
        values[name] = int(raw) if raw.lstrip("-").isdigit() else raw
    chosen = {
        "silenceTimeoutMs": args.silence_timeout_ms,
        "interruptionSensitivity": args.sensitivity,
        "vad": args.vad,
        "turnDetection": args.turn_detection,
    }
    values |= {k: v for k, v in chosen.items() if v is not None} | HOLD
    resolve(load_config(), values, {})  # refuses an unknown knob or choice here rather than in the server
    return values


async def replay(
    set_dir: Path, chosen: list[dict[str, Any]], values: dict[str, Any], concurrency: int
) -> list[dict[str, Any]]:
    """Start the server, give each scenario its agent, play the calls ``concurrency`` at a time."""
    settings = resolve(load_config(), values, {})
    plans = [plan(s, set_dir, settings.silence_timeout_ms, settings.endpointing_ms) for s in chosen]
    bench = Bench()
    try:
        async with bench:
            runtime = await Runtime.start(
                load_settings(data_dir=bench.tmp / "data", mongodb_uri=bench.uri, enable_scripted_providers=True)
            )
            try:
                await create_agents(runtime.services.db, plans, values, str(int(time.time())))
            finally:
                await runtime.close()
            url = bench.servers[0][1]
            gate = asyncio.Semaphore(max(1, concurrency))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

                async def one(item: Plan) -> dict[str, Any]:
                    config = CallConfig(
                        base_url=url, api_key=bench.api_key, auth_token=bench.token, agent_id=item.agent_id,
                        account_sid=DEMO_ACCOUNT_SID, timeout_s=30.0,
                    )  # fmt: skip
                    async with gate:
                        return describe(item, await play(config, item, http), settings.silence_timeout_ms)

                return list(await asyncio.gather(*(one(item) for item in plans)))
    finally:
        shutil.rmtree(bench.tmp, ignore_errors=True)  # the embedded DB's files (the Bench leaves them)


def describe(item: Plan, measured: dict[str, Any], silence_ms: int) -> dict[str, Any]:
    s = item.scenario
    row = {key: s[key] for key in ("name", "kind", "variant", "background", "snr_db", "duration_ms", "labels")}
    row |= {"agent_speaks": item.agent_speaks, "played_ms": item.stop_ms} | measured
    if row.get("answer_delay_ms") is not None:
        row["answer_over_ms"] = row["answer_delay_ms"] - silence_ms
    if row.get("reply_ms") is not None and not item.stt_latency_ms:  # else the reply waited for a delayed final
        row["reply_over_ms"] = row["reply_ms"] - silence_ms
    return row


def _groups(row: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Table rows a scenario counts in: its kind and background; noisy turns also per SNR over all backgrounds."""
    snr = "" if row["snr_db"] is None else f"{row['snr_db']:g}"
    groups = [(row["kind"], row["variant"], snr)]
    if row["kind"] == "turn" and row["variant"] != "quiet" and snr:
        groups.append(("turn", "all noisy", snr))
    return groups


def _pct(values: Iterable[float | None], q: float) -> float | None:
    return percentile([int(v) for v in values if v is not None], q)


def summarize(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per table (agent silent / agent speaking) and row: counts and p50/p95."""
    tables: dict[str, dict[tuple[str, str, str], list[dict[str, Any]]]] = {"listening": {}, "speaking": {}}
    for row in results:
        table = tables["speaking" if row["agent_speaks"] else "listening"]
        for key in _groups(row):
            table.setdefault(key, []).append(row)
    out: dict[str, list[dict[str, Any]]] = {"listening": [], "speaking": []}
    for name, table in tables.items():
        for (kind, background, snr), rows in sorted(table.items(), key=lambda item: _order(item[0])):
            ok = [r for r in rows if r["outcome"] == "completed"]
            summary: dict[str, Any] = {"kind": kind, "background": background, "snr_db": snr or None}
            summary |= {"scenarios": len(rows), "failed_calls": len(rows) - len(ok)}
            summary |= _listening(ok) if name == "listening" else _speaking(ok)
            summary["stt_deaf"] = sum(bool(r.get("stt_deaf")) for r in ok)
            summary["stt_early_words"] = sum(bool(r.get("stt_early_words")) for r in ok)
            out[name].append(summary)
    return out


def _order(key: tuple[str, str, str]) -> tuple[str, int, str, float]:
    kind, background, snr = key
    return kind, background == "all noisy", background, float(snr or -1)


def _listening(rows: list[dict[str, Any]]) -> dict[str, Any]:
    turns = [r for r in rows if "answered" in r]
    over = [r.get("answer_over_ms") for r in turns]
    return {
        "turns": len(turns),
        "answered": sum(r["answered"] for r in turns),
        "premature_in_pause": sum(r["premature_in_pause"] for r in turns),
        "premature_in_short_pause": sum(r["premature_in_short_pause"] for r in turns),
        "premature_in_speech": sum(r["premature_in_speech"] for r in turns),
        "early_answers": sum(r["early_answers"] for r in turns),
        "answer_over_p50_ms": _pct(over, 50),
        "answer_over_p95_ms": _pct(over, 95),
        "false_turns": sum(bool(r.get("false_turn")) for r in rows),
        "clears": sum(r["clears"] for r in rows),
    }


def _speaking(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "agent_playing_at_event": sum(bool(r["agent_playing_at_event"]) for r in rows),
        "event_into_agent_p50_ms": _pct((r["event_into_agent_ms"] for r in rows), 50),
        "audible_stops": sum(r["audible_stops"] > 0 for r in rows),
        "resumed": sum(r["after_stop"] == "resumed" for r in rows),
        "gave_up": sum(r["after_stop"] in ("replied", "silent") for r in rows),
        "reaction_p50_ms": _pct((r["reaction_ms"] for r in rows), 50),
        "reaction_p95_ms": _pct((r["reaction_ms"] for r in rows), 95),
        "quiet_after_stop_p50_ms": _pct((r["quiet_after_stop_ms"] for r in rows), 50),
        "quiet_after_stop_p95_ms": _pct((r["quiet_after_stop_ms"] for r in rows), 95),
        "reply_over_p50_ms": _pct((r.get("reply_over_ms") for r in rows), 50),
        "unanswered_interruptions": sum(r["kind"] == "interruption" and r["after_stop"] != "replied" for r in rows),
        "other_clears": sum(r["other_clears"] for r in rows),
        "false_turns": sum(bool(r.get("false_turn")) for r in rows),
    }


Column = tuple[str, Callable[[dict[str, Any]], Any]]


def _columns(silence_ms: int) -> dict[str, list[Column]]:
    n: Column = ("n", lambda r: r["scenarios"] - r["failed_calls"])
    listening: list[Column] = [
        ("kind", lambda r: r["kind"]),
        ("background", lambda r: r["background"]),
        ("SNR", lambda r: r["snr_db"]),
        n,
        ("answered", lambda r: f"{r['answered']}/{r['turns']}"),
        ("premature in pause", lambda r: r["premature_in_pause"]),
        ("of which < threshold", lambda r: r["premature_in_short_pause"]),
        ("in speech", lambda r: r["premature_in_speech"]),
        ("early", lambda r: r["early_answers"]),
        (f"answer − {silence_ms} p50", lambda r: r["answer_over_p50_ms"]),
        ("p95", lambda r: r["answer_over_p95_ms"]),
        ("false turns", lambda r: r["false_turns"]),
        ("clears", lambda r: r["clears"]),
        ("STT deaf/early", lambda r: f"{r['stt_deaf']}/{r['stt_early_words']}"),
    ]
    speaking: list[Column] = [
        ("kind", lambda r: r["kind"]),
        ("background", lambda r: r["background"]),
        n,
        ("agent playing", lambda r: r["agent_playing_at_event"]),
        ("into agent p50", lambda r: r["event_into_agent_p50_ms"]),
        ("audible stops", lambda r: r["audible_stops"]),
        ("resumed", lambda r: r["resumed"]),
        ("gave up", lambda r: r["gave_up"]),
        ("reaction p50", lambda r: r["reaction_p50_ms"]),
        ("p95", lambda r: r["reaction_p95_ms"]),
        ("quiet after stop p50", lambda r: r["quiet_after_stop_p50_ms"]),
        ("p95", lambda r: r["quiet_after_stop_p95_ms"]),
        (f"reply − {silence_ms} p50", lambda r: r["reply_over_p50_ms"]),
        ("unanswered", lambda r: r["unanswered_interruptions"]),
        ("other clears", lambda r: r["other_clears"]),
        ("STT deaf", lambda r: r["stt_deaf"]),
    ]
    return {"listening": listening, "speaking": speaking}


def render(tables: dict[str, list[dict[str, Any]]], silence_ms: int) -> str:
    """Both tables as Markdown."""
    titles = {"listening": "Agent silent (caller turns)", "speaking": "Agent speaking"}
    parts = []
    for name, columns in _columns(silence_ms).items():
        lines = ["| " + " | ".join(head for head, _ in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        lines += ["| " + " | ".join(fmt(get(r)) for _, get in columns) + " |" for r in tables[name]]
        parts.append(titles[name] + "\n" + "\n".join(lines))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=Path("data/turn_quality"), help="make_set's output directory")
    parser.add_argument("--kinds", default=DEFAULT_KINDS, help="comma-separated scenario kinds")
    parser.add_argument("--backgrounds", help="comma-separated variants (quiet, noisy, babble, music, cafe, car, ...)")
    parser.add_argument("--limit", type=int, default=4, help="scenarios per kind and background (0: all)")
    parser.add_argument("--calls", type=int, default=4, help="calls at once")
    parser.add_argument("--silence-timeout-ms", type=int, help="the agents' silenceTimeoutMs (default: the table's)")
    parser.add_argument("--sensitivity", choices=("low", "medium", "high"), help="interruptionSensitivity")
    parser.add_argument("--vad", help="adaptive, silero or webrtc (default: the table's)")
    parser.add_argument("--turn-detection", help="silence or model (default: the table's)")
    parser.add_argument("--knob", action="append", default=[], help="any threshold as name=value; repeatable")
    parser.add_argument("--json", type=Path, help="write settings, per-scenario results and the tables here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    values = thresholds(args)
    manifest = json.loads((args.set / "manifest.json").read_text())
    backgrounds = args.backgrounds.split(",") if args.backgrounds else None
    chosen = select(manifest["scenarios"], args.kinds.split(","), backgrounds, args.limit or None)
    if not chosen:
        parser.error("no scenario matches --kinds/--backgrounds")
    print(f"{len(chosen)} scenarios, {args.calls} calls at once", flush=True)
    results = asyncio.run(replay(args.set, chosen, values, args.calls))
    tables = summarize(results)
    elapsed = time.perf_counter() - started
    failed = [f"{r['name']}: {r['error']}" for r in results if r["outcome"] != "completed"]
    print(render(tables, values["silenceTimeoutMs"]))
    lag = max((r["max_send_lag_ms"] for r in results), default=0.0)
    print(f"\n{len(results)} calls in {elapsed:.0f} s, {len(failed)} failed; caller max send lag {lag:.0f} ms")
    for line in failed[:10]:
        print(f"  failed: {line}")
    if args.json:
        meta = {"set": str(args.set), "thresholds": values, "calls": args.calls, "limit": args.limit}
        meta |= {"kinds": args.kinds, "backgrounds": backgrounds, "seconds": round(elapsed, 1)}
        payload = {"meta": meta, "tables": tables, "scenarios": results}
        args.json.write_text(json.dumps(payload, indent=1, default=str))


if __name__ == "__main__":
    main()
