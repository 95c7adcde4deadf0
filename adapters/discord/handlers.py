"""What happens when someone runs a job command, asks for an estimate, or clicks a job button.

Refusals the core can make without I/O (validation, policy) are checked before the interaction
is deferred, so they never show a public "thinking..." message; everything else is deferred
within Discord's 3 seconds and then handed to the core.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import discord
from discord.app_commands import Choice

from adapters.discord import render
from adapters.discord.commands import Ask, Completer
from adapters.discord.context import (
    channel_ref,
    community_of,
    identity_of,
    is_admin,
    report_error,
    where_of,
)
from adapters.discord.delivery import DiscordDelivery
from adapters.discord.text import code_block, shorten, split_message
from bot.app import Core
from bot.commands import COMMANDS
from bot.delivery import ChannelRef
from bot.jobs import COMMAND as CONVERSING
from bot.jobs import Invocation, Thread
from bot.ledger import format_usd
from bot.requests import Request, build_request
from bot.runpod import describe_price

log = logging.getLogger(__name__)

MAX_CHOICES = 25
DeliveryFor = Callable[[ChannelRef, discord.Interaction | None], DiscordDelivery]


class JobHandlers:
    def __init__(self, core: Core, delivery_for: DeliveryFor) -> None:
        self._core = core
        self._settings = core.settings.discord
        self._delivery_for = delivery_for

    # --- commands -------------------------------------------------------------------------

    async def run(self, interaction: discord.Interaction, ask: Ask) -> None:
        request = self._request(ask)
        where = where_of(interaction, self._settings)
        model = self._core.catalog.get(request.model)
        self._core.jobs.policy.check(ask.command, model, request.prompt, where)
        callback = await interaction.response.defer(thinking=True)
        ref = channel_ref(
            interaction, message_id=callback.message_id if callback else None, extra=dict(ask.extra)
        )
        delivery = self._delivery_for(ref, interaction)
        thread = None
        if ask.command == CONVERSING and ref.message:  # replies to the answer continue it
            thread = Thread(None, ref.message, request.prompt)
        invocation = Invocation(request, identity_of(interaction), ref, delivery, where, thread)
        submitted = await self._core.jobs.submit(invocation)
        log.info(
            "discord: /%s by %s in %s -> job %s",
            ask.command,
            interaction.user.id,
            interaction.channel_id,
            submitted.job_id,
        )

    async def estimate(self, interaction: discord.Interaction, ask: Ask) -> None:
        where = where_of(interaction, self._settings)
        found = await self._core.jobs.quote(self._request(ask), identity_of(interaction), where)
        embed = discord.Embed(colour=render.COLOUR, title=f"/{ask.command} with {found.model.name}")
        embed.add_field(name="Estimate", value=format_usd(found.estimate))
        embed.add_field(name="Price", value=found.price)
        if found.request.count > 1:
            embed.add_field(name="Copies", value=str(found.request.count))
        if found.tightest is not None:
            embed.add_field(name="Left", value=found.tightest.describe(), inline=False)
        if found.over_limit:
            embed.add_field(name="Too much", value="This is more than is left.", inline=False)
        if found.refusal is not None:
            embed.add_field(name="Not allowed here", value=found.refusal, inline=False)
        if found.confirm_above is not None:
            embed.add_field(
                name="Confirmation",
                value=f"Above {format_usd(found.confirm_above)}: you will be asked to confirm.",
                inline=False,
            )
        embed.set_footer(text="An estimate only: nothing was run or charged.")
        await interaction.response.send_message(embed=embed, ephemeral=True)

    def model_completer(self, command: str) -> Completer:
        """Autocomplete for `model`: this command's kinds, only those allowed in this channel."""
        kinds = COMMANDS[command].kinds

        async def complete(interaction: discord.Interaction, current: str) -> list[Choice[str]]:
            try:
                return await self._model_choices(interaction, command, kinds, current)
            except Exception:
                log.exception("model autocomplete failed")
                return []

        return complete

    async def _model_choices(
        self, interaction: discord.Interaction, command: str, kinds: tuple[str, ...], current: str
    ) -> list[Choice[str]]:
        core = self._core
        where = where_of(interaction, self._settings)
        models = await core.jobs.offered_models(where, *kinds)
        needle = current.strip().lower()
        default = core.settings.jobs.default_models.get(command)
        found = [
            m
            for m in models
            if needle in m.id or needle in m.name.lower() or any(needle in a for a in m.aliases)
        ]
        found.sort(key=lambda m: (m.id != default, not m.id.startswith(needle), m.name))
        return [
            Choice(name=shorten(f"{m.name} · {describe_price(m)}", 100), value=m.id)
            for m in found[:MAX_CHOICES]
        ]

    def _request(self, ask: Ask) -> Request:
        core = self._core
        options = ask.given()
        default = core.jobs.default_model(ask.command)
        if "voice" in options:
            model = core.catalog.get(str(options.get("model") or default))
            if "voice" not in model.params and "voice_id" in model.params:
                options["voice_id"] = options.pop("voice")
        return build_request(
            ask.command,
            core.catalog,
            prompt=ask.prompt,
            options=options,
            default_model=default,
            media=ask.media,
        )

    # --- buttons --------------------------------------------------------------------------

    async def on_button(self, interaction: discord.Interaction, action: str, job_id: str) -> None:
        try:
            if action in ("reroll", "vary"):
                await self._rerun(interaction, job_id, "variations" if action == "vary" else action)
            elif action == "cancel":
                await self._cancel(interaction, job_id)
            elif action == "confirm":
                await self._confirm(interaction, job_id)
            elif action == "request":
                await self._show_request(interaction, job_id)
            elif action == "fresh":
                await self._start_fresh(interaction, job_id)
        except Exception as exc:
            await report_error(interaction, exc)

    async def _rerun(self, interaction: discord.Interaction, job_id: str, mode: str) -> None:
        callback = await interaction.response.defer(thinking=True)
        ref = channel_ref(interaction, message_id=callback.message_id if callback else None)
        old = await self._core.jobs.job(job_id, community_of(interaction))
        if old is not None and "output" in old.channel.extra:
            ref = replace(ref, extra={**ref.extra, "output": old.channel.extra["output"]})
        request = await self._core.jobs.rerun_request(job_id, community_of(interaction), mode=mode)
        delivery = self._delivery_for(ref, interaction)
        invocation = Invocation(
            request, identity_of(interaction), ref, delivery, where_of(interaction, self._settings)
        )
        await self._core.jobs.submit(invocation)

    async def _cancel(self, interaction: discord.Interaction, job_id: str) -> None:
        jobs = self._core.jobs
        user, admin = str(interaction.user.id), is_admin(interaction, self._settings)
        community = community_of(interaction)
        declined = await jobs.decline(job_id, community, user=user, is_admin=admin)
        if declined is not None:  # the question becomes the answer
            await interaction.response.edit_message(content=declined, embeds=[], view=None)
            return
        # confirmed (perhaps by a click just before this one) or ended: the core says which;
        # cancelling at Runpod may take longer than Discord's 3 seconds
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await jobs.cancel(job_id, community, user=user, is_admin=admin)
        await interaction.followup.send(text, ephemeral=True)

    async def _confirm(self, interaction: discord.Interaction, job_id: str) -> None:
        await interaction.response.defer()  # the confirmation message becomes the job's message
        message = interaction.message
        ref = channel_ref(interaction, message_id=message.id if message else None)
        job = await self._core.jobs.job(job_id, community_of(interaction))
        if job is not None:  # keep the job's presentation choices (e.g. transcript output)
            ref = replace(ref, extra={**job.channel.extra, **ref.extra})
        await self._core.jobs.confirm(
            job_id,
            community_of(interaction),
            user=str(interaction.user.id),
            roles=identity_of(interaction).roles,
            delivery=self._delivery_for(ref, interaction),
        )

    async def _start_fresh(self, interaction: discord.Interaction, job_id: str) -> None:
        community = community_of(interaction)
        conversations = self._core.jobs.conversations
        said = await conversations.close(community.platform, community.workspace, job_id)
        await interaction.response.send_message(said, ephemeral=True)

    async def _show_request(self, interaction: discord.Interaction, job_id: str) -> None:
        text = await self._core.jobs.show_request(job_id, community_of(interaction))
        chunks = split_message(code_block(text))
        await interaction.response.send_message(chunks[0], ephemeral=True)
        for chunk in chunks[1:]:
            await interaction.followup.send(chunk, ephemeral=True)
