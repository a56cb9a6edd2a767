"""Background janitor: registers this process, renews its heartbeat and its live calls' leases, and finalizes
calls lost by dead processes.

The first pass runs at start-up, so a server restarted after a crash reclaims its predecessor's calls (and
their concurrency slots) at once; later passes catch lease expiries and processes that died elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from voicex.platform.services import SERVICES
from voicex.store.calls import reap_lost_calls
from voicex.store.db import Database
from voicex.store.instances import HEARTBEAT_SEC, heartbeat, retire

log = logging.getLogger(__name__)

INTERVAL_SEC = 15.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _reap_loop(db: Database) -> None:
    recovering = False
    while True:
        try:
            if recovering:
                # While the database was down no live call could renew its lease: after an outage longer
                # than the lease every lease looks expired. One round (longer than the renewal period) lets
                # live calls and processes renew before leases are judged again.
                await db.ping()
                recovering = False
            else:
                reaped = await reap_lost_calls(db, _now())
                if reaped:
                    log.warning("finalized calls lost by a stopped server", extra={"calls": reaped})
        except Exception:  # the database may be down for a moment: try again next round
            log.exception("janitor pass failed")
            recovering = True
        await asyncio.sleep(INTERVAL_SEC)


async def _heartbeat_loop(db: Database) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SEC)
        try:
            await heartbeat(db, _now())
        except Exception:  # a missed beat is harmless while the lease lasts
            log.warning("server heartbeat failed", exc_info=True)


async def janitor_ctx(app: web.Application) -> AsyncIterator[None]:
    svc = app[SERVICES]
    db = svc.db
    try:
        await heartbeat(db, _now())  # registered before any call can carry this process's id
    except Exception:
        log.warning("server registration failed; the heartbeat retries", exc_info=True)
    loops = [_reap_loop(db), _heartbeat_loop(db), svc.leases.run(db)]
    tasks = [asyncio.create_task(loop) for loop in loops]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    with contextlib.suppress(Exception):
        await retire(db, _now())
