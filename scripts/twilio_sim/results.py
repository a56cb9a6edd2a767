"""What a simulated call measured: per-turn latencies, protocol counters, and a summary over many calls."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class TurnMetrics:
    """One caller utterance. Times are seconds from the stream start.

    ``latency_ms`` (voice-to-voice): end of the caller's last speech frame → first agent sound played after it.
    ``barge_in_ms``: caller speech onset → ``clear`` received, only when agent audio was playing at the onset.
    """

    index: int
    onset_s: float
    speech_end_s: float | None = None
    interrupted_agent: bool = False
    latency_ms: float | None = None
    barge_in_ms: float | None = None


@dataclass
class CallResult:
    """Everything one call observed. ``outcome`` is "completed", "refused" or "error"."""

    outcome: str
    call_sid: str
    stream_sid: str | None = None
    refused_text: str | None = None
    error: str | None = None
    twiml: str = ""
    custom_parameters: dict[str, str] = field(default_factory=dict)
    turns: list[TurnMetrics] = field(default_factory=list)
    frames_sent: int = 0
    dtmf_sent: int = 0
    media_received: int = 0
    media_bytes_received: int = 0
    marks_received: int = 0
    marks_echoed: int = 0
    clears: int = 0
    violations: list[str] = field(default_factory=list)
    server_closed: bool = False
    close_code: int | None = None
    duration_s: float = 0.0
    max_send_lag_ms: float = 0.0  # worst lateness of a caller frame: above ~20 ms the simulator itself is overloaded

    @property
    def violation_count(self) -> int:
        return len(self.violations)

    @property
    def latencies_ms(self) -> list[float]:
        return [t.latency_ms for t in self.turns if t.latency_ms is not None]

    @property
    def barge_ins_ms(self) -> list[float]:
        return [t.barge_in_ms for t in self.turns if t.barge_in_ms is not None]


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class RunSummary:
    """Many calls at once: outcome counts and latency percentiles across every turn of every call."""

    results: list[CallResult]

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def latencies_ms(self) -> list[float]:
        return [v for r in self.results for v in r.latencies_ms]

    @property
    def barge_ins_ms(self) -> list[float]:
        return [v for r in self.results for v in r.barge_ins_ms]

    @property
    def violations(self) -> int:
        return sum(r.violation_count for r in self.results)

    def stats(self) -> dict[str, float | int | None]:
        return {
            "calls": len(self.results),
            "completed": self.count("completed"),
            "refused": self.count("refused"),
            "errors": self.count("error"),
            "violations": self.violations,
            "latency_p50_ms": percentile(self.latencies_ms, 50),
            "latency_p95_ms": percentile(self.latencies_ms, 95),
            "barge_in_p50_ms": percentile(self.barge_ins_ms, 50),
            "barge_in_p95_ms": percentile(self.barge_ins_ms, 95),
        }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def format_call(result: CallResult, label: str = "") -> str:
    """A per-turn table plus the call's counters, for humans."""
    head = f"call {label}{result.call_sid}: {result.outcome}"
    if result.refused_text:
        head += f" ({result.refused_text!r})"
    if result.error:
        head += f" ({result.error})"
    lines = [head]
    if result.turns:
        lines.append(f"  {'turn':>4} {'onset s':>8} {'end s':>7} {'latency ms':>10} {'barge-in ms':>11}")
        for t in result.turns:
            end = "-" if t.speech_end_s is None else f"{t.speech_end_s:.2f}"
            barge = _ms(t.barge_in_ms) if t.interrupted_agent else ""
            lines.append(f"  {t.index:>4} {t.onset_s:>8.2f} {end:>7} {_ms(t.latency_ms):>10} {barge:>11}")
    lines.append(
        f"  frames sent {result.frames_sent}, media received {result.media_received}, marks echoed "
        f"{result.marks_echoed}/{result.marks_received}, clears {result.clears}, violations {result.violation_count}, "
        f"server closed {result.server_closed}, {result.duration_s:.2f} s"
    )
    lines.extend(f"  violation: {v}" for v in result.violations[:10])
    return "\n".join(lines)


def format_summary(summary: RunSummary) -> str:
    stats = summary.stats()
    return (
        f"{stats['calls']} calls: {stats['completed']} completed, {stats['refused']} refused, "
        f"{stats['errors']} errors, {stats['violations']} violations; latency p50 {_ms(stats['latency_p50_ms'])} ms, "
        f"p95 {_ms(stats['latency_p95_ms'])} ms; barge-in p50 {_ms(stats['barge_in_p50_ms'])} ms, "
        f"p95 {_ms(stats['barge_in_p95_ms'])} ms"
    )
