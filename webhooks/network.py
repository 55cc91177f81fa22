"""Outbound HTTP that cannot be turned against the shop's own network (SSRF).

A webhook URL is typed by staff, and its host name's DNS answer is chosen by whoever owns the
name. So the host is resolved at delivery time and every address it resolves to is checked:
one address inside a denied network (loopback, private, link-local and cloud metadata,
carrier-grade NAT, multicast, reserved…) refuses the delivery before any connection, unless it
lies in `WEBHOOK_ALLOWED_NETWORKS`. The connection then goes to the vetted address itself, with
the URL's host name in the Host header and as the TLS server name (SNI and certificate check),
so a DNS answer that changes between the check and the connection (rebinding) is never asked
for. The standard library's http.client takes a socket the caller connected, so no second
resolution happens behind the check; it never follows redirects.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Refused unless WEBHOOK_ALLOWED_NETWORKS lists them. IPv4-mapped IPv6 addresses
# (::ffff:a.b.c.d) are checked as the IPv4 address they reach.
DENIED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network": 0.0.0.0 reaches the local host
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, and the cloud metadata service at 169.254.169.254
        "172.16.0.0/12",  # private (RFC 1918)
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.168.0.0/16",  # private (RFC 1918)
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible form
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT, RFC 2765): reaches any IPv4 address
        "64:ff9b::/96",  # NAT64: reaches any IPv4 address, private ones included
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments (Teredo among them)
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4: reaches any IPv4 address
        "fc00::/7",  # unique local (the IPv6 private range)
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
USER_AGENT = "Stockwire-Webhooks/1"
# What a delivery attempt keeps of the answer's body: enough to read an error message.
EXCERPT_BYTES = 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Kept as written in a path or query: RFC 3986's delimiters and an existing escape.
_PATH_SAFE = "/:@!$&'()*+,;=?%~"


class Refused(Exception):
    """A URL the shop will not send to: bad scheme or form, unresolvable, or an address in a
    denied network. Raised before any connection is opened."""


@dataclass(frozen=True)
class Target:
    """A vetted destination: where to connect (the addresses) and what to ask for (the rest)."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[IPAddress, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


@dataclass(frozen=True)
class Reply:
    status: int
    excerpt: str


def allowed_networks() -> list[IPNetwork]:
    return [
        ipaddress.ip_network(value, strict=False) for value in settings.WEBHOOK_ALLOWED_NETWORKS
    ]


def address_denied(address: IPAddress) -> bool:
    """Whether `address` is one no webhook may reach (before the allow-list is consulted).

    The list above is what docs/webhooks.md promises; `is_global` also catches any special-purpose
    range the list does not name.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        not address.is_global
        or address.is_multicast
        or any(address in network for network in DENIED_NETWORKS)
    )


def _in(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return any(address in network or (mapped and mapped in network) for network in networks)


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (the one look-up a delivery makes)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


def url_target(url: str) -> Target:
    """Parse, resolve and vet `url`; raise Refused unless every address may be reached.

    http is accepted only when every address lies in WEBHOOK_ALLOWED_NETWORKS (a local
    receiver for a demo or the tests); anywhere else the body and its signature travel over
    https only.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
        # The request line and Host header are ASCII: an international name in its IDNA form,
        # any other character of the path percent-encoded.
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except (ValueError, UnicodeError) as error:
        raise Refused(f"not a valid URL ({error})") from error
    if parts.scheme not in _DEFAULT_PORTS or not host:
        raise Refused("the URL must be https://host/…")
    if parts.username is not None or parts.password is not None:
        raise Refused("credentials in the URL are not supported: receivers check the signature")
    try:
        addresses = _resolve(host, port)
    except (OSError, UnicodeError, ValueError) as error:
        raise Refused(f"{host} does not resolve ({error})") from error
    if not addresses:
        raise Refused(f"{host} does not resolve")
    allowed = allowed_networks()
    for address in addresses:
        if address_denied(address) and not _in(address, allowed):
            raise Refused(
                f"{host} resolves to {address}, in a network webhooks may not reach "
                "(private, loopback, link-local or reserved)"
            )
    if parts.scheme == "http" and not all(_in(address, allowed) for address in addresses):
        raise Refused("the URL must use https (http only for WEBHOOK_ALLOWED_NETWORKS)")
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    query = quote(parts.query, safe=_PATH_SAFE)
    return Target(
        scheme=parts.scheme,
        host=host,
        port=port,
        path=f"{path}?{query}" if query else path,
        addresses=tuple(addresses),
    )


class _Deadline:
    """Cuts the connection once the whole exchange has taken `seconds`.

    Socket timeouts bound each read, not their sum: a receiver dripping one header byte per
    second would otherwise hold the worker for minutes.
    """

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds
        self.expired = False
        self._timer: threading.Timer | None = None

    def left(self) -> float:
        return max(0.001, self.ends - time.monotonic())

    def guard(self, sock: socket.socket) -> None:
        self._timer = threading.Timer(self.left(), self._cut, args=(sock,))
        self._timer.daemon = True
        self._timer.start()

    def _cut(self, sock: socket.socket) -> None:
        self.expired = True
        # Already closed means the exchange ended as the timer fired: nothing to cut.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class _ConnectedHTTP(http.client.HTTPConnection):
    """An HTTP connection over a socket connected (and wrapped in TLS) beforehand."""

    def __init__(self, sock: socket.socket, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.sock = sock

    def connect(self) -> None:
        raise http.client.NotConnected("a webhook connection is never reopened")


def _connect(target: Target, deadline: _Deadline) -> socket.socket:
    """Connect to the first vetted address that answers, never to a name."""
    error: OSError = OSError("no address to connect to")
    for address in target.addresses:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(min(settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS, deadline.left()))
        try:
            sock.connect((str(address), target.port))
        except OSError as failure:
            sock.close()
            error = failure
            continue
        return sock
    raise error


def post(*, url: str, body: bytes, headers: dict[str, str]) -> Reply:
    """POST `body` to `url` after vetting it; return the status and the body's first KB.

    Raises Refused before connecting to a URL that may not be reached, TimeoutError when the
    whole exchange outlasts WEBHOOK_TIMEOUT_SECONDS, and OSError, ssl.SSLError or
    http.client.HTTPException for any other failure (refused, reset, bad certificate…).
    """
    target = url_target(url)
    deadline = _Deadline(settings.WEBHOOK_TIMEOUT_SECONDS)
    sock = _connect(target, deadline)
    try:
        if target.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(
                sock, server_hostname=target.host, do_handshake_on_connect=False
            )
        deadline.guard(sock)
        sock.settimeout(deadline.left())
        if isinstance(sock, ssl.SSLSocket):
            sock.do_handshake()
        connection = _ConnectedHTTP(sock, target, timeout=deadline.left())
        connection.request(
            "POST",
            target.path,
            body=body,
            headers={"Host": target.host_header, "User-Agent": USER_AGENT, **headers},
        )
        response = connection.getresponse()
    except (OSError, http.client.HTTPException) as error:
        deadline.cancel()
        sock.close()
        if deadline.expired or isinstance(error, TimeoutError):
            raise TimeoutError(
                f"no answer within {settings.WEBHOOK_TIMEOUT_SECONDS:g} s"
            ) from error
        raise
    try:
        # The status decides; a body that stalls after it only shortens the excerpt.
        excerpt = response.read(EXCERPT_BYTES)
    except (OSError, http.client.HTTPException):
        excerpt = b""
    finally:
        deadline.cancel()
        sock.close()
    return Reply(status=response.status, excerpt=excerpt.decode("utf-8", "replace"))
