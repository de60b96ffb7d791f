"""Which image-URL hosts the API will not fetch, decided from the host alone (never from DNS).

One function, used by the client (refuse before sending) and by the emulator (refuse like the
API): a metadata or loopback host name, or a literal address that is not global, in any of the
forms a URL parser turns into one: short IPv4 (``127.1``, ``0x7f000001``), IPv4 inside IPv6
(mapped, compatible ``[::127.0.0.1]``, NAT64 ``[64:ff9b::7f00:1]``, 6to4 ``[2002:7f00:1::]``,
Teredo, IPv4-translated ``[::ffff:0:127.0.0.1]``), full-width digits and dots
(``１２７．０．０．１``), and host names with spaces or empty labels.

Spellings on which URL parsers disagree are refused outright rather than guessed at, because the
API's fetcher may read them differently from Python's ``urlsplit`` (``url_spelling_reason``): a
backslash (a path separator to WHATWG parsers: ``https://127.0.0.1\\@example.com``), userinfo
(``user@host``), control characters or spaces anywhere, a percent-encoded host (``%31%32%37.0.0.1``),
invisible characters that IDNA deletes (soft hyphen, zero-width space, word joiner, BOM), a host
ending in a number that is not a valid IPv4 address (``256.0.0.1``, ``1.2.3.4.5``), an IPvFuture or
otherwise invalid bracketed literal, and an empty punycode label (``xn--``). Stdlib only.
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
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 ::ffff:0:a.b.c.d
# The last label of a host WHATWG parsers read as a number (then the whole host must be IPv4).
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")

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
    if any(address in net for net in (*_NAT64, _IPV4_TRANSLATED)) or (
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
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"  # fec0::/10: deprecated, but is_global says True
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"
    return None


def url_spelling_reason(url: str, netloc: str) -> str | None:
    """Why ``url`` (with ``netloc`` as ``urlsplit`` read it) is spelled in a way URL parsers
    disagree on, or ``None``. Refusing is safer than guessing which reading the fetcher takes."""
    if "\\" in url:
        return "contains a backslash (some URL parsers read it as '/', others as part of the host)"
    bad = next((ch for ch in url if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf")), None)
    if bad is not None:
        return f"contains a control, space or invisible character (U+{ord(bad):04X})"
    if "@" in netloc:
        return "has userinfo (user@host): parsers disagree on which part is the host"
    return None


def _malformed(name: str) -> str | None:
    """Why a normalised host name no URL parser would agree on, or ``None``."""
    if "%" in name:
        return "percent-encoded (parsers decode it differently; write the host plainly)"
    if ":" in name:  # a bracketed literal that is not IPv6 (IPvFuture "v1.x", junk)
        return None if literal_address(name) is not None else "not a valid IPv6 literal"
    if _NUMERIC_LABEL.match(name.rsplit(".", 1)[-1]) and literal_address(name) is None:
        return "a host ending in a number that is not a valid IPv4 address"
    for label in name.split("."):
        if label.startswith("xn--"):
            try:
                if not label[4:] or not label[4:].encode("ascii").decode("punycode"):
                    raise ValueError(label)
            except (UnicodeError, ValueError):
                return f"an invalid punycode label ({label!r})"
    return None


def blocked_host_reason(host: str) -> str | None:
    """Why the API will not fetch from ``host`` (a URL's host), or ``None`` if it may.

    Never resolves DNS: a host name that is not refused by name is the API's to resolve and check.
    """
    name = normalize_host(host)
    if not name or any(ch.isspace() for ch in name) or ".." in name or name.startswith("."):
        return "not a valid host name (empty, with spaces, or with an empty label)"
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
        return "not a valid host name (it has control or invisible characters)"
    malformed = _malformed(name)
    if malformed is not None:
        return f"not a valid host name: {malformed}"
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
