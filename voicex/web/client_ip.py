"""Who the client is, for rate limits and access logs, through the operator's trusted proxies.

Behind a reverse proxy or tunnel the socket peer is the proxy, the same for every client. Each proxy appends the
address it received the request from to ``X-Forwarded-For``, so the header read from the right is a chain of
hops; the client is the first address, from the right, that is not one of ``VOICEX_TRUSTED_PROXIES``. Anything
left of it was written by the client and proves nothing. A peer that is not trusted is the client itself, and
its header is ignored: anyone can send one.

IPv6 clients are grouped by their /64: one subscriber usually holds a whole /64 and could otherwise take a fresh
address (and a fresh bucket) for every request.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from aiohttp import web

from voicex.platform.services import SERVICES

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

CLIENT_IP_KEY = web.RequestKey("client_ip", str)
IPV6_GROUP_PREFIX = 64


@functools.lru_cache(maxsize=8)
def parse_networks(specs: tuple[str, ...]) -> tuple[Network, ...]:
    """The trusted proxies as networks (the settings validated them at start)."""
    return tuple(ipaddress.ip_network(spec, strict=False) for spec in specs)


def parse_address(text: str) -> Address | None:
    """An address as proxies write it (``203.0.113.5``, ``203.0.113.5:4711``, ``[2001:db8::1]:443``); else None."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)  # a v4 address is never in a v6 network


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address: the peer, or through trusted peers the nearest untrusted hop of X-Forwarded-For.

    A hop that is not an address stops the walk at the trusted proxy that passed it on, so garbage in the header
    cannot pick a bucket; when every hop is trusted, the leftmost one is the client.
    """
    nearest = parse_address(peer) if peer else None
    if nearest is None:
        return peer or "unknown"
    if not _trusted(nearest, trusted):
        return str(nearest)
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break
        nearest = address
        if not _trusted(address, trusted):
            break
    return str(nearest)


def group_key(address: str) -> str:
    """What a per-client limit counts on: the address itself, or an IPv6 address's /64 network."""
    parsed = parse_address(address)
    if isinstance(parsed, IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_GROUP_PREFIX}", strict=False))
    return str(parsed) if parsed is not None else address


def client_ip(request: web.Request) -> str:
    """The request's client address (computed once per request)."""
    known = request.get(CLIENT_IP_KEY)
    if known is None:
        services = request.app.get(SERVICES)
        trusted = parse_networks(tuple(services.settings.trusted_proxies)) if services is not None else ()
        known = client_address(request.remote, request.headers.getall("X-Forwarded-For", []), trusted)
        request[CLIENT_IP_KEY] = known
    return known


def client_key(request: web.Request) -> str:
    """The request's client for rate limits: its address, IPv6 grouped by /64."""
    return group_key(client_ip(request))
