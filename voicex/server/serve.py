"""``voicex serve``: run the HTTP server until SIGINT/SIGTERM, drain its calls (voicex/server/drain.py), stop."""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import logging
import os
import signal
import sys
from collections.abc import Callable

from aiohttp import web

import voicex.platform.gc_tuning as gc_tuning
from voicex.platform.errors import SettingsError, SetupError
from voicex.platform.live_calls import LiveCalls
from voicex.platform.settings import Settings
from voicex.server.app import create_app
from voicex.server.drain import drain
from voicex.server.runtime import Runtime
from voicex.server.warmup import warm_local_models

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SEC = 1.5
DRAIN_LOCAL_SEC = 15.0  # a model load takes ~1 s here; a generation stops within a token once its call ended


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop VOICEX_EVENT_LOOP asks for; None means asyncio's own.

    uvloop's socket and callback machinery is C (libuv), which may lower the per-message cost of hundreds of
    Media Streams in one process. ``auto`` uses it where it is installed; ``asyncio`` never does.
    """
    if choice == "asyncio":
        return None
    if importlib.util.find_spec("uvloop") is None:
        if choice == "uvloop":
            raise SettingsError("VOICEX_EVENT_LOOP=uvloop but uvloop is not installed (pip install uvloop)")
        return None
    import uvloop

    return uvloop.new_event_loop


def run(settings: Settings) -> None:
    """``voicex serve`` on the configured event loop (``asyncio.run`` semantics: the loop is closed after)."""
    factory = loop_factory(settings.event_loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(settings))


def listen_error(host: str, port: int, exc: OSError) -> SetupError:
    """Why ``voicex serve`` cannot listen, naming the setting to change (the OSError alone says little)."""
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return SetupError(
            f"cannot listen on {where}: the port is already in use (another `voicex serve`, or another program)."
            " Stop it, or choose a free port with VOICEX_PORT or --port."
        )
    if exc.errno == errno.EACCES:
        return SetupError(
            f"cannot listen on {where}: permission denied (ports below 1024 need privileges)."
            " Choose a port above 1023 with VOICEX_PORT or --port."
        )
    return SetupError(
        f"cannot listen on {where}: {exc.strerror or exc}. VOICEX_HOST (--host) must be an address of this machine"
        " (0.0.0.0: all of them) and VOICEX_PORT (--port) a free port."
    )


async def serve(settings: Settings) -> None:
    runtime = await Runtime.start(settings)
    runner = web.AppRunner(create_app(runtime.services), access_log=None, shutdown_timeout=SHUTDOWN_GRACE_SEC)
    warming: asyncio.Task[None] | None = None
    orphaned: asyncio.Task[None] | None = None
    try:
        await runner.setup()
        worker = settings.worker_id is not None  # one of `voicex serve --workers N`'s: the port is shared
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=worker or None)
        try:
            await site.start()
        except OSError as exc:
            raise listen_error(settings.host, settings.port, exc) from exc
        gc_tuning.settle()
        warming = warm_local_models(settings, runtime.services.db)
        live = runtime.services.live
        hard_stop = asyncio.Event()
        signals: list[int] = []
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, _on_signal, live, hard_stop, signals)
        log.info("event loop", extra={"loop": f"{type(loop).__module__}.{type(loop).__name__}"})
        if worker:
            orphaned = asyncio.create_task(_drain_if_orphaned(live))
        else:
            _banner(settings)
        await live.drain_begun.wait()
        if not worker:
            print(
                f"Draining: no new calls; {len(live)} running (up to {settings.drain_timeout_sec:g} s)."
                " Press Ctrl+C again to stop now.",
                file=sys.stderr,
                flush=True,
            )
        await drain(runtime.services, hard_stop)
        if not worker:
            print("Shutting down…", file=sys.stderr, flush=True)
    finally:
        if orphaned is not None:
            orphaned.cancel()
        if warming is not None:
            warming.cancel()  # models not yet loading are dropped; one already loading finishes below
        await runner.cleanup()
        await runtime.close()
        await _drain_local_models()
    log.info("stopped")


def _banner(settings: Settings) -> None:
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"Voicex listening on http://{shown_host}:{settings.port}", flush=True)
    if settings.mongodb_uri is None:
        print(f"Data (embedded database, secrets) in {settings.data_dir.resolve()}", flush=True)


async def _drain_if_orphaned(live: LiveCalls) -> None:
    """A worker whose supervisor died (kill -9) drains and exits rather than run on unsupervised."""
    parent = os.getppid()
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            break
    log.error("the supervisor is gone: draining")
    live.begin_drain()


def _on_signal(live: LiveCalls, hard_stop: asyncio.Event, signals: list[int]) -> None:
    """The first SIGTERM/SIGINT drains (a drain begun over HTTP, e.g. by a preStop hook, goes on); a second stops
    at once."""
    signals.append(1)
    if len(signals) == 1:
        live.begin_drain()
    else:
        hard_stop.set()


async def _drain_local_models() -> None:
    """Let embedded-model jobs still running (a warm-up, a reply being cancelled) finish before the process exits:
    native code running in a daemon thread while the interpreter shuts down can crash it (a segfault on Ctrl+C)."""
    if "providers.local.pool" not in sys.modules:
        return
    from providers.local.pool import drain

    if not await asyncio.to_thread(drain, DRAIN_LOCAL_SEC):
        log.warning("embedded models still busy at exit", extra={"waitedSec": DRAIN_LOCAL_SEC})
