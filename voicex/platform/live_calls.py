"""The calls this process is running, and whether it is draining (no new calls; the running ones finish).

A deploy, a restart or an autoscaler's scale-in sends SIGTERM; hanging up on every caller mid-sentence is not
acceptable, so the process first stops admitting calls (readiness answers 503 ``draining``, webhooks hand calls
elsewhere), waits for the running ones to end on their own, and only then ends the rest politely (docs/deployment.md,
"Restarts and deploys"). The registry lives with the foundations so the call runner registers in it and the health
and telephony floors read it, without either importing the other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from typing import Protocol


class EndableCall(Protocol):
    """A running call the process can end: its agent says a closing line, it is heard, the call hangs up."""

    async def end_politely(self) -> None: ...

    async def end_now(self) -> None:
        """End at once, without a closing line (the server is stopping now); the call is still finalized."""


class LiveCalls:
    """Process-wide: the running calls by id, and the drain state."""

    def __init__(self) -> None:
        self._calls: dict[Hashable, EndableCall] = {}
        self._empty = asyncio.Event()
        self._empty.set()
        self.draining_since: float | None = None  # time.monotonic() when the drain began
        self.drain_begun = asyncio.Event()  # `voicex serve` waits on it, then drains and exits

    @property
    def draining(self) -> bool:
        return self.draining_since is not None

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, call_id: Hashable, call: EndableCall) -> None:
        self._calls[call_id] = call
        self._empty.clear()

    def discard(self, call_id: Hashable) -> None:
        self._calls.pop(call_id, None)
        if not self._calls:
            self._empty.set()

    def begin_drain(self) -> bool:
        """Stop admitting calls from now on; False if a drain had already begun."""
        if self.draining_since is not None:
            return False
        self.draining_since = time.monotonic()
        self.drain_begun.set()
        return True

    async def wait_empty(self, timeout: float) -> bool:
        """Wait until no call runs (True) or ``timeout`` seconds passed (False)."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def end_all(self, timeout: float, ended_timeout: float = 10.0) -> int:
        """End every running call politely, all at once, within ``timeout``; then wait up to ``ended_timeout`` for
        their records; how many were still running."""
        calls = list(self._calls.values())
        if calls:
            ending = [asyncio.create_task(call.end_politely()) for call in calls]
            await asyncio.wait(ending, timeout=timeout)
            for task in ending:
                task.cancel()
            await asyncio.gather(*ending, return_exceptions=True)
        await self.wait_empty(ended_timeout)
        return len(self._calls)

    async def stop_all(self, timeout: float) -> int:
        """End every running call at once; how many were still running after ``timeout``."""
        for call in list(self._calls.values()):
            await call.end_now()
        await self.wait_empty(timeout)
        return len(self._calls)
