"""/models, /usage, /show and /help: what can run here, what you have spent, a past result
again, and what the bot does."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import discord
from discord import app_commands
from discord.app_commands import Choice

from adapters.discord import render
from adapters.discord.context import channel_ref, community_of, identity_of, is_admin, where_of
from adapters.discord.delivery import DiscordDelivery
from adapters.discord.text import shorten, split_message
from bot import web as web_page
from bot.app import Core
from bot.commands import COMMANDS
from bot.delivery import ChannelRef
from bot.errors import BotError, InvalidRequest
from bot.jobs import Viewer, past_result
from bot.ledger import Allowance, format_usd
from bot.runpod import Model, describe_price
from bot.usage_charts import USAGE_FILENAME, usage_chart
from bot.web import Hiding

EMBED_TEXT = 4000
KIND_CHOICES = [
    Choice(name=command.label, value=kind)
    for command in COMMANDS.values()
    for kind in command.kinds
]
HELP = (
    "**Runpod models on Discord.** Every job is charged to your quota; `/usage` shows what is "
    "left.\n"
    "`/imagine` an image · `/edit` edit an image · `/video` a video (from an image too)\n"
    "`/transcribe` speech to text · `/ask` a text model's answer · `/speak` text to speech\n"
    "`/cost <command>` what it would cost (runs nothing) · `/models` · `/usage` · `/show`"
    " · `/web` (a sign-in link to the web page) · `/quota` (server managers)\n"
    "Results carry Reroll, Variations, Cancel and Show request buttons. Installed on your own "
    "account, the bot also works in DMs and group DMs, charged to your personal allowance "
    "where the operator allows it."
)
WEB_ACTIONS = [
    Choice(name="hide all my results from the web page", value="hide-mine"),
    Choice(name="show my results on the web page again", value="show-mine"),
]
WEB_HIDDEN = "Your results are no longer shown on the web page (`/web show-mine` undoes it)."
WEB_SHOWN = "Your results are shown on the web page again."
DeliveryFor = Callable[[ChannelRef, discord.Interaction | None], DiscordDelivery]


class InfoCommands:
    def __init__(self, core: Core, delivery_for: DeliveryFor) -> None:
        self._core = core
        self._delivery_for = delivery_for

    def commands(self) -> list[app_commands.Command[Any, ..., Any]]:
        @app_commands.command(name="models", description="The models you can use in this channel")
        @app_commands.describe(kind="Only models of this kind")
        @app_commands.choices(kind=KIND_CHOICES)
        async def models(interaction: discord.Interaction, kind: str | None = None) -> None:
            await self.models(interaction, kind)

        @app_commands.command(name="usage", description="Your spending, what is left, recent jobs")
        async def usage(interaction: discord.Interaction) -> None:
            await self.usage(interaction)

        @app_commands.command(name="show", description="Post a past result again, with its buttons")
        @app_commands.describe(job_id="The job id (shown under every result and in /usage)")
        async def show(interaction: discord.Interaction, job_id: str) -> None:
            await self.show(interaction, job_id)

        @show.autocomplete("job_id")
        async def recent_jobs(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
            return await self.recent_choices(interaction, current)

        @app_commands.command(name="help", description="What the bot does and its commands")
        async def help_(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(HELP, ephemeral=True)

        @app_commands.command(name="web", description="A private sign-in link to the web page")
        @app_commands.guild_only()  # the page shows one server's results; DMs are no server
        @app_commands.describe(action="Leave out for a sign-in link")
        @app_commands.choices(action=WEB_ACTIONS)
        async def web(interaction: discord.Interaction, action: str | None = None) -> None:
            await self.web(interaction, action)

        return [models, usage, show, help_, web]

    # --- /models ----------------------------------------------------------------------------

    async def models(self, interaction: discord.Interaction, kind: str | None) -> None:
        core = self._core
        where = where_of(interaction, core.settings.discord)
        allowed = await core.jobs.offered_models(where)
        sections = []
        for command in COMMANDS.values():
            found = [m for m in allowed if m.kind in command.kinds and kind in (None, m.kind)]
            if found:
                lines = [self._model_line(m, command.name) for m in found]
                sections.append(f"**{command.label}** (/{command.name})\n" + "\n".join(lines))
        if not sections:
            raise InvalidRequest("No models are allowed in this channel.")
        pages = split_message("\n\n".join(sections), EMBED_TEXT)
        embeds = [discord.Embed(colour=render.COLOUR, description=page) for page in pages]
        embeds[0].title = "Models you can use here"
        embeds[-1].set_footer(text="Pick one with the model option of each command.")
        await interaction.response.send_message(embed=embeds[0], ephemeral=True)
        for embed in embeds[1:]:
            await interaction.followup.send(embed=embed, ephemeral=True)

    def _model_line(self, model: Model, command: str) -> str:
        default = self._core.settings.jobs.default_models.get(command) == model.id
        mark = " (default)" if default else ""
        nsfw = " \N{NO ONE UNDER EIGHTEEN SYMBOL}" if model.nsfw else ""
        return f"`{model.id}` {model.name}{mark}{nsfw}: {describe_price(model)}"

    # --- /usage -----------------------------------------------------------------------------

    async def usage(self, interaction: discord.Interaction) -> None:
        identity = identity_of(interaction)
        usage = await self._core.ledger.usage(identity)
        embed = discord.Embed(colour=render.COLOUR, title="Your usage")
        limited = [a for a in usage.user if a.limit is not None]
        for allowance in limited:
            embed.add_field(
                name=allowance.period.adjective.capitalize(), value=_standing(allowance)
            )
        if not limited:
            embed.description = "You have no spending limit."
        held = max((a.held for a in usage.user), default=None)
        if held:
            embed.add_field(name="Held for running jobs", value=format_usd(held), inline=False)
        pool = [a for a in usage.workspace if a.limit is not None]
        if pool and interaction.guild_id:
            embed.add_field(
                name="This server",
                value="\n".join(a.describe() for a in pool),
                inline=False,
            )
        if usage.recent:
            lines = [
                f"`{job.job_id}` {job.model} · {format_usd(job.cost)} · {job.state}"
                f" · {discord.utils.format_dt(job.time, 'R')}"
                for job in usage.recent
            ]
            embed.add_field(name="Recent jobs", value=shorten("\n".join(lines), 1024), inline=False)
        embed.set_footer(text="/show <job id> posts a past result again.")
        core = self._core
        zone = ZoneInfo(core.settings.quotas.timezone)
        chart = await usage_chart(core.db, core.ledger, identity, zone, datetime.now(UTC))
        embed.set_image(url=f"attachment://{USAGE_FILENAME}")
        await interaction.response.send_message(
            embed=embed,
            file=discord.File(io.BytesIO(chart), filename=USAGE_FILENAME),
            ephemeral=True,
        )

    async def recent_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[Choice[str]]:
        usage = await self._core.ledger.usage(identity_of(interaction))
        return [
            Choice(name=shorten(f"{job.job_id} · {job.model} · {job.state}", 100), value=job.job_id)
            for job in usage.recent
            if current.strip().lower() in job.job_id
        ][:25]

    # --- /show ------------------------------------------------------------------------------

    async def show(self, interaction: discord.Interaction, job_id: str) -> None:
        job_id = job_id.strip().strip("`")
        past = await past_result(self._core.jobs, job_id, _viewer(interaction))
        if past is None:
            raise InvalidRequest(f"There is no job `{job_id}` here. /usage lists your recent jobs.")
        if past.result is None:
            reason = f": {past.error}" if past.error else "."
            raise InvalidRequest(
                f"Job `{past.job_id}` has no result to show ({past.state}){reason}"
            )
        if not past.kept:
            where = (
                ""
                if self._core.settings.storage.media_dir
                else " (no archive folder is configured)"
            )
            raise BotError(f"The result of job `{past.job_id}` is not kept by this bot{where}.")
        job = await self._core.jobs.job(past.job_id, community_of(interaction))
        output = job.channel.extra.get("output", "text") if job else "text"
        callback = await interaction.response.defer(thinking=True)
        ref = channel_ref(
            interaction,
            message_id=callback.message_id if callback else None,
            extra={"output": output},
        )
        note = f"Posted again; first made <t:{int(past.made_at)}:R>."
        result = replace(past.result, notes=(note,))
        await self._delivery_for(ref, interaction).deliver(result)

    # --- /web -------------------------------------------------------------------------------

    async def web(self, interaction: discord.Interaction, action: str | None = None) -> None:
        """A one-time sign-in link, privately; bound to this member, this server, admin or not.
        `hide-mine` / `show-mine` take all of the member's results off the page, or back."""
        core = self._core
        if interaction.guild_id is None:
            raise InvalidRequest("Use /web in a server: the page shows that server's results.")
        if action is not None:
            hide = action == "hide-mine"
            await Hiding(core.db).hide_member(identity_of(interaction), hide)
            text = WEB_HIDDEN if hide else WEB_SHOWN
            await interaction.response.send_message(text, ephemeral=True)
            return
        if core.settings.web.public_url is None:
            raise InvalidRequest(
                "The web page is not enabled: the bot's admin sets `web.public_url` (docs/web.md)."
            )
        admin = is_admin(interaction, core.settings.discord)
        name = interaction.user.display_name
        token = await web_page.signins(core).issue(identity_of(interaction), name, admin=admin)
        minutes = f"{core.settings.web.link_minutes:g}"
        await interaction.response.send_message(
            f"Your sign-in link (works once, for {minutes} minutes; don't share it):\n"
            f"{web_page.signin_url(core, token)}",
            ephemeral=True,
            suppress_embeds=True,
        )


def _standing(allowance: Allowance) -> str:
    resets = discord.utils.format_dt(allowance.resets_at, "R")
    return (
        f"{format_usd(allowance.spent)} of {render.usd(allowance.limit)} spent\n"
        f"{allowance.describe()}\nresets {resets}"
    )


def _viewer(interaction: discord.Interaction) -> Viewer:
    """Any job of this server; in DMs (all one "dm" community), only your own."""
    user = str(interaction.user.id)
    return Viewer(community_of(interaction), user, own_only=interaction.guild_id is None)
