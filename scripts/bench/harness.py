"""Benchmark harness: a real ``voicex serve`` process on its own embedded DB, callers in other processes.

The server runs exactly as in production (separate process, real sockets, scripted zero-latency providers so
what is measured is Voicex itself). The harness samples the server's and the callers' CPU and RSS from /proc,
scrapes ``/metrics`` before and after each level, and reads histogram percentiles from the bucket deltas.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from scripts.multiproc import wait_healthy
from scripts.twilio_sim import synthesize
from scripts.twilio_sim.results import percentile
from voicex.platform.embedded_db import EmbeddedMongo, free_port
from voicex.platform.settings import load_settings
from voicex.server.demo import DEMO_ACCOUNT_SID, ensure_demo_tenant
from voicex.server.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
UTTERANCES = ("What time do you open tomorrow?", "Can I book a cleaning next week?")
CLK_TCK = os.sysconf("SC_CLK_TCK")
SILENCE_TIMEOUT_MS = 500  # the agent's silenceTimeoutMs: caller silence that ends a turn


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def with_children(pid: int) -> list[int]:
    """``pid`` and its child processes (a ``voicex serve --workers N`` supervisor's workers)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def system_busy() -> tuple[float, float]:
    """(busy, total) CPU jiffies of the whole machine, to tell how much other work shared the cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Usage:
    """CPU % (of one core) over a window and RSS samples of one process (with its children if ``tree``)."""

    pid: int
    tree: bool = False
    cpu0: float = 0.0
    t0: float = 0.0
    rss: list[float] = field(default_factory=list)
    cpu_pct: float = 0.0

    def pids(self) -> list[int]:
        return with_children(self.pid) if self.tree else [self.pid]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def start(self) -> None:
        self.cpu0, self.t0 = self.cpu(), time.monotonic()

    def sample(self) -> None:
        if (value := sum(rss_mb(pid) for pid in self.pids())) > 0:
            self.rss.append(value)

    def stop(self, cpu_end: float | None = None) -> None:
        end = self.cpu() if cpu_end is None else cpu_end
        self.cpu_pct = 100 * (end - self.cpu0) / max(1e-9, time.monotonic() - self.t0)


def scrape(base_url: str, timeout: float = 10) -> dict[str, Any]:
    """/metrics as {name: value} for plain samples and {name: [(le, count)...]} for histogram buckets."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=timeout) as response:
        text = response.read().decode()
    out: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_bucket"):
                out.setdefault(s.name, []).append((float(s.labels["le"]), s.value))
            elif not s.labels:
                out[s.name] = s.value
    return out


def hist_quantile(before: dict[str, Any], after: dict[str, Any], name: str, q: float) -> float | None:
    """The q-quantile (0..1, seconds) of observations made between two scrapes, interpolated in its bucket."""
    b = dict(before.get(f"{name}_bucket", []))
    buckets = [(le, c - b.get(le, 0.0)) for le, c in after.get(f"{name}_bucket", [])]
    if not buckets or buckets[-1][1] <= 0:
        return None
    target, prev_le, prev_c = q * buckets[-1][1], 0.0, 0.0
    for le, c in buckets:
        if c >= target:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * ((target - prev_c) / max(1e-12, c - prev_c))
        prev_le, prev_c = le, c
    return None


def pcts(values: list[float]) -> dict[str, float | None]:
    return {f"p{q}": percentile(values, q) for q in (50, 95, 99)}


class Bench:
    """One benchmark session: DB + tenant + server process(es); place calls with :meth:`run_calls`."""

    def __init__(self, servers: int = 1, provider: str = "scripted", server_workers: int = 1) -> None:
        """``provider``: ``scripted`` (zero-latency fakes: Voicex's own cost) or ``local`` (the embedded models)."""
        self.tmp = Path(tempfile.mkdtemp(prefix="voicex-bench-"))
        self.db = EmbeddedMongo(self.tmp / "data" / "db", port=free_port())
        self.uri = ""
        self.servers: list[tuple[subprocess.Popen[bytes], str]] = []
        self.n_servers = servers
        self.server_workers = server_workers
        self.api_key = self.token = self.agent_id = ""
        self.clips: list[str] = []
        self.provider = provider
        self.last_calls: list[dict[str, Any]] = []

    async def __aenter__(self) -> Bench:
        self.uri = await asyncio.to_thread(self.db.start)
        await self._tenant()
        self._clips()
        for _ in range(self.n_servers):
            self._start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc, _ in self.servers:
            proc.terminate()
        for proc, _ in self.servers:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        await asyncio.to_thread(self.db.stop)

    @property
    def db_pid(self) -> int:
        """The embedded DB process (its CPU is the benchmark's, so it is reported apart from other procs)."""
        return int(json.loads(self.db.state_path.read_text())["pid"])

    def _settings(self) -> Any:
        return load_settings(data_dir=self.tmp / "data", mongodb_uri=self.uri, enable_scripted_providers=True)

    async def _tenant(self) -> None:
        runtime = await Runtime.start(self._settings())
        try:
            svc = runtime.services
            self.api_key, self.token, agent = await ensure_demo_tenant(svc, self.provider)
            self.agent_id = str(agent["_id"])
            await svc.db.organizations.update_one({"_id": agent["orgId"]}, {"$set": {"planSlug": "enterprise"}})
        finally:
            await runtime.close()
        await self.set_thresholds(  # VAD pinned: the latency correction (caller.vad_hangover_ms) models webrtcvad
            silenceTimeoutMs=SILENCE_TIMEOUT_MS, idleTimeoutMs=60000, maxCallDurationSec=3600, vad="webrtc"
        )

    async def set_thresholds(self, **values: Any) -> None:
        """Override the agent's turn-taking thresholds (read by the server at each call's start)."""
        await self.update_agent({f"thresholds.{k}": v for k, v in values.items()})

    async def update_agent(self, fields: dict[str, Any]) -> None:
        """``$set`` fields of the benchmark's agent (dotted paths allowed); the next call reads them."""
        runtime = await Runtime.start(self._settings())
        try:
            await runtime.services.db.agents.update_one({"demo": True}, {"$set": fields})
        finally:
            await runtime.close()

    def _clips(self) -> None:
        for i, text in enumerate(UTTERANCES):
            path = self.tmp / f"utterance-{i}.wav"
            path.write_bytes(synthesize(text))
            self.clips.append(str(path))

    def _start_server(self) -> None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = os.environ | {
            "VOICEX_HOST": "127.0.0.1",
            "VOICEX_PORT": str(port),
            "VOICEX_PUBLIC_URL": url,
            "VOICEX_DATA_DIR": str(self.tmp / "data"),
            "VOICEX_MONGODB_URI": self.uri,
            "VOICEX_ENABLE_SCRIPTED_PROVIDERS": "true",
            "VOICEX_TWILIO_AUTH_TOKEN": self.token,
            "VOICEX_RATE_LIMIT_IP_PER_MINUTE": "1000000",
            "VOICEX_RATE_LIMIT_PER_MINUTE": "1000000",
            "VOICEX_LOG_LEVEL": "WARNING",
            "VOICEX_WARM_LOCAL_MODELS": str(self.provider == "local").lower(),
            "VOICEX_WORKERS": str(self.server_workers),  # processes behind each server's port (--workers)
        }
        log = open(self.tmp / f"server-{port}.log", "wb")  # lives as long as the process
        proc = subprocess.Popen([sys.executable, "-m", "voicex", "serve"], env=env, cwd=ROOT, stdout=log, stderr=log)
        wait_healthy(url, proc, lambda: (self.tmp / f"server-{port}.log").read_text()[-2000:])
        self.servers.append((proc, url))

    async def run_calls(
        self, n: int, mode: str, duration_s: float, workers: int = 2, stagger_ms: float = 20, **extra: Any
    ) -> dict[str, Any]:
        """Place ``n`` concurrent calls from ``workers`` caller processes; returns calls, usage and metric deltas."""
        workers = max(1, min(workers, n))
        before = [scrape(url) for _, url in self.servers]
        server_use = [Usage(proc.pid, tree=self.server_workers > 1) for proc, _ in self.servers]
        db_use = Usage(self.db_pid)
        for u in [*server_use, db_use]:
            u.start()
        procs, outs = [], []
        busy0, load0 = system_busy(), os.getloadavg()[0]
        for w in range(workers):
            _, url = self.servers[w % len(self.servers)]
            config = {"base_url": url, "api_key": self.api_key, "auth_token": self.token, "agent_id": self.agent_id}
            config["account_sid"] = DEMO_ACCOUNT_SID  # the demo org's stored Twilio account (checked on webhooks)
            config["timeout_s"] = 30.0
            spec = {"config": config, "mode": mode, "duration_s": duration_s, "stagger_ms": stagger_ms}
            spec["silence_timeout_ms"] = SILENCE_TIMEOUT_MS
            spec |= {"clips": self.clips, "indices": list(range(w, n, workers))} | extra
            spec_path, out_path = self.tmp / f"spec-{w}.json", self.tmp / f"out-{w}.json"
            spec_path.write_text(json.dumps(spec))
            cmd = [sys.executable, "-m", "scripts.bench.caller", str(spec_path), str(out_path)]
            procs.append(subprocess.Popen(cmd, cwd=ROOT))  # noqa: ASYNC220 - started once, never awaited on
            outs.append(out_path)
        caller_use = [Usage(p.pid) for p in procs]
        for u in caller_use:
            u.start()
        caller_cpu = [0.0] * len(procs)
        limit = time.monotonic() + duration_s + 120 + n * stagger_ms / 1000
        active_peak, tick = 0.0, 0
        while any(p.poll() is None for p in procs):
            if time.monotonic() > limit:
                for p in procs:
                    p.kill()
                break
            for i, u in enumerate(caller_use):
                u.sample()
                caller_cpu[i] = max(caller_cpu[i], cpu_seconds(u.pid))
            for u in server_use:
                u.sample()
            tick += 1
            if tick % 4 == 0:  # scraping /metrics costs the server CPU: every 2 s is enough for the peak
                try:
                    active = sum(scrape(url).get("voicex_active_calls", 0) for _, url in self.servers)
                    active_peak = max(active_peak, active)
                except OSError:  # a starved server answers late: skip this sample rather than end the run
                    pass
            await asyncio.sleep(0.5)
        for i, u in enumerate(caller_use):
            u.stop(caller_cpu[i])
        for u in [*server_use, db_use]:
            u.stop()
        busy1 = system_busy()
        machine_pct = 100 * os.cpu_count() * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])  # type: ignore[operator]
        calls = [c for path in outs if path.exists() for c in json.loads(path.read_text())]
        self.last_calls = calls  # per call, as the caller workers wrote them
        after = [scrape(url, timeout=90) for _, url in self.servers]  # the level's numbers: wait out a busy server
        stats = self._summarise(n, calls, before, after, server_use, caller_use, active_peak)
        ours = stats["server_cpu_pct"] + stats["caller_cpu_pct"] + db_use.cpu_pct
        stats |= {"machine_cpu_pct": machine_pct, "other_cpu_pct": max(0.0, machine_pct - ours), "load_avg_1m": load0}
        stats["db_cpu_pct"] = db_use.cpu_pct  # the benchmark's own DB process: not part of "other"
        return stats

    def _summarise(
        self,
        n: int,
        calls: list[dict],
        before: list[dict],
        after: list[dict],
        server_use: list[Usage],
        caller_use: list[Usage],
        active_peak: float,
    ) -> dict[str, Any]:
        def q(name: str, p: float) -> float | None:
            values = [v for b, a in zip(before, after, strict=True) if (v := hist_quantile(b, a, name, p)) is not None]
            return None if not values else max(values) * 1000

        latencies = [v for c in calls for v in c["latencies_ms"]]
        return {
            "calls": n,
            "completed": sum(1 for c in calls if c["outcome"] == "completed"),
            "errors": [c["error"] for c in calls if c["outcome"] != "completed"][:5],
            "active_peak": active_peak,
            "turns": len(latencies),
            "latency_ms": pcts(latencies),
            "added_latency_ms": pcts([v - SILENCE_TIMEOUT_MS for v in latencies]),
            "code_added_ms": pcts([v - SILENCE_TIMEOUT_MS for c in calls for v in c["from_detector_end_ms"]]),
            "barge_in_ms": pcts([v for c in calls for v in c["barge_ins_ms"]]),
            "interrupted_turns": sum(c["interrupted_turns"] for c in calls),
            "underruns": sum(c["underruns"] for c in calls),
            "worst_gap_ms": max((c["worst_gap_ms"] for c in calls), default=0.0),
            "violations": sum(c["violations"] for c in calls),
            "caller_max_send_lag_ms": max((c["max_send_lag_ms"] for c in calls), default=0.0),
            "frame_p99_ms": q("voicex_media_frame_handling_seconds", 0.99),
            "frame_p50_ms": q("voicex_media_frame_handling_seconds", 0.50),
            "loop_lag_p99_ms": q("voicex_event_loop_lag_seconds", 0.99),
            "server_e2e_p50_ms": q("voicex_turn_e2e_latency_seconds", 0.50),
            "server_cpu_pct": sum(u.cpu_pct for u in server_use),
            "server_rss_mb": sum(max(u.rss, default=0.0) for u in server_use),
            "caller_cpu_pct": sum(u.cpu_pct for u in caller_use),
            "caller_processes": len(caller_use),
        }


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (so the output pastes straight into docs/performance.md)."""
    cells = [[fmt(v, 1) for v in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def write_json(path: str | None, data: Any) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2))
