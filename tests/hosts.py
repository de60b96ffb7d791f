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
]
