"""Encryption at rest for secrets the server must use later (provider credentials, Twilio auth tokens).

Fernet (AES-128-CBC + HMAC-SHA256) with the keys of VOICEX_ENCRYPTION_KEY (or its key file): the first, newest
key encrypts, every key decrypts (MultiFernet), so a key is rotated by putting a new one first, running
``voicex admin rotate-key`` (which re-encrypts every stored value with it) and then dropping the old one.
Values are decrypted only in memory, when a call or a provider test needs them, and never returned by the API.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from voicex.platform.errors import VoicexError

_SEPARATORS = re.compile(r"[\s,]+")
_TOKEN_VERSION = 0x80  # the first byte of every Fernet token
_TOKEN_OVERHEAD = 57  # version, timestamp, IV and HMAC: a token is at least this long once decoded


def fernet_keys(value: str) -> list[str]:
    """The Fernet keys in ``value``, newest first (separated by commas or line breaks); ValueError if one is bad."""
    keys = [key for key in _SEPARATORS.split(value) if key]
    if not keys:
        raise ValueError("holds no key (a Fernet key: 32 url-safe base64-encoded bytes)")
    for position, key in enumerate(keys, 1):
        try:
            raw = base64.urlsafe_b64decode(key.encode())
        except (ValueError, binascii.Error):
            raw = b""
        if len(raw) != 32:
            which = "" if len(keys) == 1 else f" (key {position} of {len(keys)})"
            raise ValueError(
                f"must be 32 url-safe base64-encoded bytes (a Fernet key){which}; several keys are comma-separated,"
                " newest first"
            )
    return keys


def looks_encrypted(value: str) -> bool:
    """Whether ``value`` has the shape of a Fernet token (what a walker over raw documents looks for)."""
    if not value.startswith("gAAAAA"):
        return False
    try:
        raw = base64.urlsafe_b64decode(value.encode())
    except (ValueError, binascii.Error):
        return False
    return len(raw) >= _TOKEN_OVERHEAD and raw[0] == _TOKEN_VERSION


class SecretBox:
    """Encrypts with the newest of ``keys`` and decrypts with any of them."""

    def __init__(self, keys: str) -> None:
        fernets = [Fernet(key.encode()) for key in fernet_keys(keys)]
        self._newest = fernets[0]
        self._fernet = MultiFernet(fernets)

    def encrypt(self, value: Any) -> str:
        """Encrypt any JSON-encodable value to an opaque token string."""
        return self._fernet.encrypt(orjson.dumps(value)).decode()

    def decrypt(self, token: str) -> Any:
        try:
            return orjson.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, orjson.JSONDecodeError):
            raise VoicexError("stored secret cannot be decrypted (was VOICEX_ENCRYPTION_KEY changed?)") from None

    def rotate(self, token: str) -> str | None:
        """``token`` re-encrypted with the newest key, or None when it already is; VoicexError if no key opens it."""
        try:
            self._newest.decrypt(token.encode())
            return None
        except InvalidToken:
            pass
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise VoicexError("a stored secret cannot be decrypted by any VOICEX_ENCRYPTION_KEY key") from None
