"""Writing to the client WebSocket without a coroutine per message, for the simulator's hot paths."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import aiohttp
from aiohttp import WSMsgType

WIRE_ERRORS = (aiohttp.ClientError, ConnectionError, RuntimeError)


def resolve(future: asyncio.Future[None]) -> None:
    """Wake ``future``'s waiter (a timer or an event may both try)."""
    if not future.done():
        future.set_result(None)


def write_text(ws: aiohttp.ClientWebSocketResponse, data: bytes) -> Coroutine[Any, Any, None] | None:
    """Send ``data`` as a text frame by running aiohttp's send to its first suspension, here and now.

    The frame is on the transport when this returns. None: the send is complete (the usual case when the socket's
    buffer was empty). Otherwise a coroutine that finishes the send (it waits for the socket to drain), to await.
    """
    coro = ws.send_frame(data, WSMsgType.TEXT)
    try:
        waiting_for = coro.send(None)
    except StopIteration:
        return None
    return _drive(coro, waiting_for)


async def _drive(coro: Coroutine[Any, Any, None], waiting_for: Any) -> None:
    """Run a send coroutine to its end after a step of it suspended on ``waiting_for``."""
    try:
        while True:
            await asyncio.wait((waiting_for,))
            try:
                waiting_for = coro.send(None)
            except StopIteration:
                return
    except WIRE_ERRORS:
        return  # the next send or the receiver reports the broken socket
    finally:
        coro.close()
