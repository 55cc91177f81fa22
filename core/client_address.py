"""The client's address, as far as the proxies in front of the app can vouch for it.

Behind a reverse proxy, REMOTE_ADDR is the proxy's address, the same for every client, and the
client's own is in `X-Forwarded-For`, where each proxy appends the address of its peer. Anyone
can send that header, so only entries written by a proxy in TRUSTED_PROXY_NETWORKS count: the
list is walked from the right, starting with the connection's own peer, skipping the trusted
addresses, and the first one that is not trusted is the client. Whatever a client wrote to the
left of it, a forged address among it, is never read.
"""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(request: HttpRequest) -> str:
    """Return the address of the client that sent `request`, in its canonical text form."""
    peer = request.META.get("REMOTE_ADDR", "")
    networks = _trusted_networks(tuple(settings.TRUSTED_PROXY_NETWORKS))
    address = _parsed(peer)
    if address is None or not _trusted(address, networks):
        return str(address or peer)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for entry in reversed(forwarded.split(",")):
        hop = _parsed(entry)
        if hop is None:
            # Garbage to the right of every untrusted entry: no trusted proxy wrote it, so the
            # last address a trusted one vouched for is as far as the chain can be followed.
            break
        address = hop
        if not _trusted(address, networks):
            break
    return str(address)


@lru_cache(maxsize=8)
def _trusted_networks(values: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def _trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in networks)


def _parsed(entry: str) -> IPAddress | None:
    """An address from a header entry or REMOTE_ADDR: `192.0.2.7`, `2001:db8::1`, and the
    forms with a port some proxies write (`192.0.2.7:51234`, `[2001:db8::1]:51234`)."""
    text = entry.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped  # one client, one identity, whichever stack it came by
    return address
