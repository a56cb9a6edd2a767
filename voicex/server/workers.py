"""``voicex serve --workers N``: N server processes on one port, so one machine's every core takes calls.

A call lives on the event loop of the process that took its Media Stream, so one process uses one core. This
supervisor does the process-wide work once (the embedded database, secrets, indexes, the catalog's providers, the
agent migration: :meth:`Runtime.start`), then runs N ``voicex serve`` workers bound to the same port with
``SO_REUSEPORT`` (Linux spreads new connections over them) on the same database. A stream may reach any worker:
it carries its call id and token, and leases and slots live in the database.

Signals: the first SIGTERM/SIGINT is passed on, and every worker drains (voicex/server/drain.py); a second one is
passed on too, and they stop at once. ``POST /api/admin/drain`` reaches one worker; when it has drained and exited,
the others are drained too. A worker that dies while not draining is restarted; the others and their
calls are untouched (the dead worker's calls are finalized by the janitor as ``server_lost``). The workers are in
sessions of their own (a terminal's Ctrl+C reaches only the supervisor, which passes it on once), and drain if
the supervisor disappears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from voicex.platform.settings import Settings
from voicex.server.runtime import Runtime

log = logging.getLogger(__name__)

SETUP_FAILURE = 2  # a worker exiting with this code found a configuration error: restarting it would not help
RESTART_BACKOFF_SEC = (1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_AFTER_SEC = 60.0  # a worker up this long resets its restart backoff


def worker_count(settings: Settings) -> int:
    """VOICEX_WORKERS (``--workers``), 0 meaning one per core the process may use."""
    if settings.workers:
        return settings.workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    restarts: int = 0
    exits: list[int] = field(default_factory=list)


async def supervise(settings: Settings, count: int) -> int:
    """Run ``count`` workers until a signal drains them all; the exit status for ``voicex serve``."""
    check_port(settings)
    reserved = reserve_port(settings)  # until a worker listens: nothing else (the embedded DB) may take the port
    try:
        runtime = await Runtime.start(settings)
    except BaseException:
        reserved.close()
        raise
    metrics_dir = Path(tempfile.mkdtemp(prefix="voicex-metrics-"))  # private (0700): the workers' /metrics
    try:
        env = worker_env(settings, runtime) | {"VOICEX_METRICS_DIR": str(metrics_dir)}
        workers = [Worker(index) for index in range(count)]
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, _pass_on, workers, stopping)
        for worker in workers:
            await _spawn(worker, env)
        await _until_listening(settings, workers)
        reserved.close()
        shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
        print(f"Voicex listening on http://{shown_host}:{settings.port} ({count} workers)", flush=True)
        if settings.mongodb_uri is None:
            print(f"Data (embedded database, secrets) in {settings.data_dir.resolve()}", flush=True)
        status = await asyncio.gather(*(_keep_running(worker, workers, env, stopping) for worker in workers))
        return SETUP_FAILURE if SETUP_FAILURE in status else 0
    finally:
        reserved.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        await runtime.close()


def check_port(settings: Settings) -> None:
    """Fail as a single server would (exit 2, naming the setting) if the port cannot be had."""
    from voicex.server.serve import listen_error

    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.port))
        except OSError as exc:
            raise listen_error(settings.host, settings.port, exc) from exc


async def _until_listening(settings: Settings, workers: list[Worker], limit_s: float = 120.0) -> None:
    """Until the port accepts connections (a worker is serving), so the banner is true when it is printed."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.host, settings.host)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and all(w.process is None or w.process.returncode is None for w in workers):
        try:
            _, writer = await asyncio.open_connection(host, settings.port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return


def reserve_port(settings: Settings) -> socket.socket:
    """Hold the port (bound with SO_REUSEPORT, not listening: the workers join it, no connection lands on it)."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((settings.host, settings.port))
    return holder


def worker_env(settings: Settings, runtime: Runtime) -> dict[str, str]:
    """The workers' environment: this one, on the database just started, the address given on the command line."""
    env = dict(os.environ)
    env |= {"VOICEX_HOST": settings.host, "VOICEX_PORT": str(settings.port), "VOICEX_WORKERS": "1"}
    if runtime.embedded is not None:
        env["VOICEX_MONGODB_URI"] = runtime.embedded.uri  # every worker on the one embedded database
        env["VOICEX_DATA_DIR"] = str(settings.data_dir.resolve())  # its secrets, whatever the worker's folder
    return env


async def _spawn(worker: Worker, env: dict[str, str]) -> None:
    worker.process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voicex",
        "serve",
        env=env | {"VOICEX_WORKER_ID": str(worker.index)},
        start_new_session=True,
        stdin=asyncio.subprocess.DEVNULL,
    )
    worker.started = time.monotonic()
    log.info("worker started", extra={"worker": worker.index, "pid": worker.process.pid})


async def _keep_running(worker: Worker, workers: list[Worker], env: dict[str, str], stopping: asyncio.Event) -> int:
    """Wait for the worker's exit; restart it unless the server is stopping or it cannot start at all."""
    while True:
        assert worker.process is not None
        code = await worker.process.wait()
        worker.exits.append(code)
        if stopping.is_set():
            return code
        if code == 0:  # it drained on request (POST /api/admin/drain reaches one worker): the server drains
            log.warning("a worker was drained over HTTP: draining the others", extra={"worker": worker.index})
            stopping.set()
            _signal_all(workers, signal.SIGTERM)
            return code
        uptime = time.monotonic() - worker.started
        if code == SETUP_FAILURE and uptime < STABLE_AFTER_SEC:
            log.error("a worker cannot start (its error is above); stopping the others", extra={"worker": worker.index})
            stopping.set()
            _signal_all(workers, signal.SIGTERM)
            return code
        if uptime >= STABLE_AFTER_SEC:
            worker.restarts = 0
        delay = RESTART_BACKOFF_SEC[min(worker.restarts, len(RESTART_BACKOFF_SEC) - 1)]
        worker.restarts += 1
        log.error(
            "worker died; restarting it (the other workers' calls go on)",
            extra={"worker": worker.index, "exitCode": code, "restartInSec": delay},
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
        if stopping.is_set():
            return code
        await _spawn(worker, env)


def _pass_on(workers: list[Worker], stopping: asyncio.Event) -> None:
    """A signal: every worker drains (the first) or stops now (a second)."""
    stopping.set()
    _signal_all(workers, signal.SIGTERM)


def _signal_all(workers: list[Worker], signum: int) -> None:
    for worker in workers:
        if worker.process is not None and worker.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signum)
