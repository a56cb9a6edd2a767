"""Score the real VAD + TurnDetector on the labelled set built by make_set.py, per VAD and sensitivity.

Each scenario's audio goes frame by frame (20 ms) through a fresh VAD (``pipelines.vad.make_vad``) and a
``TurnDetector`` with the settings of config/turn_taking.yaml plus the CLI overrides, exactly as the call
session drives them: labelled transcripts are fed at their times (the turn's finals joined with the latest
interim, as pipelines/stt_stream.py hands them over), the agent's playout starts and finishes at its labelled
times, pauses on BargeIn, gives up its turn on InterruptionConfirmed and resumes on FalseInterruption (the rest
of its audio plays later by the length of the pause).

Usage:
    python -m scripts.turn_quality.score [--set data/turn_quality] [--vad webrtc|silero|all]
        [--aggressiveness 0,1,2,3] [--sensitivity low,medium,high] [--silence-timeout-ms 500[,700]]
        [--knob speechGapToleranceMs=80,120] [--rule medium=60,100[:WORDS]] [--tail-allowance-ms 40]
        [--rows quiet,noisy,babble,snr0,incomplete,...,all] [--kinds turn,incomplete] [--limit 20]
        [--jobs 2] [--json out.json]

Comma-separated alternatives are swept (every combination), reusing one VAD pass. ``--knob`` passes any knob
through ``TurnSettings.resolve`` as an agent override. Scenarios are scored in ``--jobs`` processes. Results:
docs/turn-taking.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from pipelines.turn_settings import TurnSettings
from pipelines.vad import VAD_KINDS
from scripts.turn_quality.conditions import summarize_conditions
from scripts.turn_quality.drive import Run, score_chunk, simulate
from scripts.turn_quality.metrics import Outcome, check_targets, summarize
from scripts.turn_quality.noises import BACKGROUNDS
from scripts.turn_quality.report import VARIANTS, render, table
from scripts.turn_quality.scenarios import SWEEP_SNR_DB
from voicex.catalog.config import TurnTakingFile

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "turn_taking.yaml"
SENSITIVITIES = ("low", "medium", "high")
FIRST_STUDY_KINDS = ("turn", "backchannel", "interruption", "burst", "burst_listening", "callstart")
NEW_KINDS = ("floor_onset", "complete", "incomplete", "numbers", "backchannel_level", "burst_level")
# Rows: "quiet"/"noisy" (pink at --snr-db) variants of every kind but the sweep's; the sweep's backgrounds
# (babble … pink); SNRs (snr15: the noisy variant); synthesizers; the new kinds; "core": the first study's 720
# scenarios (its kinds, quiet and noisy), on which the targets are checked.
GROUPS = (
    *VARIANTS,
    "core",
    "espeak",
    "festival",
    *BACKGROUNDS,
    *sorted({f"snr{snr:g}" for snr in (*SWEEP_SNR_DB, 15)}, key=lambda g: float(g[3:])),
    *NEW_KINDS,
)
__all__ = ["GROUPS", "load_config", "resolve", "score", "simulate", "table"]


def load_config(path: Path = CONFIG) -> TurnTakingFile:
    """The defaults table, validated like the server validates it (ranges, choices)."""
    return TurnTakingFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def resolve(config: TurnTakingFile, overrides: dict[str, Any], rules: dict[str, dict[str, int]]) -> TurnSettings:
    sensitivity: dict[str, dict[str, Any]] = {name: rule.model_dump() for name, rule in config.sensitivity.items()}
    for name, rule in rules.items():
        sensitivity[name] = {**sensitivity[name], **rule}
    return TurnSettings.resolve(config.defaults(), sensitivity, config.backchannels, overrides)


def _vad_configs(vads: Iterable[str], aggressiveness: list[int]) -> list[tuple[str, int]]:
    configs: list[tuple[str, int]] = []
    for vad in vads:
        configs += [(vad, a) for a in aggressiveness] if vad == "webrtc" else [(vad, 0)]
    return configs


def vad_label(vad: str, aggressiveness: int) -> str:
    return f"webrtc/{aggressiveness}" if vad == "webrtc" else vad


Combo = tuple[dict[str, Any], dict[str, dict[str, int]]]  # knob overrides, sensitivity-rule overrides


def select(scenarios: list[dict[str, Any]], kinds: list[str] | None, limit: int | None) -> list[dict[str, Any]]:
    """The scenarios of ``kinds`` (all when None), at most ``limit`` of each kind, in the manifest's order."""
    taken: dict[str, int] = {}
    chosen = []
    for scenario in scenarios:
        kind = scenario["kind"]
        if (kinds is None or kind in kinds) and (limit is None or taken.get(kind, 0) < limit):
            taken[kind] = taken.get(kind, 0) + 1
            chosen.append(scenario)
    return chosen


def groups_of(outcome: Outcome) -> set[str]:
    """The row groups an outcome counts in (the sweep's variants are named after their background)."""
    groups = {"all", outcome.variant, outcome.kind}
    if outcome.engine:
        groups.add(outcome.engine)
    if outcome.snr_db is not None:
        groups.add(f"snr{outcome.snr_db:g}")
    if outcome.variant in ("quiet", "noisy") and outcome.kind in FIRST_STUDY_KINDS:
        groups.add("core")
    return groups


