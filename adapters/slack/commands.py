"""One entry for every way of asking: `/imagine ...` and `@bot imagine ...` end up in `Commands.run`.

Failures become private replies in `Replies.outcome`.
"""

from __future__ import annotations

import logging

from adapters.slack import admin, info
from adapters.slack.context import Origin, SlackContext
from adapters.slack.launch import Asked, start_job
from adapters.slack.text import escape
from bot.commands import COMMANDS

log = logging.getLogger(__name__)

JOB_COMMANDS = tuple(COMMANDS)  # imagine, edit, video, transcribe, ask, speak
INFO_COMMANDS = ("cost", "models", "usage", "show", "quota", "web", "help")
SLASH_COMMANDS = tuple(f"/{name}" for name in JOB_COMMANDS + INFO_COMMANDS)


class Commands:
    def __init__(self, ctx: SlackContext) -> None:
        self._ctx = ctx

    async def run(self, origin: Origin, asked: Asked) -> None:
        """Do one command for one user; never raises (errors become an ephemeral reply)."""
        work = self._dispatch(origin, asked)
        await self._ctx.replies.outcome(origin.audience, f"/{asked.name}", work)
        await self._ctx.seen(origin)  # after the answer: a lookup must not delay it

    async def _dispatch(self, origin: Origin, asked: Asked) -> str | None:
        name, text = asked.name, asked.text
        ctx = self._ctx
        if name in JOB_COMMANDS:
            await start_job(ctx, origin, asked)
            return None
        if name == "usage":
            return await info.usage_text(ctx, origin)
        if name == "models":
            return await info.models_text(ctx, origin, text)
        if name == "cost":
            return await info.cost_text(ctx, origin, text)
        if name == "show":
            return await info.show_text(ctx, origin, text)
        if name == "quota":
            return await admin.quota_text(ctx, origin, text)
        if name == "web":
            return await info.web_text(ctx, origin, text)
        if name == "help":
            return info.help_text()
        hint = "Try `@me imagine a cat`, `@me ask ...` or `@me help`."
        return f"I don't know {escape(name)!r}. {hint}" if name else hint
