"""A Media Stream client on a bare socket, for the limit tests.

aiohttp's client always reads what the server sends; this one reads only when asked, so a test can play a
caller whose socket stops draining (small receive buffer, no reads), send frames of any size, or send nothing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import socket
from typing import Any
from urllib.parse import quote

import orjson

from scripts.twilio_sim import sign
from tests.telephony import AUTH_TOKEN, stream_path

SILENCE_ULAW = b"\xff" * 160


def start_message(custom: dict[str, str], stream_sid: str = "MZ" + "5" * 32) -> dict[str, Any]:
    return {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": stream_sid,
        "start": {
            "accountSid": "AC" + "0" * 32,
            "streamSid": stream_sid,
            "callSid": "CA" + "5" * 32,
            "tracks": ["inbound"],
            "customParameters": custom,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }


def media_message(chunk: int, stream_sid: str = "MZ" + "5" * 32) -> dict[str, Any]:
    payload = base64.b64encode(SILENCE_ULAW).decode()
    media = {"track": "inbound", "chunk": str(chunk), "timestamp": str(chunk * 20), "payload": payload}
    return {"event": "media", "sequenceNumber": str(chunk + 1), "streamSid": stream_sid, "media": media}


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One final, masked frame (clients must mask)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, 0x80 | size])
    elif size < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
    return head + mask + bytes(b ^ m for b, m in zip(payload, itertools.cycle(mask), strict=False))


class RawStream:
    """One WebSocket to a call's ``/api/twilio/stream/{callId}/{token}``; signs the upgrade like Twilio does."""

    def __init__(self, port: int, params: dict[str, str], receive_buffer: int | None = None) -> None:
        self.port = port
        self.path = stream_path(params)
        self.receive_buffer = receive_buffer
        self.sock: socket.socket | None = None

    async def open(self) -> None:
        head = await self.upgrade()
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))

    async def upgrade(self, signature: str | None = None) -> bytes:
        """Send the upgrade request (signed over this URL unless ``signature``); the answer's status and headers."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.receive_buffer is not None:  # before connect, so the advertised window stays small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", self.port))
        self.sock = sock
        path = quote(self.path, safe="/.")  # as a client sends it: non-ASCII percent-encoded
        url = f"ws://127.0.0.1:{self.port}{path}"
        key = base64.b64encode(os.urandom(16)).decode()
        signature = sign(AUTH_TOKEN, url) if signature is None else signature
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"User-Agent: Twilio.TmeWs/1.0\r\nX-Twilio-Signature: {signature}\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):  # byte by byte: nothing after the handshake is read
            byte = await loop.sock_recv(sock, 1)
            if not byte:
                raise ConnectionError("closed during the handshake")
            head += byte
        return head

    async def send_raw(self, frame: bytes) -> None:
        assert self.sock is not None
        await asyncio.get_running_loop().sock_sendall(self.sock, frame)

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send_raw(client_frame(orjson.dumps(message)))

    async def read_until_closed(self, timeout: float) -> bytes:
        """Everything the server sends until it closes the connection (TimeoutError if it never does).

        Answers the server's close frame, as a WebSocket client should.
        """
        assert self.sock is not None
        loop = asyncio.get_running_loop()
        received = b""
        answered = False
        async with asyncio.timeout(timeout):
            while True:
                try:
                    chunk = await loop.sock_recv(self.sock, 65536)
                except ConnectionResetError:
                    return received
                if not chunk:
                    return received
                received += chunk
                closing = [payload for opcode, payload in server_frames(received) if opcode == 0x8]
                if closing and not answered:
                    answered = True
                    with contextlib.suppress(OSError):
                        await self.send_raw(client_frame(closing[0][:2], opcode=0x8))

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split what the server sent (unmasked frames) into (opcode, payload); a cut-off last frame is dropped."""
    frames: list[tuple[int, bytes]] = []
    at = 0
    while at + 2 <= len(data):
        opcode, size = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if size == 126:
            size, at = int.from_bytes(data[at : at + 2], "big"), at + 2
        elif size == 127:
            size, at = int.from_bytes(data[at : at + 8], "big"), at + 8
        if at + size > len(data):
            break
        frames.append((opcode, data[at : at + size]))
        at += size
    return frames
