"""/quota show | set | grant | reset | unlimited | report: spend limits for server managers.

Discord hides the group from members without Manage Server unless an admin role is configured
(then everyone sees it, since Discord cannot require a role by name); either way each command
checks again when it runs, so the check never depends on the server's command settings.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import discord
from discord import app_commands
from discord.app_commands import Choice, Range

from adapters.discord import render
from adapters.discord.context import PLATFORM, is_admin
from adapters.discord.text import shorten
from bot.app import Core
from bot.config import QuotaLimits
from bot.errors import InvalidRequest, PolicyDenied
from bot.ledger import (
    MAX_ADMIN_USD,
    Allowance,
    Identity,
    Period,
    Report,
    format_usd,
    member_id,
    parse_limit,
    standing,
    window,
)
from bot.usage_charts import REPORT_FILENAME, report_chart

PERIOD_CHOICES = [Choice(name=p.adjective, value=p.value) for p in Period]


class QuotaCommands:
    def __init__(self, core: Core) -> None:
        self._core = core
        self._settings = core.settings.discord

    def group(self) -> app_commands.Group:
        permissions = None if self._settings.admin_role else discord.Permissions(manage_guild=True)
        group = app_commands.Group(
            name="quota",
            description="Spend limits (server managers)",
            guild_only=True,
            # explicit False: unset values fall back to the tree's (user installs, DMs)
            allowed_installs=app_commands.AppInstallationType(guild=True, user=False),
            allowed_contexts=app_commands.AppCommandContext(
                guild=True, dm_channel=False, private_channel=False
            ),
            default_permissions=permissions,
        )
        for command in self._commands():
            group.add_command(command)
        return group

    def _commands(self) -> list[app_commands.Command[Any, ..., Any]]:
        return [
            self._show(),
            self._set_limits(),
            self._grant(),
            self._reset(),
            self._unlimited(),
            self._report(),
        ]

    def _set_limits(self) -> app_commands.Command[Any, ..., Any]:
        @app_commands.command(name="set", description="Set a member's (or the server's) limits")
        @app_commands.describe(
            member="Whose limits (leave out for the whole server's pool)",
            daily="Dollars per day, or none",
            weekly="Dollars per week, or none",
            monthly="Dollars per month, or none",
        )
        async def set_limits(
            interaction: discord.Interaction,
            member: discord.Member | None = None,
            daily: str | None = None,
            weekly: str | None = None,
            monthly: str | None = None,
        ) -> None:
            given = {
                f"{name}_usd": parse_limit(value, name)
                for name, value in (("daily", daily), ("weekly", weekly), ("monthly", monthly))
                if value is not None
            }
            if not given:
                raise InvalidRequest("Give at least one of daily, weekly or monthly.")
            scope = self._scope(interaction, member)
            await self._core.ledger.set_limits(
                scope, QuotaLimits(**given), by=self._by(interaction)
            )
            shown = ", ".join(f"{k.removesuffix('_usd')} {render.usd(v)}" for k, v in given.items())
            await self._done(interaction, f"Limits of {self._whom(member)} set: {shown}.")

        return set_limits

    def _grant(self) -> app_commands.Command[Any, ..., Any]:
        @app_commands.command(name="grant", description="Give a member extra credit this period")
        @app_commands.describe(
            member="Who gets it", amount="Dollars", reason="Why (kept in the log)"
        )
        async def grant(
            interaction: discord.Interaction,
            member: discord.Member,
            amount: Range[float, 0.01, float(MAX_ADMIN_USD)],
            reason: Range[str, 1, 200],
        ) -> None:
            value = Decimal(str(amount))
            scope = self._scope(interaction, member)
            await self._core.ledger.grant(scope, value, reason, by=self._by(interaction))
            await self._done(interaction, f"Granted {format_usd(value)} to {self._whom(member)}.")

        return grant

    def _reset(self) -> app_commands.Command[Any, ..., Any]:
        @app_commands.command(name="reset", description="Back to the default limits")
        @app_commands.describe(member="Whose limits (leave out for the server's pool)")
        async def reset(
            interaction: discord.Interaction, member: discord.Member | None = None
        ) -> None:
            scope = self._scope(interaction, member)
            changed = await self._core.ledger.reset(scope, by=self._by(interaction))
            text = "back to the defaults" if changed else "already on the defaults"
            await self._done(interaction, f"Limits of {self._whom(member)}: {text}.")

        return reset

    def _report(self) -> app_commands.Command[Any, ..., Any]:
        @app_commands.command(name="report", description="Spending on this server")
        @app_commands.describe(period="Which period (default: this month)")
        @app_commands.choices(period=PERIOD_CHOICES)
        async def report(interaction: discord.Interaction, period: str | None = None) -> None:
            self._require_admin(interaction)
            span = window(
                Period(period or Period.MONTH.value),
                datetime.now(UTC),
                ZoneInfo(self._core.settings.quotas.timezone),
            )
            pool = self._admin(interaction).pool_key
            found = await self._core.ledger.report(pool, span.start, span.end)
            chart = await report_chart(self._core.db, found, span, _namer(interaction))
            embed = _report_embed(found, span.period)
            embed.set_image(url=f"attachment://{REPORT_FILENAME}")
            await interaction.response.send_message(
                embed=embed,
                file=discord.File(io.BytesIO(chart), filename=REPORT_FILENAME),
                ephemeral=True,
            )

        return report

    def _show(self) -> app_commands.Command[Any, ..., Any]:
        @app_commands.command(name="show", description="A member's (or the server's) standing")
        @app_commands.describe(member="Whose (leave out for the whole server's pool)")
        async def show(
            interaction: discord.Interaction, member: discord.Member | None = None
        ) -> None:
            scope = self._scope(interaction, member)
            roles = frozenset(
                name
                for role in (member.roles if member is not None else [])
                if not role.is_default()
                for name in (str(role.id), role.name)
            )
            allowances = await standing(self._core.ledger, scope, roles)
            embed = discord.Embed(colour=render.COLOUR, title=f"Limits of {self._title(member)}")
            for allowance in allowances:
                embed.add_field(
                    name=allowance.period.adjective.capitalize(), value=_standing(allowance)
                )
            await interaction.response.send_message(embed=embed, ephemeral=True)

        return show

    def _unlimited(self) -> app_commands.Command[Any, ..., Any]:
        @app_commands.command(
            name="unlimited", description="Let a member (or the server) spend freely"
        )
        @app_commands.describe(member="Whose (leave out for the server's pool)", on="On or off")
        async def unlimited(
            interaction: discord.Interaction, on: bool, member: discord.Member | None = None
        ) -> None:
            scope = self._scope(interaction, member)
            await self._core.ledger.set_unlimited(scope, on, by=self._by(interaction))
            state = "on" if on else "off"
            await self._done(interaction, f"Limits of {self._whom(member)}: unlimited {state}.")

        return unlimited

    def _require_admin(self, interaction: discord.Interaction) -> None:
        if not is_admin(interaction, self._settings):
            role = f" or the {self._settings.admin_role} role" if self._settings.admin_role else ""
            raise PolicyDenied(f"Only members with Manage Server{role} can manage quotas.")

    def _scope(self, interaction: discord.Interaction, member: discord.Member | None) -> str:
        self._require_admin(interaction)
        if member is None:
            return self._admin(interaction).pool_key
        return Identity(PLATFORM, str(interaction.guild_id), str(member.id)).user_key

    def _by(self, interaction: discord.Interaction) -> str:
        return self._admin(interaction).user_key

    @staticmethod
    def _admin(interaction: discord.Interaction) -> Identity:
        return Identity(PLATFORM, str(interaction.guild_id), str(interaction.user.id))

    @staticmethod
    def _title(member: discord.Member | None) -> str:
        return member.display_name if member is not None else "this server"

    @staticmethod
    def _whom(member: discord.Member | None) -> str:
        return member.mention if member is not None else "this server"

    @staticmethod
    async def _done(interaction: discord.Interaction, text: str) -> None:
        await interaction.response.send_message(text, ephemeral=True)


def _namer(interaction: discord.Interaction) -> Callable[[str], str]:
    """Names for the chart's top spenders: a cached member's display name, else their id."""

    def name_of(user_key: str) -> str:
        user_id = member_id(user_key)
        guild = interaction.guild
        member = guild.get_member(int(user_id)) if guild and user_id.isdigit() else None
        return member.display_name if member else user_id

    return name_of


def _report_embed(report: Report, period: Period) -> discord.Embed:
    embed = discord.Embed(
        colour=render.COLOUR,
        title=f"Spending {period.adverb}",
        description=f"{format_usd(report.total)} over {report.jobs} job(s).",
    )
    users = [
        f"<@{line.key.rsplit(':', 1)[-1]}> {format_usd(line.charged)} ({line.jobs})"
        for line in report.by_user
    ]
    models = [f"`{line.key}` {format_usd(line.charged)} ({line.jobs})" for line in report.by_model]
    if users:
        embed.add_field(name="By member", value=shorten("\n".join(users), 1024), inline=False)
    if models:
        embed.add_field(name="By model", value=shorten("\n".join(models), 1024), inline=False)
    return embed


def _standing(allowance: Allowance) -> str:
    if allowance.limit is None:
        return f"{format_usd(allowance.spent)} spent, no limit"
    resets = discord.utils.format_dt(allowance.resets_at, "R")
    return (
        f"{format_usd(allowance.spent)} of {render.usd(allowance.limit)} spent\n"
        f"{allowance.describe()}\nresets {resets}"
    )
