"""X-Twilio-Signature checks (shared/TWILIO.md §3): over the public URL Twilio requested, byte-exact.

Behind a TLS-terminating proxy aiohttp sees ``http://`` and may re-encode the query, so the URL is rebuilt
from VOICEX_PUBLIC_URL plus ``request.raw_path`` (path and undecoded query). WebSocket upgrades are signed
over the ``wss://`` URL with no params; Twilio suggests also trying a trailing ``/``.
"""

from __future__ import annotations

from typing import Any

from twilio.request_validator import RequestValidator


def public_request_url(public_url: str, raw_path: str) -> str:
    return public_url.rstrip("/") + raw_path


def valid_webhook(token: str, url: str, params: Any, signature: str | None) -> bool:
    """``params``: the decoded form as a MultiDict (every field, empty ones included)."""
    if not signature:
        return False
    return bool(RequestValidator(token).validate(url, params, signature))


def valid_upgrade(token: str, ws_url: str, signature: str | None) -> bool:
    if not signature:
        return False
    validator = RequestValidator(token)
    candidates = {ws_url, ws_url.rstrip("/") + "/", ws_url.rstrip("/")}
    return any(validator.validate(candidate, {}, signature) for candidate in candidates)
