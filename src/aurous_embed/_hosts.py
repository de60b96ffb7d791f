"""Which image-URL hosts the API will not fetch, decided from the host alone (never from DNS).

One function, used by the client (refuse before sending) and by the emulator (refuse like the
API): a metadata or loopback host name, or a literal address that is not global, in any of the
forms a URL parser turns into one: short IPv4 (``127.1``, ``0x7f000001``), IPv4 inside IPv6
(mapped, compatible ``[::127.0.0.1]``, NAT64 ``[64:ff9b::7f00:1]``, 6to4 ``[2002:7f00:1::]``,
Teredo), full-width digits and dots (``１２７．０．０．１``), and host names with spaces or empty
labels. Stdlib only.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata

from aurous_embed._config import BLOCKED_URL_HOSTNAMES

# IPv4 written the short ways inet_aton reads (127.1, 0x7f000001, 2130706433): still a literal.
_IPV4_SHORTHAND = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")
# Dots that URL parsers (UTS 46) read as label separators.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def normalize_host(host: str) -> str:
    """The host as a URL parser sees it: NFKC (full-width digits), dots unified, lower case,
    brackets and a trailing dot dropped."""
    name = unicodedata.normalize("NFKC", host).translate(_DOTS).lower().strip("[]")
    return name[:-1] if name.endswith(".") and not name.endswith("..") else name


def literal_address(name: str) -> Address | None:
    """The IP address a (normalised) host *literally* is, or ``None`` for a host name."""
    try:
        return ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        if not _IPV4_SHORTHAND.match(name):
            return None
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """An IPv4 address an IPv6 one carries and would be routed to."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address
    if any(address in net for net in _NAT64) or (
        address in _IPV4_COMPATIBLE and int(address) > 1  # not :: or ::1
    ):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _kind(address: Address) -> str | None:
    """Why ``address`` may not be fetched, or ``None`` for a global unicast address."""
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:  # counts as global on some Python versions
        return "multicast"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"
    return None


def blocked_host_reason(host: str) -> str | None:
    """Why the API will not fetch from ``host`` (a URL's host), or ``None`` if it may.

    Never resolves DNS: a host name that is not refused by name is the API's to resolve and check.
    """
    name = normalize_host(host)
    if not name or any(ch.isspace() for ch in name) or ".." in name or name.startswith("."):
        return "not a valid host name (empty, with spaces, or with an empty label)"
    if name in BLOCKED_URL_HOSTNAMES or name.endswith(".localhost"):
        return "a metadata / loopback host name"
    address = literal_address(name)
    if address is None:
        return None
    family = f"IPv{address.version}"
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None and _kind(inner) is not None:
            return f"an IPv6 address that carries a {_kind(inner)} IPv4 address ({inner})"
    kind = _kind(address)
    return None if kind is None else f"a private / loopback / link-local {family} address ({kind})"
