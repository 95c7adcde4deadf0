"""The Slack adapter: slash commands, mentions, threads, Block Kit buttons, per-user spend quotas.

`run` is the entry point `python -m bot run` starts when `slack.bot_token` is set together with
`slack.app_token` (Socket Mode) or `slack.signing_secret` (HTTP mode). See docs/slack.md.
"""

from __future__ import annotations

import asyncio

from adapters.slack.adapter import SlackAdapter
from bot.app import Core

__all__ = ["SlackAdapter", "run"]


async def run(core: Core) -> None:
    """Serve Slack until cancelled; unfinished jobs are resumed at start and left for the next."""
    adapter = SlackAdapter(core)
    try:
        await adapter.start()
        await asyncio.Event().wait()
    finally:
        await adapter.stop()
