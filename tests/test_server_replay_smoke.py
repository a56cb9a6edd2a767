"""The labelled turn-taking set played through a real server (scripts/turn_quality/server_replay.py), end to end.

A tiny set (make_set --tiny) and three of its quiet scenarios, one call each, at once: a caller turn, a
backchannel and an interruption over the agent's greeting. Only the output's shape and the plainest outcome are
asserted (the quiet turn was answered after its last word; the agent was talking when the caller's sound came);
the numbers themselves are for the report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,  # a server process and its embedded database, ~15 s of real-time calls
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the set's and the benchmark's speech need espeak-ng"),
]

LISTENING_KEYS = {"kind", "background", "scenarios", "failed_calls", "turns", "answered", "premature_in_pause"}
LISTENING_KEYS |= {"premature_in_speech", "early_answers", "answer_over_p50_ms", "answer_over_p95_ms", "false_turns"}
SPEAKING_KEYS = {"kind", "background", "agent_playing_at_event", "audible_stops", "resumed", "gave_up"}
SPEAKING_KEYS |= {"reaction_p50_ms", "reaction_p95_ms", "quiet_after_stop_p50_ms", "other_clears"}


def run(*args: str, timeout: float) -> str:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_a_tiny_set_through_a_real_server(tmp_path: Path) -> None:
    set_dir, out = tmp_path / "set", tmp_path / "replay.json"
    run("scripts.turn_quality.make_set", "--out", str(set_dir), "--tiny", timeout=120)
    kinds = "turn,backchannel,interruption"
    stdout = run(
        "scripts.turn_quality.server_replay", "--set", str(set_dir), "--kinds", kinds, "--backgrounds", "quiet",
        "--limit", "1", "--calls", "3", "--json", str(out), timeout=120,
    )  # fmt: skip
    assert "Agent silent (caller turns)" in stdout and "Agent speaking" in stdout
    data = json.loads(out.read_text())
    assert data["meta"]["thresholds"]["silenceTimeoutMs"] > 0

    results = {r["kind"]: r for r in data["scenarios"]}
    assert sorted(results) == ["backchannel", "interruption", "turn"]
    for result in results.values():
        assert result["outcome"] == "completed", result["error"]
        assert result["violations"] == 0
        assert result["agent_speaks"] == (result["kind"] != "turn")
        assert all(isinstance(t, str) for t in result["stt_transcripts"])

    turn = results["turn"]
    assert turn["answered"], turn
    assert turn["answer_delay_ms"] > 0 and turn["early_answers"] == 0
    assert turn["stt_transcripts"] and not turn["stt_deaf"]
    for kind in ("backchannel", "interruption"):
        assert results[kind]["agent_playing_at_event"], results[kind]
        assert results[kind]["event_into_agent_ms"] > 0
    assert results["backchannel"]["stt_transcripts"] == ["uh-huh."]

    listening, speaking = data["tables"]["listening"], data["tables"]["speaking"]
    assert [(r["kind"], r["background"]) for r in listening] == [("turn", "quiet")]
    assert listening[0]["answered"] == listening[0]["turns"] == 1
    assert {(r["kind"], r["background"]) for r in speaking} == {("backchannel", "quiet"), ("interruption", "quiet")}
    assert all(LISTENING_KEYS <= row.keys() for row in listening)
    assert all(SPEAKING_KEYS <= row.keys() for row in speaking)