def score(
    set_dir: Path,
    vad_configs: list[tuple[str, int]],
    sensitivities: list[str],
    combos: list[Combo],
    threshold: float = 0.5,
    tail_allowance_ms: int = 0,
    kinds: list[str] | None = None,
    limit: int | None = None,
    jobs: int | None = None,
) -> dict[str, Any]:
    """Every (VAD, settings combination, sensitivity) result: its summary per group and the targets it meets.

    Each VAD runs once over the set; every combination of settings reuses its decisions. ``tail_allowance_ms`` is a
    what-if for compensating the VAD's tail: the detector waits ``silenceTimeoutMs`` minus it, while premature ends
    and delays are still judged against ``silenceTimeoutMs``. The targets are checked on the first study's set
    (group ``core``); the new conditions are reported beside them.
    """
    manifest = json.loads((set_dir / "manifest.json").read_text())
    scenarios = select(manifest["scenarios"], kinds, limit)
    config = load_config()
    runs: list[Run] = []
    described: list[dict[str, Any]] = []
    done: set[tuple[str, str]] = set()
    for overrides, rules in combos:
        for sensitivity in sensitivities:
            description = _describe(overrides, rules, sensitivity)
            if (sensitivity, description) in done:
                continue  # another combination differs only in another level's rule
            done.add((sensitivity, description))
            settings = resolve(config, {**overrides, "interruptionSensitivity": sensitivity}, rules)
            silence_timeout = settings.silence_timeout_ms  # the caller silence that ends a turn
            if tail_allowance_ms:
                settings = replace(settings, silence_timeout_ms=silence_timeout - tail_allowance_ms)
            runs.append((settings, silence_timeout))
            described.append(
                {
                    "sensitivity": sensitivity,
                    "settings": description,
                    "silence_timeout_ms": silence_timeout,
                    "tail_allowance_ms": tail_allowance_ms,
                    "barge_in_rule": {
                        "minSpeechMs": settings.barge_in.min_speech_ms,
                        "minWords": settings.barge_in.min_words,
                    },
                    "speech_gap_ms": settings.speech_gap_ms,
                    "speech_start_ms": settings.speech_start_ms,
                }
            )
    jobs = max(1, jobs or os.cpu_count() or 1)
    size = max(4, -(-len(scenarios) // (jobs * 6)))  # a few chunks per process: Silero's are slow
    chunks = [scenarios[i : i + size] for i in range(0, len(scenarios), size)]
    per_vad: list[tuple[float, list[list[Outcome]]]] = []
    if jobs == 1:
        parts = [[score_chunk(set_dir, chunk, vad, a, threshold, runs) for chunk in chunks] for vad, a in vad_configs]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [
                [pool.submit(score_chunk, set_dir, chunk, vad, a, threshold, runs) for chunk in chunks]
                for vad, a in vad_configs
            ]
            parts = [[future.result() for future in row] for row in futures]
    for row in parts:
        per_vad.append(
            (sum(seconds for seconds, _ in row), [[o for _, chunk in row for o in chunk[i]] for i in range(len(runs))])
        )
    results: list[dict[str, Any]] = []
    for (vad, aggressiveness), (vad_seconds, outcomes_per_run) in zip(vad_configs, per_vad, strict=True):
        for about, outcomes in zip(described, outcomes_per_run, strict=True):
            members = [groups_of(o) for o in outcomes]
            groups = {}
            for group in GROUPS:
                chosen = [o for o, m in zip(outcomes, members, strict=True) if group in m]
                groups[group] = {**summarize(chosen), **summarize_conditions(chosen)}
            results.append(
                {
                    "vad": vad_label(vad, aggressiveness),
                    **about,
                    "summary": groups,
                    "targets": check_targets(groups["core"], about["sensitivity"], about["silence_timeout_ms"]),
                    "failures": _failures(outcomes),
                    "vad_seconds": round(vad_seconds, 2),
                }
            )
    meta = {**manifest["meta"], "scenarios": len(scenarios), "jobs": jobs, "machine": machine()}
    return {"meta": meta, "results": results}


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
        "unanswered": [o.name for o in outcomes if o.unanswered],
        "floor_onset_false": [o.name for o in outcomes if o.false_events],
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "os": platform.platform()}


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
    parser.add_argument("--kinds", default="all", help="score only these scenario kinds (comma-separated)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many scenarios of each kind")
    parser.add_argument("--jobs", type=int, default=None, help="processes (default: one per core)")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args()

    defaults = load_config().defaults()
    vads = _parse_list(args.vad or str(defaults["vad"]), VAD_KINDS)
    rows = _parse_list(args.rows, GROUPS)
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
        None if args.kinds == "all" else [kind.strip() for kind in args.kinds.split(",")],
        args.limit,
        args.jobs,
    )
    report["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    print(render(report, rows))
    for result in report["results"]:
        if result["targets"]:
            marks = ", ".join(f"{name} {'ok' if ok else 'MISSED'}" for name, ok in result["targets"].items())
            where = f"{result['vad']} {result['sensitivity']} {result['settings']}".strip()
            timeout = result["silence_timeout_ms"]
            print(f"targets {where} (silenceTimeoutMs {timeout}; the first study's set): {marks}")
    meta = report["meta"]
    print(f"{meta['scenarios']} scenarios scored in {meta['seconds']} s ({meta['jobs']} processes)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
