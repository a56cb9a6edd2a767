"""Score the real VAD + TurnDetector on the labelled set built by make_set.py, per VAD and sensitivity.

Each scenario's audio goes frame by frame (20 ms) through a fresh VAD (``pipelines.vad.make_vad``) and a
``TurnDetector`` with the settings of config/turn_taking.yaml plus the CLI overrides, exactly as the call
session drives them: labelled transcripts are fed at their times, the agent's playout starts and finishes at
its labelled times, pauses on BargeIn, gives up its turn on InterruptionConfirmed and resumes on
FalseInterruption (the rest of its audio plays later by the length of the pause).

Usage:
    python -m scripts.turn_quality.score [--set data/turn_quality] [--vad webrtc|silero|all]
        [--aggressiveness 0,1,2,3] [--sensitivity low,medium,high] [--silence-timeout-ms 500[,700]]
        [--knob speechGapToleranceMs=80,120] [--rule medium=60,100[:WORDS]] [--tail-allowance-ms 40]
        [--rows quiet,noisy,espeak,festival,all] [--json out.json]

Comma-separated alternatives are swept (every combination), reusing one VAD pass. Results: docs/turn-taking.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from pipelines.audio import FRAME_BYTES_PCM16, FRAME_MS, frame_rms
from pipelines.turn_detector import BargeIn, Event, FalseInterruption, InterruptionConfirmed, TurnDetector
from pipelines.turn_settings import TurnSettings
from pipelines.vad import make_vad
from scripts.turn_quality.metrics import Outcome, check_targets, judge, summarize
from scripts.turn_quality.synth import read_wav
from voicex.catalog.config import TurnTakingFile

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "turn_taking.yaml"
SENSITIVITIES = ("low", "medium", "high")
VARIANTS = ("quiet", "noisy", "all")  # rows per background; "espeak"/"festival" rows keep one synthesizer
GROUPS = (*VARIANTS, "espeak", "festival")


def load_config(path: Path = CONFIG) -> TurnTakingFile:
    """The defaults table, validated like the server validates it (ranges, choices)."""
    return TurnTakingFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def resolve(config: TurnTakingFile, overrides: dict[str, Any], rules: dict[str, dict[str, int]]) -> TurnSettings:
    sensitivity = {name: rule.model_dump() for name, rule in config.sensitivity.items()}
    for name, rule in rules.items():
        sensitivity[name] = {**sensitivity[name], **rule}
    return TurnSettings.resolve(config.defaults(), sensitivity, config.backchannels, overrides)


def vad_decisions(pcm: bytes, vad_name: str, aggressiveness: int, threshold: float) -> list[bool]:
    """One decision per whole 20 ms frame from a fresh VAD, as a call would have."""
    vad = make_vad(vad_name, aggressiveness, threshold=threshold)
    count = len(pcm) // FRAME_BYTES_PCM16
    return [vad.is_speech(pcm[i * FRAME_BYTES_PCM16 : (i + 1) * FRAME_BYTES_PCM16]) for i in range(count)]


def frame_levels(pcm: bytes) -> list[float]:
    """Each whole frame's RMS, as the session hands it to the detector."""
    count = len(pcm) // FRAME_BYTES_PCM16
    return [float(frame_rms(pcm[i * FRAME_BYTES_PCM16 : (i + 1) * FRAME_BYTES_PCM16])) for i in range(count)]


