"""Short-lived stream tokens: the webhook puts one in the stream URL's path, checked before the upgrade.

``<callId>.<expiry>.<hmac>`` signed with a key derived from the JWT secret. Single use is enforced in the
database (the call record's ``streamTokenUsed`` flips once, at the upgrade), so a token cannot open a second
stream. A call's token is a function of the call (its expiry counts from the call id's creation second), so a
retried voice webhook is answered with the same TwiML, byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from bson import ObjectId

TOKEN_LIFETIME_SEC = 60


def _key(secret: str) -> bytes:
    return hashlib.sha256(b"voicex-stream-token:" + secret.encode()).digest()


def _mac(secret: str, call_id: str, expiry: int) -> str:
    return hmac.new(_key(secret), f"{call_id}.{expiry}".encode(), hashlib.sha256).hexdigest()


def issue(secret: str, call_id: str, now: float | None = None) -> str:
    expiry = int((now if now is not None else time.time()) + TOKEN_LIFETIME_SEC)
    return f"{call_id}.{expiry}.{_mac(secret, call_id, expiry)}"


def for_call(secret: str, call_id: ObjectId) -> str:
    """The call's one token: the same every time it is asked for (valid TOKEN_LIFETIME_SEC after admission)."""
    return issue(secret, str(call_id), now=call_id.generation_time.timestamp())


def verify(secret: str, token: str, call_id: str, now: float | None = None) -> str | None:
    """None when the token is good for ``call_id``; otherwise why it is not."""
    parts = token.split(".")
    # isdigit() alone accepts "²" and other Unicode digits, which int() then refuses.
    if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()) or len(parts[1]) > 12:
        return "malformed token"
    token_call, expiry_text, mac = parts
    if token_call != call_id:
        return "token is for another call"
    if not hmac.compare_digest(mac, _mac(secret, call_id, int(expiry_text))):
        return "bad token signature"
    if int(expiry_text) < (now if now is not None else time.time()):
        return "token expired"
    return None
