"""Event-loop lag monitor: a task that sleeps a fixed interval and records how late it wakes up.

Every coroutine on the loop (each call's frames, marks and playout) waits behind whatever is running, so the
overshoot of a cheap periodic sleep is the delay any call's audio handling sees. Always on; costs ~10 wakes/s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import Histogram

from voicex.platform.services import SERVICES

INTERVAL_SEC = 0.1


async def monitor(histogram: Histogram, interval: float = INTERVAL_SEC) -> None:
    """Sleep ``interval`` forever; record each wake-up's lateness (seconds) in ``histogram``."""
    loop = asyncio.get_running_loop()
    record = histogram.observe
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        record(max(0.0, loop.time() - due))


async def loop_lag_ctx(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: run the monitor for the app's lifetime."""
    task = asyncio.create_task(monitor(app[SERVICES].metrics.loop_lag), name="voicex-loop-lag")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
