"""`python -m bot`: the command line. Each subcommand lives with the module it belongs to."""

from __future__ import annotations

import sys

from bot.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
