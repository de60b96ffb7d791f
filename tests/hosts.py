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
]
