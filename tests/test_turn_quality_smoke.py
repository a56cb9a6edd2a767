"""The turn-taking quality tools run end to end on a tiny set: make_set → score, with well-formed output.

Timing numbers are not asserted here (docs/turn-taking.md has the measured table); only that the pipeline
builds labelled audio of every kind and background, drives the real VAD and TurnDetector through it, and
reports every number.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from scripts.turn_quality.score import GROUPS
from scripts.turn_quality.stt import TranscriptFeed, stt_stream

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
    # the new conditions (scripts/turn_quality/conditions.py)
    "answerable_turns",
    "unanswered",
    "unanswered_pct",
    "unanswered_by_background_snr",
    *(f"{kind}_{key}" for kind in ("complete", "incomplete", "numbers") for key in (
        "turns", "eot_delay_p50_ms", "eot_delay_p95_ms", "missed_eot", "premature",
    )),
    "incomplete_premature_by_pause",
    "numbers_premature_by_pause",
    "floor_onsets",
    "floor_onset_false",
    "floor_onset_false_pct",
    "floor_onset_false_by",
    "floor_onset_events",
    "floor_onset_turns",
    "floor_onset_turns_spurious_start",
    "floor_onset_turns_unanswered",
    "backchannel_level_events",
    "burst_level_events",
    "audible_stop_backchannel_pct",
    "audible_stop_burst_pct",
    "gave_up_backchannel_level_pct",
    "gave_up_burst_level_pct",
    "audible_stop_by_level",
    "audible_pause_backchannel_p50_ms",
    "audible_pause_backchannel_p95_ms",
    "audible_pause_burst_p50_ms",
    "audible_pause_burst_p95_ms",
}  # fmt: skip
KINDS = {
    "turn", "backchannel", "interruption", "floor_onset", "backchannel_level", "burst_level", "complete",
    "incomplete", "numbers",
}  # fmt: skip
BACKGROUNDS = {"pink", "babble", "music", "cafe", "car"}


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
    assert {s["kind"] for s in scenarios} == KINDS
    assert {s["variant"] for s in scenarios} == {"quiet", "noisy", "floor"} | BACKGROUNDS
    for scenario in scenarios:
        with wave.open(str(set_dir / scenario["file"])) as wav:
            assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (8000, 2, 1)
            assert wav.getnframes() == scenario["duration_ms"] * 8
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        for zeros in scenario["digital"]:  # digital silence is exact PCM zeros
            assert not pcm[zeros["onset_ms"] * 8 : zeros["end_ms"] * 8].any() and pcm[zeros["end_ms"] * 8 :].any()
        spans = scenario["speech"]
        if scenario["kind"] in ("burst_level", "floor_onset") and not spans:
            assert not scenario["transcripts"]
            continue
        assert spans and all(0 < s["onset_ms"] < s["end_ms"] < scenario["duration_ms"] for s in spans)
        assert scenario["transcripts"] and all(t["at_ms"] >= spans[0]["onset_ms"] for t in scenario["transcripts"])
        finals = [t["text"] for t in scenario["transcripts"] if t["final"]]
        assert len(finals) == len(spans) and finals[-1].endswith((".", "?"))
        if scenario["kind"] in ("incomplete", "numbers"):
            assert not any(text.endswith((".", "?")) for text in finals[:-1])
    turn = next(s for s in scenarios if s["kind"] == "turn")
    assert turn["pauses_ms"] == [300] and turn["speech"][1]["onset_ms"] - turn["speech"][0]["end_ms"] == 300
    sweep = [s for s in scenarios if s["variant"] in BACKGROUNDS]
    assert {s["background"] for s in sweep} == BACKGROUNDS and all(s["kind"] == "turn" for s in sweep)
    assert {s["snr_db"] for s in sweep} == {0, 5, 10, 20}
    assert all(s["duration_ms"] - s["speech"][-1]["end_ms"] >= 4000 for s in sweep)  # the noise goes on
    floors = [s for s in scenarios if s["kind"] == "floor_onset"]
    assert (
        len(floors) == 3
        and sum(s["agent"] is not None for s in floors) == 1
        and sum(bool(s["speech"]) for s in floors) == 1
    )
    assert manifest["meta"]["babble_talkers"] >= 6

    out = tmp_path / "report.json"
    stdout = run(
        "scripts.turn_quality.score", "--set", str(set_dir), "--vad", "webrtc", "--aggressiveness", "2",
        "--silence-timeout-ms", "500", "--rule", "low=600:2", "--rule", "medium=200,300", "--rule", "high=150",
        "--rows", "all,babble,snr0,floor_onset,incomplete", "--json", str(out),
    )  # fmt: skip
    assert stdout.startswith("| VAD |") and "targets webrtc/2 medium" in stdout
    assert "Unanswered turns by background and SNR" in stdout and "minSpeechMs=200 | babble |" in stdout
    report = json.loads(out.read_text())
    assert report["meta"]["scenarios"] == len(scenarios) and report["meta"]["machine"]["cores"] >= 1
    results = report["results"]
    assert [(r["sensitivity"], r["barge_in_rule"]["minSpeechMs"]) for r in results] == [
        ("low", 600), ("medium", 200), ("high", 150), ("medium", 300),
    ]  # fmt: skip
    for result in results:
        assert result["vad"] == "webrtc/2" and result["silence_timeout_ms"] == 500
        assert set(result["summary"]) == set(GROUPS)
        assert all(set(summary) == SUMMARY_KEYS for summary in result["summary"].values())
        everything, core = result["summary"]["all"], result["summary"]["core"]
        assert everything["turns"] == 7 and core["turns"] == 2 and everything["interruptions"] == 2
        assert set(everything["unanswered_by_background_snr"]) == BACKGROUNDS
        assert (
            sum(row["scenarios"] for bg in everything["unanswered_by_background_snr"].values() for row in bg.values())
            == 5
        )
        assert result["summary"]["snr0"]["answerable_turns"] == 2  # pink and car at 0 dB
        assert everything["complete_turns"] == everything["incomplete_turns"] == everything["numbers_turns"] == 2
        assert list(everything["incomplete_premature_by_pause"]) == ["500"]
        assert everything["floor_onsets"] == 2 and everything["floor_onset_turns"] == 1
        assert set(everything["audible_stop_by_level"]) == {"backchannel -20", "burst -14"}
        assert everything["backchannel_level_events"] == everything["burst_level_events"] == 2
        assert set(result["failures"]) == {
            "premature_eot", "missed_eot", "missed_barge_in", "false_barge_in", "unanswered", "floor_onset_false",
        }  # fmt: skip
    medium = results[1]
    assert set(medium["targets"]) == {
        "no_premature_eot", "eot_delay_p95", "no_missed_barge_in", "false_barge_in_le_5pct", "reaction_p95_le_250",
    }  # fmt: skip
    assert set(results[2]["targets"]) == {"reaction_p95_le_150"} and results[0]["targets"] == {}


def test_the_stt_stream_is_what_the_session_hands_the_detector() -> None:
    """Interims grow word by word, a final follows each phrase (punctuated only when complete); the detector
    gets the turn's finals joined with the latest interim, and nothing of a turn after it ended."""

    class Phrase:
        def __init__(self, onset_ms: int, end_ms: int, text: str) -> None:
            self.onset_ms, self.end_ms, self.text = onset_ms, end_ms, text

    items = stt_stream([Phrase(1000, 1600, "So the thing is um"), Phrase(2600, 3000, "it broke.")], 300)
    assert [(i["at_ms"], i["text"], i["final"]) for i in items] == [
        (1300, "So", False), (1420, "So the", False), (1540, "So the thing", False), (1660, "So the thing is", False),
        (1780, "So the thing is um", False), (1900, "So the thing is um", True),
        (2900, "it", False), (3100, "it broke", False), (3300, "it broke.", True),
    ]  # fmt: skip
    feed = TranscriptFeed()
    seen = [feed.receive(i["text"], i["final"]) for i in items]
    assert seen[-3:] == ["So the thing is um it", "So the thing is um it broke", "So the thing is um it broke."]
    feed.end_of_turn()
    assert feed.receive("next", False) == "next"
    feed.discard_turn()  # a false interruption: its late final is dropped
    assert feed.receive("next one", True) is None and feed.best_text() == ""
