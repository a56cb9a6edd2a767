"""How ``voicex serve`` stops: drain first (no new calls, running calls finish), then end the rest politely.

1. A drain begins on the first SIGTERM/SIGINT or ``POST /api/admin/drain``: ``/api/ready`` answers 503
   ``draining`` at once (the load balancer stops routing here) and voice webhooks are handed to another instance
   (``VOICEX_DRAIN_REDIRECT_URL``) or told, in speech, to call back.
2. Running calls go on until they end on their own, for up to ``VOICEX_DRAIN_TIMEOUT_SEC``.
3. Calls still running then are ended politely: the agent says its closing line, it is heard, the call hangs up.
4. A second signal during the drain stops at once: every call is ended without a closing line and finalized
   as ``server_shutdown``.

Every call is finalized (its record says how it ended) before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from voicex.platform.services import Services

log = logging.getLogger(__name__)
T = TypeVar("T")

POLITE_END_SEC = 30.0  # closing lines are short: said and heard well within this
ENDED_SEC = 10.0  # then the politely ended calls' records are written within this
HARD_STOP_SEC = 10.0  # after a second signal: the calls' records are written within this
# Longest a stop takes beyond VOICEX_DRAIN_TIMEOUT_SEC (plus serve.py's 15 s for embedded-model jobs): the margin a
# service manager's kill timeout needs (compose.yaml, deploy/kubernetes/deployment.yaml, docs/deployment.md).
AFTER_TIMEOUT_SEC = POLITE_END_SEC + ENDED_SEC + HARD_STOP_SEC + 15.0  # 15: serve.DRAIN_LOCAL_SEC


async def drain(svc: Services, hard_stop: asyncio.Event) -> None:
    """Run steps 2–4 above once a drain has begun; returns when no call is left (or after the hard stop)."""
    svc.metrics.draining.set(1)
    timeout = svc.settings.drain_timeout_sec
    log.warning("draining: no new calls", extra={"calls": len(svc.live), "timeoutSec": timeout})
    ended = await _unless(svc.live.wait_empty(timeout), hard_stop)
    if ended:
        log.info("drained: every call ended on its own")
        return
    if ended is not None:
        log.warning("drain timeout: ending the remaining calls with a closing line", extra={"calls": len(svc.live)})
        left = await _unless(svc.live.end_all(POLITE_END_SEC, ENDED_SEC), hard_stop)
        if left == 0:
            return
    log.warning("stopping now: ending every call", extra={"calls": len(svc.live)})
    left = await svc.live.stop_all(HARD_STOP_SEC)
    if left:
        log.error("calls still running at exit; another server's janitor finalizes them", extra={"calls": left})


async def _unless(work: Coroutine[Any, Any, T], hard_stop: asyncio.Event) -> T | None:
    """``work``'s result, or None if ``hard_stop`` is set first (``work`` is then cancelled)."""
    task = asyncio.create_task(work)
    stopper = asyncio.create_task(hard_stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, stopper, return_exceptions=True)
    return None
