"""Image URL hosts that both the client and the API (the emulator) refuse, shared by their tests.

The client checks them before sending and the emulator answers ``400 invalid_format``: one list,
so a host added for one side is checked on the other too.
"""

from __future__ import annotations

BLOCKED_BY_BOTH = [
    "127.0.0.1",
    "127.1",
    "0x7f000001",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.0.10",
    "169.254.169.254",
    "169.254.170.2",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "[::1]",
    "[fe80::1]",
    "[fc00::1]",
    "[::ffff:127.0.0.1]",
    "metadata.google.internal",
    "metadata.aws.com",
    "metadata.azure.com",
    "instance-data.ec2.internal",
    "localhost",
    "LOCALHOST.",
    "images.localhost",
    # IPv4 inside IPv6: compatible, NAT64 (both prefixes), 6to4, Teredo (client 127.0.0.1)
    "[::127.0.0.1]",
    "[64:ff9b::7f00:1]",
    "[64:ff9b:1::7f00:1]",
    "[2002:7f00:1::]",
    "[2002:a00:1::1]",
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
    # full-width digits and dots, which URL parsers normalise to an address
    "\uff11\uff12\uff17.\uff10.\uff10.\uff11",
    "127\uff0e0\uff0e0\uff0e1",
    "127\u30020\u30020\u30021",
    # other names of loopback
    "localhost.localdomain",
    "ip6-localhost",
    "ip6-loopback",
    "localhost6",
    # not host names at all
    "a..example.com",
    ".example.com",
    "exa mple.com",
    # spellings URL parsers disagree on (refused rather than guessed at)
    "127.0.0.1\\@example.com",
    "169.254.169.254\\@example.com",
    "127.0.0.1\\.example.com",
    "user@127.0.0.1",
    "%31%32%37.0.0.1",
    "127%2e0%2e0%2e1",
    "%6c%6f%63%61%6c%68%6f%73%74",
    "exa%20mple.com",
    "lo\u00adcalhost",
    "metadata\u200b.google.internal",
    "metadata\u2060.google.internal",
    "metadata\ufeff.google.internal",
    "example.com\x00",
    "example.com\x7f",
    # numbers that are not IPv4, literals that are not IPv6, empty punycode
    "256.0.0.1",
    "4294967296",
    "1.2.3.4.5",
    "xn--",
    "[v1.fe80::a+en1]",
    # IPv6 that is not global: site-local, IPv4-translated loopback
    "[fec0::1]",
    "[::ffff:0:127.0.0.1]",
]
