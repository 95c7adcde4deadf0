"""/models, /usage and /show: what can run here, what you have spent, and a past result again."""

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
from adapters.discord.context import channel_ref, community_of, identity_of, where_of
from adapters.discord.delivery import DiscordDelivery
from adapters.discord.text import shorten, split_message
from bot import pricing
from bot.app import Core
from bot.catalog import Model
from bot.commands import COMMANDS
from bot.delivery import ChannelRef
from bot.errors import BotError, InvalidRequest
from bot.past import Viewer, past_result
from bot.quota import Allowance, format_usd
from bot.usage_charts import USAGE_FILENAME, usage_chart

EMBED_TEXT = 4000
KIND_CHOICES = [
    Choice(name=command.label, value=kind)
    for command in COMMANDS.values()
    for kind in command.kinds
]
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

        return [models, usage, show]

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
        return f"`{model.id}` {model.name}{mark}{nsfw}: {pricing.describe(model)}"

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
