"""The Discord adapter: slash commands, persistent buttons and a Delivery, on discord.py.

`run(core)` is the `runpod_bot.adapters` entry point `python -m bot run` starts when
`DISCORD_TOKEN` is set. The adapter translates and presents; prices, quotas, policy and the job
lifecycle stay in the core. See docs/discord.md for setting up the application.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # discord.py 2.7 imports the stdlib `audioop` (voice), deprecated since Python 3.11. Importing
    # it here, first, keeps that warning out of every module of this package and of the tests.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord  # noqa: F401

from adapters.discord.client import DiscordAdapter, run

__all__ = ["DiscordAdapter", "run"]
