"""``python -m aurous_embed.cli``."""

import sys

from aurous_embed.cli import main

sys.exit(main())
