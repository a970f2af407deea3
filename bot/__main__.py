"""``python -m bot``: the always-on service (Discord bot + forward engine)."""

import sys

from bot.app import main

sys.exit(main())
