"""Encryption at rest for secrets the server must use later (provider credentials, Twilio auth tokens).

Fernet (AES-128-CBC + HMAC-SHA256) with the key from VOICEX_ENCRYPTION_KEY; values are decrypted only
in memory, when a call or a provider test needs them, and never returned by the API.
"""

from __future__ import annotations

from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from voicex.platform.errors import VoicexError


class SecretBox:
    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def encrypt(self, value: Any) -> str:
        """Encrypt any JSON-encodable value to an opaque token string."""
        return self._fernet.encrypt(orjson.dumps(value)).decode()

    def decrypt(self, token: str) -> Any:
        try:
            return orjson.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, orjson.JSONDecodeError):
            raise VoicexError("stored secret cannot be decrypted (was VOICEX_ENCRYPTION_KEY changed?)") from None
