"""The ``aurous-embed`` command (grows with the CLI issue; ``serve`` runs the local emulator)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aurous-embed`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "serve":
        from aurous_embed.testing._serve import serve_command

        return int(serve_command(args[1:]))
    print("usage: aurous-embed serve [options]", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
