"""Markdown tables of a score report (score.py): the first study's table and the new conditions' tables."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from scripts.turn_quality.noises import BACKGROUNDS
from scripts.turn_quality.scenarios import (
    BACKCHANNEL_LEVELS_DBFS,
    BURST_LEVELS_DBFS,
    FLOOR_DBFS,
    INCOMPLETE_PAUSES_MS,
    SWEEP_SNR_DB,
)

VARIANTS = ("quiet", "noisy", "all")


def _fmt(value: float | None, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.0f}{suffix}"


def _ratio(row: dict[str, int] | None, name: str) -> str:
    return "–" if not row else f"{row[name]}/{row['scenarios']}"


def _markdown(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def _who(result: dict[str, Any]) -> list[str]:
    return [result["vad"], result["sensitivity"], result["settings"] or "config"]


def table(report: dict[str, Any], groups: Iterable[str] = VARIANTS) -> str:
    """The first study's table: one row per VAD, sensitivity and group (background variant or synthesizer)."""
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


def conditions_table(report: dict[str, Any], groups: Iterable[str] = VARIANTS) -> str:
    """The new conditions per VAD, sensitivity and group."""
    head = [
        "VAD", "sens.", "settings", "rows", "unanswered", "complete EOT p50/p95 ms", "incomplete EOT p50/p95 ms",
        "numbers EOT p50/p95 ms", "premature incomplete / numbers", "floor onset false", "audible stop bc / burst",
        "audible pause bc p50/p95 ms", "audible pause burst p50/p95 ms",
    ]  # fmt: skip
    rows = []
    for result in report["results"]:
        for group in groups:
            s = result["summary"][group]
            rows.append(
                [
                    *_who(result),
                    group,
                    f"{s['unanswered']}/{s['answerable_turns']}",
                    *(
                        f"{_fmt(s[f'{kind}_eot_delay_p50_ms'])} / {_fmt(s[f'{kind}_eot_delay_p95_ms'])}"
                        for kind in ("complete", "incomplete", "numbers")
                    ),
                    f"{s['incomplete_premature']}/{s['incomplete_turns']}"
                    f" / {s['numbers_premature']}/{s['numbers_turns']}",
                    f"{s['floor_onset_false']}/{s['floor_onsets']}",
                    f"{_fmt(s['audible_stop_backchannel_pct'], '%')} / {_fmt(s['audible_stop_burst_pct'], '%')}",
                    *(
                        f"{_fmt(s[f'audible_pause_{name}_p50_ms'])} / {_fmt(s[f'audible_pause_{name}_p95_ms'])}"
                        for name in ("backchannel", "burst")
                    ),
                ]
            )
    return _markdown(head, rows)


def sweep_table(report: dict[str, Any]) -> str:
    """Unanswered turns per background and SNR (the noisy-turn sweep), one row per result and background."""
    head = ["VAD", "sens.", "settings", "background", *(f"{snr} dB" for snr in SWEEP_SNR_DB)]
    rows = []
    for result in report["results"]:
        cells = result["summary"]["all"]["unanswered_by_background_snr"]
        for background in BACKGROUNDS:
            by_snr = cells.get(background, {})
            rows.append(
                [*_who(result), background, *(_ratio(by_snr.get(str(snr)), "unanswered") for snr in SWEEP_SNR_DB)]
            )
    return _markdown(head, rows)


def pause_table(report: dict[str, Any]) -> str:
    """Premature ends of turn in unfinished thoughts, per pause (incomplete) and pause bucket (numbers)."""
    buckets = sorted(
        {key for r in report["results"] for key in r["summary"]["all"]["numbers_premature_by_pause"]}, key=int
    )
    head = [
        "VAD", "sens.", "settings", *(f"incomplete {ms} ms" for ms in INCOMPLETE_PAUSES_MS),
        *(f"numbers {b}-{int(b) + 99} ms" for b in buckets),
    ]  # fmt: skip
    rows = []
    for result in report["results"]:
        s = result["summary"]["all"]
        rows.append(
            [
                *_who(result),
                *(_ratio(s["incomplete_premature_by_pause"].get(str(ms)), "premature") for ms in INCOMPLETE_PAUSES_MS),
                *(_ratio(s["numbers_premature_by_pause"].get(b), "premature") for b in buckets),
            ]
        )
    return _markdown(head, rows)


def level_table(report: dict[str, Any]) -> str:
    """Audible stops per backchannel and burst level; floor-onset false events per floor level and agent."""
    levels = [f"backchannel {lvl:g}" for lvl in BACKCHANNEL_LEVELS_DBFS] + [
        f"burst {lvl:g}" for lvl in BURST_LEVELS_DBFS
    ]
    floors = [f"level {lvl:g}" for lvl in FLOOR_DBFS] + ["agent silent", "agent speaking"]
    head = [
        "VAD", "sens.", "settings", *(f"stop {name.replace('backchannel', 'bc')} dBFS" for name in levels),
        *(f"floor {name.replace('level ', '')}" for name in floors), "floor events",
    ]  # fmt: skip
    rows = []
    for result in report["results"]:
        s = result["summary"]["all"]
        events = ", ".join(f"{name} {count}" for name, count in s["floor_onset_events"].items()) or "none"
        rows.append(
            [
                *_who(result),
                *(_ratio(s["audible_stop_by_level"].get(name), "stopped") for name in levels),
                *(_ratio(s["floor_onset_false_by"].get(name), "false") for name in floors),
                events,
            ]
        )
    return _markdown(head, rows)


def render(report: dict[str, Any], groups: list[str]) -> str:
    """Everything score.py prints before the targets."""
    parts = [
        table(report, groups),
        "\nNew conditions (docs/turn-taking.md: unanswered, EOT delay per kind, premature in unfinished thoughts,"
        " floor onset, audible stops):\n",
        conditions_table(report, groups),
        "\nUnanswered turns by background and SNR (background on for 4.5 s after the last word):\n",
        sweep_table(report),
        "\nPremature ends of turn inside unfinished thoughts, by pause:\n",
        pause_table(report),
        "\nAudible stops by level (agent speaking), floor-onset false events by floor level and agent:\n",
        level_table(report),
    ]
    return "\n".join(parts)