def simulate(
    scenario: dict[str, Any], decisions: list[bool], settings: TurnSettings, levels: list[float] | None = None
) -> list[Event]:
    """Drive one TurnDetector through the scenario like the call session does; returns every event."""
    start = scenario["warmup_ms"]
    agent = scenario["agent"]
    detector = TurnDetector(settings, start, wait_for_caller=agent is None)
    transcripts = sorted(scenario["transcripts"], key=lambda t: t["at_ms"])
    events: list[Event] = []
    playing = started = given_up = False
    paused_at: int | None = None
    agent_end = agent["end_ms"] if agent is not None else 0
    next_transcript = 0

    def handle(produced: list[Event], now: int) -> None:
        nonlocal playing, paused_at, given_up, agent_end
        for event in produced:
            events.append(event)
            if isinstance(event, BargeIn):
                playing, paused_at = False, now  # paused; the detector gets no agent_finished, as in the session
            elif isinstance(event, InterruptionConfirmed):
                given_up, paused_at = True, None
            elif isinstance(event, FalseInterruption) and paused_at is not None and not given_up:
                agent_end += now - paused_at  # the session carries on where the pause stopped
                paused_at = None
                detector.agent_started(now)
                playing = True

    for index in range(start // FRAME_MS, len(decisions)):
        now = index * FRAME_MS
        if agent is not None and not started and now >= agent["onset_ms"]:
            detector.agent_started(now)
            playing = started = True
        if agent is not None and playing and now >= agent_end:
            detector.agent_finished(now)
            playing = False
        while next_transcript < len(transcripts) and transcripts[next_transcript]["at_ms"] <= now:
            item = transcripts[next_transcript]
            next_transcript += 1
            handle(detector.on_transcript(item["text"], item["final"], now), now)
        handle(detector.on_frame(now, decisions[index], levels[index] if levels else None), now)
    return events


def _vad_configs(vads: Iterable[str], aggressiveness: list[int]) -> list[tuple[str, int]]:
    configs: list[tuple[str, int]] = []
    for vad in vads:
        configs += [(vad, a) for a in aggressiveness] if vad == "webrtc" else [(vad, 0)]
    return configs


def vad_label(vad: str, aggressiveness: int) -> str:
    return f"webrtc/{aggressiveness}" if vad == "webrtc" else vad


Combo = tuple[dict[str, Any], dict[str, dict[str, int]]]  # knob overrides, sensitivity-rule overrides


def score(
    set_dir: Path,
    vad_configs: list[tuple[str, int]],
    sensitivities: list[str],
    combos: list[Combo],
    threshold: float = 0.5,
    tail_allowance_ms: int = 0,
) -> dict[str, Any]:
    """Every (VAD, settings combination, sensitivity) result: its summary per group and the targets it meets.

    Each VAD runs once over the set; every combination of settings reuses its decisions. ``tail_allowance_ms`` is a
    what-if for compensating the VAD's tail: the detector waits ``silenceTimeoutMs`` minus it, while premature ends
    and delays are still judged against ``silenceTimeoutMs``.
    """
    manifest = json.loads((set_dir / "manifest.json").read_text())
    scenarios = manifest["scenarios"]
    audio = {s["name"]: read_wav(set_dir / s["file"]) for s in scenarios}
    levels = {name: frame_levels(pcm) for name, pcm in audio.items()}
    config = load_config()
    results: list[dict[str, Any]] = []
    for vad, aggressiveness in vad_configs:
        started = time.perf_counter()
        decisions = {name: vad_decisions(pcm, vad, aggressiveness, threshold) for name, pcm in audio.items()}
        vad_seconds = time.perf_counter() - started
        done: set[tuple[str, str]] = set()
        for overrides, rules in combos:
            for sensitivity in sensitivities:
                if (sensitivity, _describe(overrides, rules, sensitivity)) in done:
                    continue  # another combination differs only in another level's rule
                done.add((sensitivity, _describe(overrides, rules, sensitivity)))
                settings = resolve(config, {**overrides, "interruptionSensitivity": sensitivity}, rules)
                silence_timeout = settings.silence_timeout_ms  # the caller silence that ends a turn
                if tail_allowance_ms:
                    settings = replace(settings, silence_timeout_ms=silence_timeout - tail_allowance_ms)
                outcomes = [
                    judge(s, simulate(s, decisions[s["name"]], settings, levels[s["name"]]), silence_timeout)
                    for s in scenarios
                ]
                groups = {g: summarize([o for o in outcomes if g in ("all", o.variant, o.engine)]) for g in GROUPS}
                results.append(
                    {
                        "vad": vad_label(vad, aggressiveness),
                        "sensitivity": sensitivity,
                        "settings": _describe(overrides, rules, sensitivity),
                        "silence_timeout_ms": silence_timeout,
                        "tail_allowance_ms": tail_allowance_ms,
                        "barge_in_rule": {
                            "minSpeechMs": settings.barge_in.min_speech_ms,
                            "minWords": settings.barge_in.min_words,
                        },
                        "speech_gap_ms": settings.speech_gap_ms,
                        "speech_start_ms": settings.speech_start_ms,
                        "summary": groups,
                        "targets": check_targets(groups["all"], sensitivity, silence_timeout),
                        "failures": _failures(outcomes),
                        "vad_seconds": round(vad_seconds, 2),
                    }
                )
    return {"meta": {**manifest["meta"], "scenarios": len(scenarios), "machine": machine()}, "results": results}


def _describe(overrides: dict[str, Any], rules: dict[str, dict[str, int]], sensitivity: str) -> str:
    """The overrides that apply to one row, e.g. ``minSpeechMs=200 speechGapToleranceMs=120`` ("" for none)."""
    parts = [f"{name}={value}" for name, value in overrides.items()]
    parts += [f"{name}={value}" for name, value in rules.get(sensitivity, {}).items()]
    return " ".join(parts)


def _failures(outcomes: list[Outcome]) -> dict[str, list[str]]:
    """Names of the scenarios behind each bad count, to listen to."""
    return {
        "premature_eot": [o.name for o in outcomes if o.premature_eot],
        "missed_eot": [o.name for o in outcomes if o.kind == "turn" and o.missed_eot],
        "missed_barge_in": [o.name for o in outcomes if o.missed_barge_in],
        "false_barge_in": [o.name for o in outcomes if o.kind != "interruption" and o.barge_in],
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "os": platform.platform()}


def _fmt(value: float | None, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.0f}{suffix}"


def table(report: dict[str, Any], groups: Iterable[str] = VARIANTS) -> str:
    """A Markdown table: one row per VAD, sensitivity and group (background variant or synthesizer)."""
    head = (
        "| VAD | sens. | settings | rows | premature EOT | EOT delay p50/p95 ms | missed EOT | missed barge-in "
        "| false barge-in bc / noise / all | paused bc / noise | pause p50/p95 ms | reaction p50/p95 ms "
        "| noise starts turn |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for result in report["results"]:
        for group in groups:
            s = result["summary"][group]
            lines.append(
                f"| {result['vad']} | {result['sensitivity']} | {result['settings'] or 'config'} | {group} "
                f"| {s['premature_eot']}/{s['short_pauses']} "
                f"| {_fmt(s['eot_delay_p50_ms'])} / {_fmt(s['eot_delay_p95_ms'])} | {s['missed_eot']}/{s['turns']} "
                f"| {s['missed_barge_in']}/{s['interruptions']} "
                f"| {_fmt(s['false_barge_in_backchannel_pct'], '%')} / {_fmt(s['false_barge_in_noise_pct'], '%')}"
                f" / {_fmt(s['false_barge_in_pct'], '%')} "
                f"| {_fmt(s['paused_backchannel_pct'], '%')} / {_fmt(s['paused_noise_pct'], '%')} "
                f"| {_fmt(s['pause_p50_ms'])} / {_fmt(s['pause_p95_ms'])} "
                f"| {_fmt(s['barge_in_reaction_p50_ms'])} / {_fmt(s['barge_in_reaction_p95_ms'])} "
                f"| {_fmt(s['spurious_start_on_noise_pct'], '%')} |"
            )
    return "\n".join(lines)


def _parse_list(text: str, allowed: Iterable[str]) -> list[str]:
    allowed = list(allowed)
    items = allowed if text == "all" else [item.strip() for item in text.split(",")]
    bad = [item for item in items if item not in allowed]
    if bad:
        raise SystemExit(f"unknown value(s) {bad}; expected some of {allowed} or 'all'")
    return items


def _parse_knob(text: str) -> list[tuple[str, Any]]:
    """``NAME=V1[,V2...]`` → one (name, value) per alternative."""
    name, _, values = text.partition("=")
    return [(name, int(v) if v.lstrip("-").isdigit() else v) for v in values.split(",")]


def _parse_rule(text: str) -> list[tuple[str, dict[str, int]]]:
    """``LEVEL=MS[:WORDS][,MS[:WORDS]...]`` → one (level, rule) per alternative."""
    level, _, specs = text.partition("=")
    alternatives = []
    for spec in specs.split(","):
        ms, _, words = spec.partition(":")
        rule = {"minSpeechMs": int(ms)}
        if words:
            rule["minWords"] = int(words)
        alternatives.append((level, rule))
    return alternatives


def combos(knobs: list[str], rules: list[str], silence_timeout_ms: list[int]) -> list[Combo]:
    """Every combination of the alternatives given on the command line (one combination when none are)."""
    axes: list[list[tuple[str, str, Any]]] = [[("knob", n, v) for n, v in _parse_knob(k)] for k in knobs]
    axes += [[("rule", level, rule) for level, rule in _parse_rule(r)] for r in rules]
    if silence_timeout_ms:
        axes.append([("knob", "silenceTimeoutMs", ms) for ms in silence_timeout_ms])
    result: list[Combo] = []
    for choice in itertools.product(*axes):
        overrides = {name: value for kind, name, value in choice if kind == "knob"}
        rule_overrides = {level: rule for kind, level, rule in choice if kind == "rule"}
        result.append((overrides, rule_overrides))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="set_dir", type=Path, default=ROOT / "data" / "turn_quality")
    parser.add_argument("--vad", default=None, help="webrtc, silero or all (default: the config's vad)")
    parser.add_argument("--aggressiveness", default=None, help="webrtc modes, e.g. 0,1,2,3 (default: the config's)")
    parser.add_argument("--silero-threshold", type=float, default=0.5)
    parser.add_argument("--sensitivity", default="all", help="low, medium, high (comma-separated) or all")
    parser.add_argument(
        "--silence-timeout-ms", default="", help="override silenceTimeoutMs, the turn end (comma-separated: a sweep)"
    )
    parser.add_argument("--knob", action="append", default=[], help="NAME=V[,V...] knob override (repeatable)")
    parser.add_argument("--rule", action="append", default=[], help="LEVEL=MS[:WORDS][,...] sensitivity rule")
    parser.add_argument(
        "--tail-allowance-ms", type=int, default=0, help="what-if: end turns this much before silenceTimeoutMs"
    )
    parser.add_argument("--rows", default="quiet,noisy,all", help=f"rows to print, some of {', '.join(GROUPS)}")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args()

    defaults = load_config().defaults()
    vads = _parse_list(args.vad or str(defaults["vad"]), ("webrtc", "silero"))
    modes = [int(m) for m in _parse_list(args.aggressiveness or str(defaults["vadAggressiveness"]), "0123")]
    silence_timeouts = [int(ms) for ms in args.silence_timeout_ms.split(",") if ms]
    started = time.perf_counter()
    report = score(
        args.set_dir,
        _vad_configs(vads, modes),
        _parse_list(args.sensitivity, SENSITIVITIES),
        combos(args.knob, args.rule, silence_timeouts),
        args.silero_threshold,
        args.tail_allowance_ms,
    )
    report["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    print(table(report, _parse_list(args.rows, GROUPS)))
    for result in report["results"]:
        if result["targets"]:
            marks = ", ".join(f"{name} {'ok' if ok else 'MISSED'}" for name, ok in result["targets"].items())
            where = f"{result['vad']} {result['sensitivity']} {result['settings']}".strip()
            print(f"targets {where} (silenceTimeoutMs {result['silence_timeout_ms']}): {marks}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
