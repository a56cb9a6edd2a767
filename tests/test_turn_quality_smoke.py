"""The turn-taking quality tools run end to end on a tiny set: make_set → score, with well-formed output.

Timing numbers are not asserted here (docs/turn-taking.md has the measured table); only that the pipeline
builds labelled audio, drives the real VAD and TurnDetector through it, and reports every number.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

SUMMARY_KEYS = {
    "turns",
    "premature_eot",
    "short_pauses",
    "pauses",
    "eot_delay_p50_ms",
    "eot_delay_p95_ms",
    "eot_delay_max_ms",
    "missed_eot",
    "spurious_turn_starts",
    "interruptions",
    "missed_barge_in",
    "barge_in_reaction_p50_ms",
    "barge_in_reaction_p95_ms",
    "backchannels",
    "false_barge_in_backchannel_pct",
    "noise_events",
    "false_barge_in_noise_pct",
    "false_barge_in_burst_pct",
    "false_barge_in_callstart_pct",
    "false_barge_in_pct",
    "paused_backchannel_pct",
    "paused_noise_pct",
    "pause_p50_ms",
    "pause_p95_ms",
    "noise_while_listening",
    "spurious_start_on_noise_pct",
}


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_set_and_score_a_tiny_set(tmp_path: Path) -> None:
    set_dir = tmp_path / "set"
    run("scripts.turn_quality.make_set", "--out", str(set_dir), "--tiny")
    manifest = json.loads((set_dir / "manifest.json").read_text())
    scenarios = manifest["scenarios"]
    assert {s["kind"] for s in scenarios} == {"turn", "backchannel", "interruption"}
    assert {s["variant"] for s in scenarios} == {"quiet", "noisy"}
    for scenario in scenarios:
        with wave.open(str(set_dir / scenario["file"])) as wav:
            assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (8000, 2, 1)
            assert wav.getnframes() == scenario["duration_ms"] * 8
        spans = scenario["speech"]
        assert spans and all(0 < s["onset_ms"] < s["end_ms"] < scenario["duration_ms"] for s in spans)
        assert scenario["transcripts"] and all(t["at_ms"] >= spans[0]["onset_ms"] for t in scenario["transcripts"])
    turn = next(s for s in scenarios if s["kind"] == "turn")
    assert turn["pauses_ms"] == [300] and turn["speech"][1]["onset_ms"] - turn["speech"][0]["end_ms"] == 300

    out = tmp_path / "report.json"
    stdout = run(
        "scripts.turn_quality.score", "--set", str(set_dir), "--vad", "webrtc", "--aggressiveness", "2",
        "--silence-timeout-ms", "500", "--rule", "low=600:2", "--rule", "medium=200,300", "--rule", "high=150",
        "--json", str(out),
    )  # fmt: skip
    assert stdout.startswith("| VAD |") and "targets webrtc/2 medium" in stdout
    report = json.loads(out.read_text())
    assert report["meta"]["scenarios"] == len(scenarios) and report["meta"]["machine"]["cores"] >= 1
    results = report["results"]
    assert [(r["sensitivity"], r["barge_in_rule"]["minSpeechMs"]) for r in results] == [
        ("low", 600), ("medium", 200), ("high", 150), ("medium", 300),
    ]  # fmt: skip
    for result in results:
        assert result["vad"] == "webrtc/2" and result["silence_timeout_ms"] == 500
        assert set(result["summary"]) == {"quiet", "noisy", "all", "espeak", "festival"}
        assert set(result["summary"]["all"]) == SUMMARY_KEYS
        assert result["summary"]["all"]["turns"] == 2 and result["summary"]["all"]["interruptions"] == 2
        assert set(result["failures"]) == {"premature_eot", "missed_eot", "missed_barge_in", "false_barge_in"}
    medium = results[1]
    assert set(medium["targets"]) == {
        "no_premature_eot", "eot_delay_p95", "no_missed_barge_in", "false_barge_in_le_5pct", "reaction_p95_le_250",
    }  # fmt: skip
    assert set(results[2]["targets"]) == {"reaction_p95_le_150"} and results[0]["targets"] == {}
