"""HTTP and WebSocket clients that obey an :class:`~providers.egress.EgressPolicy` and pin what it checked.

Each request's destination is checked by the policy, then the request goes to the checked *address*: its URL's
host becomes that address while the Host header and the TLS server name (httpx's ``sni_hostname``) stay the
host name, so certificates are verified as usual and no second DNS lookup can send the connection elsewhere.
A client pins each (scheme, host, port) once and keeps it for its life (one call, or one provider test).
Redirects are never followed: a 3xx is an error of the request that received it.

``openai`` runs on ``httpx2`` and ``groq``/``elevenlabs`` on ``httpx``: the same transport for both.
"""

from __future__ import annotations

from typing import Any

import httpx
import httpx2

from providers.egress import EgressPolicy, Target


class _Pins:
    """The addresses one client has checked, per (scheme, host, port)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self._targets: dict[tuple[str, str, int | None], Target] = {}

    async def pin(self, request: Any) -> None:
        """Point ``request`` (an httpx or httpx2 Request: same shape) at the checked address."""
        url = request.url
        key = (url.scheme, url.host, url.port)
        target = self._targets.get(key)
        if target is None:
            target = await self.policy.check_parts(url.scheme, url.host, url.port)
            self._targets[key] = target
        if target.address != url.host:
            request.extensions = {**request.extensions, "sni_hostname": url.host}
            request.url = url.copy_with(host=target.address)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport for a tenant's destination (groq, elevenlabs)."""

    def __init__(self, policy: EgressPolicy) -> None:
        super().__init__()
        self._pins = _Pins(policy)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._pins.pin(request)
        return await super().handle_async_request(request)


class PinnedTransport2(httpx2.AsyncHTTPTransport):
    """The same for httpx2 (the ``openai`` SDK's HTTP client)."""

    def __init__(self, policy: EgressPolicy) -> None:
        super().__init__()
        self._pins = _Pins(policy)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await self._pins.pin(request)
        return await super().handle_async_request(request)


def httpx_client(policy: EgressPolicy | None, timeout: float) -> httpx.AsyncClient:
    """An httpx client: pinned by ``policy`` when given (a tenant's provider), else a plain one; no redirects."""
    transport = PinnedTransport(policy) if policy is not None else None
    return httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)


def httpx2_client(policy: EgressPolicy, timeout: float) -> httpx2.AsyncClient:
    """An httpx2 client for the ``openai`` SDK, pinned by ``policy``; no redirects."""
    return httpx2.AsyncClient(timeout=timeout, transport=PinnedTransport2(policy), follow_redirects=False)


def websocket_connect_options(target: Target) -> dict[str, Any]:
    """``websockets`` connect options that open the checked address with the host's TLS name."""
    options: dict[str, Any] = {"host": target.address, "port": target.port}
    if target.secure:
        options["server_hostname"] = target.host
    return options
