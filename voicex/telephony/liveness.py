"""Bounded ends for a Media Stream socket: an idle watchdog, and a close that never waits on a dead peer.

Twilio sends a media frame every 20 ms for the whole call, so a socket that carries no message for seconds is a
dead line whose call would otherwise hold its concurrency slot forever (the lease is renewed while the handler
lives). And a peer that stops reading fills the send buffers: a polite close handshake then waits behind them
forever, so past a bound the connection is dropped instead. Both need the send side to notice a peer that
stopped reading: Linux grows a loopback or LAN socket's send buffer to 4 MiB, minutes of call audio, so the
buffers of a stream are kept to a few seconds of audio (the stream itself needs ~12 KB/s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_SEC = 3.0
SEND_BUFFER_BYTES = 16 * 1024  # per layer: the WebSocket writer, the transport, the kernel (which doubles it)


def bound_send_buffers(transport: asyncio.BaseTransport | None) -> None:
    """Keep a stream's unsent audio to seconds, so a blocked send (see sink.py) means the peer stopped reading."""
    if not isinstance(transport, asyncio.WriteTransport):
        return
    transport.set_write_buffer_limits(high=SEND_BUFFER_BYTES)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        except OSError:  # not a TCP socket (tests may use others): the send timeout still applies, later
            log.debug("could not bound the stream's send buffer")


async def watch_idle(last_heard: Callable[[], float], idle_sec: float, on_idle: Callable[[], None]) -> None:
    """Call ``on_idle`` once nothing was heard for ``idle_sec`` (loop time); one timer per period, not per frame."""
    loop = asyncio.get_running_loop()
    while True:
        quiet = loop.time() - last_heard()
        if quiet >= idle_sec:
            log.warning("media stream idle: ending the call", extra={"idleSec": round(quiet, 1)})
            on_idle()
            return
        await asyncio.sleep(idle_sec - quiet)


async def close_socket(ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None, polite: bool = True) -> None:
    """Close the WebSocket within CLOSE_TIMEOUT_SEC; drop the TCP connection if the peer is not reading.

    ``polite=False`` skips the close handshake (the peer already failed to read our sends).
    """
    if polite and not ws.closed:
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT_SEC)
    if transport is None or (transport.is_closing() and not _unsent(transport)):
        return
    log.warning("media stream peer is not reading: dropping the connection")
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    else:
        transport.close()


def _unsent(transport: asyncio.BaseTransport) -> int:
    size = getattr(transport, "get_write_buffer_size", None)
    return int(size()) if size is not None else 0
