"""The outbound request policy: where the server may connect on a tenant's behalf.

A tenant's own provider names its vendor's ``baseUrl``; without a policy the server would connect wherever it
points (its own loopback, the private network, a cloud metadata service) with the request it was told to make.
:class:`EgressPolicy` decides once per connection: ``https``/``wss`` only (plain ``http``/``ws`` only to
hosts the operator allow-lists), then the host is resolved and every address must be public (not loopback,
private, link-local, CGNAT, unique-local, multicast, unspecified or a metadata address) unless the operator
allow-lists it (``VOICEX_EGRESS_ALLOW``). The connection then goes to the address that was checked
(:class:`Target.address`), never to a second lookup a rebinding DNS server could answer differently.

Operator-configured (global) providers are trusted and built without a policy. The HTTP transports that pin
the checked address are in :mod:`providers.egress_http`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from providers.base import ProviderError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) → the host's addresses; injectable so tests can play a rebinding DNS server.
Resolver = Callable[[str, int], Awaitable[list[str]]]

DEFAULT_RESOLVE_TIMEOUT_S = 5.0
SECURE_SCHEMES = {"https": 443, "wss": 443}
PLAIN_SCHEMES = {"http": 80, "ws": 80}
# Names of cloud metadata services; their addresses (169.254.169.254, fd00:ec2::254, 100.100.100.200) are
# refused by class (link-local, unique-local, CGNAT) and named in the reason.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"})
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressRefused(ProviderError):
    """The policy refused a destination. The reason is the server's own words, safe to show the tenant."""

    def __init__(self, reason: str) -> None:
        super().__init__("egress", reason, retryable=False, kind="refused")


def egress_refusal(exc: BaseException | None) -> EgressRefused | None:
    """The EgressRefused behind ``exc``, if any: SDKs wrap what their transport raised in their own errors."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, EgressRefused):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


# --- the pure rules ------------------------------------------------------------------------------------


def _unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped ::ffff:a.b.c.d, 6to4, NAT64 64:ff9b::/96), else ``ip``."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def address_class(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public internet address (a few words), or None when it is."""
    inner = _unwrap(ip)
    for candidate in (ip, inner):
        if candidate in METADATA_ADDRESSES:
            return "a cloud metadata address"
    if inner.is_unspecified:
        return "an unspecified address"
    if inner.is_loopback:
        return "a loopback address"
    if inner.is_link_local:
        return "a link-local address"
    if isinstance(inner, ipaddress.IPv4Address) and inner in _CGNAT:
        return "a carrier-grade NAT (100.64.0.0/10) address"
    if isinstance(inner, ipaddress.IPv6Address) and (inner in ipaddress.ip_network("fc00::/7") or inner.is_site_local):
        return "a unique-local address"
    if inner.is_multicast:
        return "a multicast address"
    if inner.is_private or inner.is_reserved or not inner.is_global:
        return "a private address"
    return None


@dataclass(frozen=True)
class AllowRule:
    """One ``VOICEX_EGRESS_ALLOW`` entry: a network (an address is a /32 or /128) or a host name, any port or one."""

    network: IPNetwork | None = None
    host: str | None = None
    port: int | None = None

    def allows_host(self, host: str, port: int) -> bool:
        return self.host is not None and self.host == host.lower().rstrip(".") and self.port in (None, port)

    def allows_address(self, ip: IPAddress, port: int) -> bool:
        return self.network is not None and ip in self.network and self.port in (None, port)


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6 address or network]:port
        inside, _, rest = entry[1:].partition("]")
        return inside, int(rest[1:]) if rest.startswith(":") else None
    if entry.count(":") == 1:  # host:port or v4:port (a bare v6 address has several colons)
        host, _, port = entry.partition(":")
        return host, int(port)
    return entry, None


def parse_allow(text: str) -> tuple[AllowRule, ...]:
    """Comma-separated CIDRs, addresses and host names, each optionally ``:port`` (``[v6]:port``).

    Raises ValueError naming the entry that is none of these.
    """
    rules: list[AllowRule] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            target, port = _split_port(entry)
            if port is not None and not 0 < port < 65536:
                raise ValueError
        except ValueError:
            raise ValueError(f"{entry!r}: a port must be a number from 1 to 65535") from None
        try:
            rules.append(AllowRule(network=ipaddress.ip_network(target, strict=False), port=port))
            continue
        except ValueError:
            pass
        name = target.lower().rstrip(".")
        if not name or not all(label.replace("-", "").replace("_", "").isalnum() for label in name.split(".")):
            raise ValueError(f"{entry!r}: not a CIDR, an IP address or a host name")
        rules.append(AllowRule(host=name, port=port))
    return tuple(rules)


