"""``voicex serve``: run the HTTP server until SIGINT/SIGTERM, then shut everything down within ~5 s."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web

from voicex.app import create_app
from voicex.runtime import Runtime
from voicex.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SEC = 1.5


async def serve(settings: Settings) -> None:
    runtime = await Runtime.start(settings)
    runner = web.AppRunner(create_app(runtime.services), access_log=None, shutdown_timeout=SHUTDOWN_GRACE_SEC)
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
        print(f"Voicex listening on http://{shown_host}:{settings.port}", flush=True)
        if settings.mongodb_uri is None:
            print(f"Data (embedded database, secrets) in {settings.data_dir.resolve()}", flush=True)
        await stop.wait()
        print("Shutting down…", file=sys.stderr, flush=True)
    finally:
        await runner.cleanup()
        await runtime.close()
    log.info("stopped")
