"""/models, /usage and /show: what can run here, what you have spent, and a past result again."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import Choice

from adapters.discord import render
from adapters.discord.context import channel_ref, community_of, identity_of, where_of
from adapters.discord.delivery import DiscordDelivery
from adapters.discord.text import shorten, split_message
from bot import pricing
from bot.app import Core
from bot.archive import Archive
from bot.catalog import KIND_LABELS, Model
from bot.delivery import ChannelRef, Result
from bot.errors import BotError, InvalidRequest
from bot.jobstore import WITH_RESULT, JobRecord
from bot.outputs import result_text
from bot.quota import Allowance, format_usd
from bot.requests import COMMANDS

EMBED_TEXT = 4000
KIND_CHOICES = [Choice(name=label, value=kind) for kind, label in KIND_LABELS.items()]
DeliveryFor = Callable[[ChannelRef, discord.Interaction | None], DiscordDelivery]


def command_for(kind: str) -> str:
    return next(name for name, (_, kinds) in COMMANDS.items() if kind in kinds)


class InfoCommands:
    def __init__(self, core: Core, delivery_for: DeliveryFor) -> None:
        self._core = core
        self._delivery_for = delivery_for
        media_dir = core.settings.storage.media_dir
        self._archive = Archive(media_dir) if media_dir else None

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
        allowed = core.jobs.policy.allowed_models(list(core.catalog), where)
        sections = []
        for each, label in KIND_LABELS.items():
            found = [m for m in allowed if m.kind == each and kind in (None, each)]
            if found:
                command = command_for(each)
                lines = [self._model_line(m, command) for m in found]
                sections.append(f"**{label}** (/{command})\n" + "\n".join(lines))
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
        usage = await self._core.ledger.usage(identity_of(interaction))
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
        await interaction.response.send_message(embed=embed, ephemeral=True)

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
        job = await self._core.jobs.job(job_id, community_of(interaction))
        if job is None or not _visible(job, interaction):
            raise InvalidRequest(f"There is no job `{job_id}` here. /usage lists your recent jobs.")
        if job.state not in WITH_RESULT:
            reason = f": {job.error}" if job.error else "."
            raise InvalidRequest(f"Job `{job.id}` has no result to show ({job.state}){reason}")
        model = self._core.catalog.get(job.model)
        files = await self._core.jobs.result_files(job.id)  # the archive, else the spool
        text = result_text(model, job)
        if not files and not text:
            where = "" if self._archive else " (no archive folder is configured)"
            raise BotError(f"The result of job `{job.id}` is not kept by this bot{where}.")
        callback = await interaction.response.defer(thinking=True)
        extra = {"output": job.channel.extra.get("output", "text")}
        ref = channel_ref(
            interaction, message_id=callback.message_id if callback else None, extra=extra
        )
        result = Result(
            job_id=job.id,
            command=job.command,
            model=model.name,
            model_id=model.id,
            prompt=self._core.jobs.request_of(job).prompt,
            files=files or (),
            text=text,
            seeds=tuple(
                c.seed for c in job.copies if c.status == "COMPLETED" and c.seed is not None
            ),
            cost=job.cost or Decimal(0),
            elapsed_s=(job.finished_at or job.updated_at) - job.created_at,
            notes=(f"Posted again; first made <t:{int(job.created_at)}:R>.",),
            params=job.input,
        )
        await self._delivery_for(ref, interaction).deliver(result)


def _standing(allowance: Allowance) -> str:
    resets = discord.utils.format_dt(allowance.resets_at, "R")
    return (
        f"{format_usd(allowance.spent)} of {render.usd(allowance.limit)} spent\n"
        f"{allowance.describe()}\nresets {resets}"
    )


def _visible(job: JobRecord, interaction: discord.Interaction) -> bool:
    """Any job of this server; in DMs (all one "dm" community), only your own."""
    return interaction.guild_id is not None or job.identity[2] == str(interaction.user.id)