# --- the policy ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A destination the policy accepted: connect to ``address`` (TLS name and Host header stay ``host``)."""

    scheme: str
    host: str
    port: int
    address: str

    @property
    def secure(self) -> bool:
        return self.scheme in SECURE_SCHEMES


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (getaddrinfo, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class EgressPolicy:
    """The rules plus a resolver; stateless, so one policy serves every tenant connection of the process."""

    def __init__(
        self,
        allow: Iterable[AllowRule] = (),
        *,
        resolver: Resolver = system_resolver,
        resolve_timeout_s: float = DEFAULT_RESOLVE_TIMEOUT_S,
    ) -> None:
        self.allow = tuple(allow)
        self.resolver = resolver
        self.resolve_timeout_s = resolve_timeout_s

    @classmethod
    def from_setting(cls, text: str | None) -> EgressPolicy:
        """The policy for ``VOICEX_EGRESS_ALLOW``'s value (None or empty: nothing beyond public addresses)."""
        return cls(parse_allow(text or ""))

    def precheck(self, url: str) -> str | None:
        """What is wrong with a tenant's base URL without resolving it (None: nothing yet; connecting checks
        the rest): scheme, credentials, query or fragment, and a host that is refused whatever DNS says."""
        if len(url) > 2048 or any(ch.isspace() or ord(ch) < 32 for ch in url):
            return "must be one URL without spaces or control characters (at most 2048 characters)"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return "is not a valid URL"
        scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
        if scheme not in SECURE_SCHEMES and scheme not in PLAIN_SCHEMES:
            return "must start with https:// (or http:// for a host the operator allow-lists)"
        if not host:
            return "has no host"
        if parts.username is not None or parts.password is not None:
            return "must not carry credentials (user:password@): put the key in credentials"
        if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
            return "must not have a query (?) or a fragment (#)"
        port = port or SECURE_SCHEMES.get(scheme) or PLAIN_SCHEMES[scheme]
        if any(rule.allows_host(host, port) for rule in self.allow):
            return None
        if host in METADATA_HOSTS:
            return "points at a cloud metadata service"
        plain_refused = "must use https: plain http is allowed only to hosts the operator allow-lists"
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:  # a name: its addresses are checked when connecting (an allowed network may hold them)
            return plain_refused if scheme in PLAIN_SCHEMES and not self.allow else None
        if any(rule.allows_address(ip, port) for rule in self.allow):
            return None
        if scheme in PLAIN_SCHEMES:
            return plain_refused
        why = address_class(ip)
        return f"points at {why}, which the server does not connect to for an organization" if why else None

    async def check(self, url: str) -> Target:
        """Check a URL; raises EgressRefused, or ProviderError (kind unreachable/timeout) when the host does not
        resolve."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise EgressRefused("the URL is malformed") from None
        return await self.check_parts(parts.scheme, parts.hostname or "", port)

    async def check_parts(self, scheme: str, host: str, port: int | None) -> Target:
        """Check a destination already parsed (by the HTTP client that will connect to it)."""
        scheme = scheme.lower()
        host = host.lower().strip("[]").rstrip(".")
        if scheme not in SECURE_SCHEMES and scheme not in PLAIN_SCHEMES:
            raise EgressRefused(f"the scheme {scheme or '(none)'!r} is not allowed: use https")
        if not host:
            raise EgressRefused("the URL has no host")
        port = port or SECURE_SCHEMES.get(scheme) or PLAIN_SCHEMES[scheme]
        by_name = any(rule.allows_host(host, port) for rule in self.allow)
        if not by_name and host in METADATA_HOSTS:
            raise EgressRefused("the host is a cloud metadata service")
        addresses = [ipaddress.ip_address(a) for a in await self._resolve(host, port)]
        plain = scheme in PLAIN_SCHEMES
        for ip in addresses:
            by_address = any(rule.allows_address(ip, port) for rule in self.allow)
            if by_name or by_address:
                continue
            if plain:
                raise EgressRefused("plain http is only for hosts the operator allow-lists; use https")
            why = address_class(ip)
            if why is not None:
                raise EgressRefused(f"the host resolves to {why}")
        return Target(scheme=scheme, host=host, port=port, address=str(addresses[0]))

    async def _resolve(self, host: str, port: int) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]  # an address literal: nothing to resolve
        except ValueError:
            pass
        try:
            async with asyncio.timeout(self.resolve_timeout_s):
                found = await self.resolver(host, port)
        except TimeoutError:
            raise ProviderError("egress", f"resolving {host} timed out", kind="timeout") from None
        except OSError as exc:
            raise ProviderError("egress", f"cannot resolve {host}: {exc}", kind="unreachable") from None
        if not found:
            raise ProviderError("egress", f"cannot resolve {host}", kind="unreachable")
        try:
            return [str(ipaddress.ip_address(a.split("%")[0])) for a in found]
        except ValueError:
            raise ProviderError("egress", f"cannot resolve {host}", kind="unreachable") from None
