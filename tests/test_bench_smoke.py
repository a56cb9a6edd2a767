"""The benchmark scripts' --smoke modes run end to end and write well-formed results (numbers, not timings).

The five scripts run at once as subprocesses (each starts its own server process and DB): they mostly wait on
real-time audio, so together they take about as long as the slowest one.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("latency", "capacity", "barge_in", "memory", "http_api")
LEVEL_KEYS = {
    "latency": ("calls", "completed", "added_latency_ms", "code_added_ms", "server_cpu_pct", "caller_cpu_pct"),
    "capacity": ("calls", "underruns", "frame_p99_ms", "loop_lag_p99_ms", "server_rss_mb", "sustained"),
    "barge_in": ("sensitivity", "min_speech_ms", "barge_in_ms", "interrupted_turns"),
    "memory": ("calls", "baseline_rss_mb", "server_rss_mb", "per_call_mb"),
    "http_api": ("scenario", "concurrency", "endpoints", "unexpected", "server_cpu_ms_per_request", "client_cpu_pct"),
}
HTTP_ENDPOINTS = {"agents": {"agents"}, "voice": {"voice", "status"}}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the caller's speech needs espeak-ng"),
]


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    out_dir = tmp_path_factory.mktemp("bench")
    procs = {}
    for name in SCRIPTS:
        out = out_dir / f"{name}.json"
        cmd = [sys.executable, "-m", f"scripts.bench.{name}", "--smoke", "--json", str(out)]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs[name] = (proc, out)
    runs = {}
    for name, (proc, out) in procs.items():
        try:
            stdout, _ = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, _ = proc.communicate()
        runs[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, stdout, ""), out)
    return runs


@pytest.mark.parametrize("name", SCRIPTS)
def test_smoke_mode_prints_a_table_and_writes_well_formed_json(smoke_runs: dict, name: str) -> None:
    completed, out = smoke_runs[name]
    assert completed.returncode == 0, completed.stdout[-3000:]
    headers = ("| calls |", "| sensitivity |", "| callers |", "| endpoint |")
    assert any(header in completed.stdout for header in headers)
    data = json.loads(out.read_text())
    assert data["benchmark"] == name
    assert data["levels"], "no level was measured"
    for level in data["levels"]:
        missing = [key for key in LEVEL_KEYS[name] if key not in level]
        assert not missing, f"missing {missing}"
        if name == "http_api":
            assert set(level["endpoints"]) == HTTP_ENDPOINTS[level["scenario"]], level.get("errors")
            assert level["unexpected"] == 0, level["answers"]  # every voice webhook admitted, every GET a 200
            assert not level["errors"], level["errors"]
            assert all(e["requests"] > 0 for e in level["endpoints"].values())
        else:
            assert level["completed"] == level["calls"], level.get("errors")
        assert all(math.isfinite(n) for n in _numbers(level))
    if name == "latency":
        assert all(level["turns"] > 0 for level in data["levels"])
    if name == "barge_in":
        assert data["levels"][0]["interrupted_turns"] > 0


def test_local_calls_smoke_breaks_whole_calls_down_per_stage(tmp_path: Path) -> None:
    """Benchmark 5 on whole calls: every answered turn has the caller's measure and the server's breakdown."""
    import providers.local as local_stack

    if not local_stack.installed():
        pytest.skip("the local extra is not installed")
    out = tmp_path / "local_calls.json"
    cmd = [sys.executable, "-m", "scripts.bench.local_calls", "--smoke", "--json", str(out)]
    completed = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-3000:]
    assert "| preemptive | turns | caller p50 |" in completed.stdout
    results = json.loads(out.read_text())["results"]
    assert [r["preemptive"] for r in results] == ["off", "on"]
    for result in results:
        assert result["completed"] == result["calls"] == 1
        assert result["turns"] >= 1 and len(result["rows"]) == result["turns"]
        for row in result["rows"]:
            assert row["caller_ms"] > 0 and row["e2e_latency"] is not None and row["reply"], row
