"""The numbers of the conditions the first study lacked (scenarios.py), from judged outcomes (metrics.py).

unanswered              turns with no EndOfTurn within silence timeout + 1.5 s of the last word, in all and
                        per background × SNR of the noisy-turn sweep
eot delay per kind      complete / incomplete / numbers: EndOfTurn − true end of the last word, p50 and p95
premature (unfinished)  incomplete / numbers scenarios with an EndOfTurn before their last word, per pause
floor-onset false       floor_onset scenarios without speech with any SpeechStarted, BargeIn or EndOfTurn
audible stop            backchannel_level / burst_level scenarios with any BargeIn, per level; the pause heard
"""

from __future__ import annotations

from typing import Any

from scripts.turn_quality.metrics import Outcome, percentile
from scripts.turn_quality.noises import BACKGROUNDS

DELAY_KINDS = ("complete", "incomplete", "numbers")


def _pct(hits: int, total: int) -> float | None:
    return round(100.0 * hits / total, 1) if total else None


def _count(rows: dict[str, dict[str, int]], key: str, hit: bool, name: str) -> None:
    row = rows.setdefault(key, {"scenarios": 0, name: 0})
    row["scenarios"] += 1
    row[name] += int(hit)


def _sorted(rows: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return dict(sorted(rows.items(), key=lambda item: float(item[0].split()[-1])))


def _number_bucket(pause_ms: int) -> str:
    """Numbers' pauses are 400-900 ms at random: grouped by the 100 ms they start in (``400`` = 400-499)."""
    return str(pause_ms // 100 * 100)


def summarize_conditions(outcomes: list[Outcome]) -> dict[str, Any]:
    """The new conditions' numbers for a group of outcomes (one VAD, one sensitivity, one row group)."""
    answerable = [o for o in outcomes if o.unanswered is not None]
    sweep: dict[str, dict[str, dict[str, int]]] = {}
    for o in answerable:
        if o.background in BACKGROUNDS and o.variant == o.background and o.snr_db is not None:
            _count(sweep.setdefault(o.background, {}), f"{o.snr_db:g}", bool(o.unanswered), "unanswered")
    result: dict[str, Any] = {
        "answerable_turns": len(answerable),
        "unanswered": sum(bool(o.unanswered) for o in answerable),
        "unanswered_pct": _pct(sum(bool(o.unanswered) for o in answerable), len(answerable)),
        "unanswered_by_background_snr": {bg: _sorted(sweep[bg]) for bg in BACKGROUNDS if bg in sweep},
    }
    for kind in DELAY_KINDS:
        group = [o for o in outcomes if o.kind == kind]
        delays = [o.eot_delay_ms for o in group if o.eot_delay_ms is not None]
        result[f"{kind}_turns"] = len(group)
        result[f"{kind}_eot_delay_p50_ms"] = percentile(delays, 50)
        result[f"{kind}_eot_delay_p95_ms"] = percentile(delays, 95)
        result[f"{kind}_missed_eot"] = sum(o.missed_eot for o in group)
        result[f"{kind}_premature"] = sum(o.premature_eot > 0 for o in group)  # scenarios, not events
    for kind in ("incomplete", "numbers"):
        rows: dict[str, dict[str, int]] = {}
        for o in (o for o in outcomes if o.kind == kind):
            for pause in o.pause_eot:
                key = str(pause) if kind == "incomplete" else _number_bucket(pause)
                _count(rows, key, pause in o.premature_pauses, "premature")
        result[f"{kind}_premature_by_pause"] = _sorted(rows)
    result.update(_floor_onset(outcomes))
    result.update(_audible_stops(outcomes))
    return result


def _floor_onset(outcomes: list[Outcome]) -> dict[str, Any]:
    quiet = [o for o in outcomes if o.kind == "floor_onset" and not o.has_speech]
    talking = [o for o in outcomes if o.kind == "floor_onset" and o.has_speech]
    by: dict[str, dict[str, int]] = {}
    events: dict[str, int] = {}
    for o in quiet:
        wrong = bool(o.false_events)
        _count(by, f"level {o.labels.get('floor_dbfs', 0):g}", wrong, "false")
        _count(by, "agent speaking" if o.agent else "agent silent", wrong, "false")
        _count(by, f"{o.labels.get('context', '')} {o.labels.get('colour', '')}".strip(), wrong, "false")
        for name in o.false_events:
            events[name] = events.get(name, 0) + 1
    return {
        "floor_onsets": len(quiet),
        "floor_onset_false": sum(bool(o.false_events) for o in quiet),
        "floor_onset_false_pct": _pct(sum(bool(o.false_events) for o in quiet), len(quiet)),
        "floor_onset_false_by": by,
        "floor_onset_events": dict(sorted(events.items())),
        "floor_onset_turns": len(talking),
        "floor_onset_turns_spurious_start": sum(o.spurious_start for o in talking),
        "floor_onset_turns_unanswered": sum(bool(o.unanswered) for o in talking),
    }


def _audible_stops(outcomes: list[Outcome]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    by_level: dict[str, dict[str, int]] = {}
    for kind, name in (("backchannel_level", "backchannel"), ("burst_level", "burst")):
        group = [o for o in outcomes if o.kind == kind]
        pauses = [ms for o in group for ms in o.pause_ms]
        result[f"{name}_level_events"] = len(group)
        result[f"audible_stop_{name}_pct"] = _pct(sum(o.paused for o in group), len(group))
        result[f"audible_pause_{name}_p50_ms"] = percentile(pauses, 50)
        result[f"audible_pause_{name}_p95_ms"] = percentile(pauses, 95)
        result[f"gave_up_{name}_level_pct"] = _pct(sum(o.barge_in for o in group), len(group))
        for o in group:
            _count(by_level, f"{name} {o.labels.get('event_dbfs', 0):g}", o.paused, "stopped")
    result["audible_stop_by_level"] = dict(
        sorted(by_level.items(), key=lambda item: (item[0].split()[0], -float(item[0].split()[-1])))
    )
    return result
