"""Which webhook URLs the server may POST to, so that a webhook is no way into the server's own
network (server-side request forgery).

A target must be `https` (plain `http` only where the operator allows private targets), name a
host without credentials, and resolve only to public addresses: loopback, private, link-local,
shared (CGNAT), multicast, unspecified and reserved addresses, and this machine's own addresses,
are refused unless the operator allows private targets (`chainyard serve
--allow-private-webhooks`, CHAINYARD_ALLOW_PRIVATE_WEBHOOKS=1). The name is resolved once per
delivery attempt and the connection goes to an address that was checked (`CheckedTarget`), not
to a second resolution, which a name with a short-lived record could point elsewhere (DNS
rebinding). The URL is parsed by httpx, the parser of the client that sends it, so that the host
checked is the host connected to.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable

import httpx

from chainyard.domain.errors import Invalid

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to, in the resolver's order.
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2048
ALLOW_HINT = "an operator can allow private targets with `chainyard serve --allow-private-webhooks`"
# Labels of letters, digits, '-' and '_' (after IDNA encoding), at most 253 characters in all.
_LABEL = r"[a-z0-9_][a-z0-9_-]{0,62}"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_DEFAULT_PORTS = {"https": 443, "http": 80}


class TargetRefused(Invalid):
    """A webhook URL the server will not POST to; the message says why. Final: trying again
    later does not help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="INVALID_WEBHOOK_ENDPOINT")


class TargetUnresolvable(Exception):
    """The name did not resolve (now): a delivery attempt that fails, and may be tried again."""


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


@dataclasses.dataclass(frozen=True)
class TargetPolicy:
    """The operator's choice, and what the server knows of itself."""

    allow_private: bool = False
    # This machine's addresses (`own_addresses`): a public one is refused like a private one.
    own: frozenset[Address] = frozenset()
    resolve_timeout: float = 5.0
    resolver: Resolver = dataclasses.field(default=system_resolver, compare=False)


@dataclasses.dataclass(frozen=True)
class Target:
    """A webhook URL that passed the checks that need no resolution."""

    url: httpx.URL
    # As in the URL (lowercase; IDNA-encoded; an IPv6 address without brackets): what the
    # Host header and TLS (SNI, the certificate's name) are about.
    host: str
    port: int
    literal: Address | None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.url.scheme] else f"{host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class CheckedTarget:
    """A target and the addresses its host resolved to, every one of them allowed."""

    target: Target
    addresses: tuple[Address, ...]

    def url_for(self, address: Address) -> httpx.URL:
        """The URL to send to: the checked address in place of the name."""
        return self.target.url.copy_with(host=str(address))


def refusal(address: Address, policy: TargetPolicy) -> str | None:
    """Why `address` may not receive webhooks under `policy` (None: it may)."""
    if policy.allow_private:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        # Addresses that carry an IPv4 one reach that one: judged by it.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = refusal(embedded, policy)
            return None if inner is None else f"{inner} (it carries {embedded})"
    for kind, test in (
        ("an unspecified address", address.is_unspecified),
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
        ("not a public address", not address.is_global),
        ("one of this server's own addresses", address in policy.own),
    ):
        if test:
            return kind
    return None


def _literal(host: str) -> Address | None:
    """The address a host names without resolution: an IP literal, or a numeric IPv4 form that
    resolvers accept (`127.1`, `2130706433`, `0x7f.0.0.1`)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fx.]+", host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def parse(url: str, policy: TargetPolicy) -> Target:
    """The checks that need no resolution (for enqueueing a request, and before each delivery):
    scheme, host, port, credentials, and a host that is an address or `localhost`."""
    shown = url if len(url) <= 200 else url[:200] + "..."
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"webhook_endpoint is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise TargetRefused(f"webhook_endpoint {shown!r} holds spaces or control characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise TargetRefused(f"webhook_endpoint {shown!r} is not a URL: {exc}") from exc
    scheme = parsed.scheme
    if scheme not in ("https", "http"):
        raise TargetRefused(f"webhook_endpoint {shown!r}: webhooks are sent over https only")
    if scheme == "http" and not policy.allow_private:
        raise TargetRefused(
            f"webhook_endpoint {shown!r}: webhooks are sent over https only (plain http only "
            f"where private targets are allowed: {ALLOW_HINT})"
        )
    if parsed.userinfo:
        raise TargetRefused(f"webhook_endpoint {shown!r}: a webhook URL may not hold credentials")
    try:
        host = parsed.raw_host.decode("ascii").lower()
    except UnicodeDecodeError as exc:
        raise TargetRefused(f"webhook_endpoint {shown!r}: the host is not a name") from exc
    literal = _literal(host)
    if literal is None and not _HOSTNAME.match(host):
        raise TargetRefused(f"webhook_endpoint {shown!r}: {host!r} is not a host name")
    port = parsed.port if parsed.port is not None else _DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise TargetRefused(f"webhook_endpoint {shown!r}: port {port} is out of range")
    target = Target(url=parsed.copy_with(fragment=None), host=host, port=port, literal=literal)
    if literal is not None:
        why = refusal(literal, policy)
        if why is not None:
            raise TargetRefused(
                f"webhook_endpoint {shown!r}: {literal} is {why}; {_refused_tail()}"
            )
    elif not policy.allow_private and (
        host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost")
    ):
        raise TargetRefused(
            f"webhook_endpoint {shown!r}: {host} is this machine (loopback); {_refused_tail()}"
        )
    return target


def _refused_tail() -> str:
    return f"webhooks go to public addresses only ({ALLOW_HINT})"


async def resolve(target: Target | str, policy: TargetPolicy) -> CheckedTarget:
    """`target`'s addresses, each checked. Refused (TargetRefused) when any address is not
    allowed: a name that also points inside is not one to trust with a webhook."""
    if isinstance(target, str):
        target = parse(target, policy)
    if target.literal is not None:
        return CheckedTarget(target, (target.literal,))
    try:
        async with asyncio.timeout(policy.resolve_timeout):
            found = await policy.resolver(target.host, target.port)
    except TimeoutError as exc:
        raise TargetUnresolvable(
            f"{target.host} did not resolve within {policy.resolve_timeout:g} s"
        ) from exc
    except (OSError, UnicodeError) as exc:
        raise TargetUnresolvable(f"{target.host} does not resolve: {exc}") from exc
    addresses: list[Address] = []
    for text in found:
        # An IPv6 address of a scope (fe80::1%eth0) is link-local: refused below all the same.
        address = ipaddress.ip_address(text.partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise TargetUnresolvable(f"{target.host} resolves to no address")
    for address in addresses:
        why = refusal(address, policy)
        if why is not None:
            raise TargetRefused(
                f"webhook_endpoint {str(target.url)!r}: {target.host} resolves to {address}, "
                f"{why}; {_refused_tail()}"
            )
    return CheckedTarget(target, tuple(addresses))


def own_addresses(listen_host: str | None = None) -> frozenset[Address]:
    """This machine's addresses (every interface's, and the one it listens on), which a webhook
    must not reach: other services of the machine listen there. A public address the machine
    is reached by through NAT is not among them (see docs/security.md)."""
    import psutil  # type: ignore[import-untyped]

    found: set[Address] = set()
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    found.add(ipaddress.ip_address(entry.address.partition("%")[0]))
                except ValueError:
                    continue
    if listen_host:
        with contextlib.suppress(ValueError):
            found.add(ipaddress.ip_address(listen_host.strip("[]")))
    return frozenset(found)
