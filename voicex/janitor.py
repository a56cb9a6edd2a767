"""Background janitor: finalizes calls whose process died (lease expired) at start-up and periodically."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from voicex.call_records import reap_lost_calls
from voicex.context import SERVICES

log = logging.getLogger(__name__)

INTERVAL_SEC = 15.0


async def _loop(app: web.Application) -> None:
    db = app[SERVICES].db
    while True:
        try:
            reaped = await reap_lost_calls(db, dt.datetime.now(dt.UTC))
            if reaped:
                log.warning("finalized calls lost by a stopped server", extra={"calls": reaped})
        except Exception:  # the database may be down for a moment: try again next round
            log.exception("janitor pass failed")
        await asyncio.sleep(INTERVAL_SEC)


async def janitor_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_loop(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
