"""X-Twilio-Signature checks (docs/twilio-protocol.md §3): over the public URL Twilio requested, byte-exact.

Behind a TLS-terminating proxy aiohttp sees ``http://`` and may re-encode the query, so the URL is rebuilt
from VOICEX_PUBLIC_URL plus ``request.raw_path`` (path and undecoded query). WebSocket upgrades are signed
over the ``wss://`` URL with no params; Twilio suggests also trying a trailing ``/``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from twilio.request_validator import RequestValidator

_DEFAULT_PORTS = {"http": 80, "https": 443}


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


def _netloc(scheme: str, host: str) -> str:
    """``host[:port]`` without the scheme's default port, lower-cased, for comparing hosts."""
    host = host.strip().lower()
    default = _DEFAULT_PORTS.get(scheme)
    return host.removesuffix(f":{default}") if default else host


_API_KEY_IN_QUERY = re.compile(r"(api_key=vx_[0-9a-f]{8})[0-9a-f]+")


def redacted(url: str) -> str:
    """``url`` fit for a log line: an API key in the query keeps only its display prefix (``vx_`` + 8 hex)."""
    return _API_KEY_IN_QUERY.sub(r"\1…", url)


def public_url_hints(public_url: str | None, checked_url: str, headers: Mapping[str, str]) -> list[str]:
    """What in VOICEX_PUBLIC_URL looks wrong for a request whose signature did not match ``checked_url``.

    The proxy's forwarding headers (or the Host header) say where Twilio really sent the request; the usual
    causes are the scheme (http behind TLS), the host, and a path prefix the proxy strips (docs/twilio-protocol.md §3).
    """
    hints: list[str] = []
    checked = urlsplit(checked_url)
    scheme = {"ws": "http", "wss": "https"}.get(checked.scheme, checked.scheme)  # an upgrade's public scheme
    if not public_url:
        hints.append(f"VOICEX_PUBLIC_URL is not set: the signature was checked against {scheme}://{checked.netloc}")
    proto = headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    if proto and proto != scheme:
        hints.append(f"the request reached the proxy over {proto}, but VOICEX_PUBLIC_URL uses {scheme}")
    host = (headers.get("X-Forwarded-Host") or headers.get("Host") or "").split(",")[0]
    if host and _netloc(proto or scheme, host) != _netloc(scheme, checked.netloc):
        hints.append(f"the request was for host {host}, but VOICEX_PUBLIC_URL names {checked.netloc}")
    prefix = headers.get("X-Forwarded-Prefix", "").rstrip("/")
    if prefix and not checked.path.startswith(prefix + "/"):
        hints.append(f"the proxy stripped the path prefix {prefix}: add it to VOICEX_PUBLIC_URL")
    if not hints:
        hints.append(
            "if a proxy strips a path prefix, add it to VOICEX_PUBLIC_URL; the Auth Token must be the account's"
            " primary token (the organization's stored one, else VOICEX_TWILIO_AUTH_TOKEN)"
        )
    return hints
