"""`python -m tests.cli_at_moment ARGS...`: the bot's CLI with the wall clock at MOVED_CLOCK_AT.

Tests that run the CLI as a subprocess use this under `moved_clock`, so the child process
lives at the same frozen moment as the test that checks its output.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime

import time_machine

from bot.cli.main import main

if __name__ == "__main__":
    with time_machine.travel(datetime.fromisoformat(os.environ["MOVED_CLOCK_AT"]), tick=False):
        sys.exit(main())
