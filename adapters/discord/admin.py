"""/quota set | grant | reset | report: spend limits for server managers.

Discord hides the group from members without Manage Server unless an admin role is configured
(then everyone sees it, since Discord cannot require a role by name); either way each command
checks again when it runs, so the check never depends on the server's command settings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
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
from bot.ledger import Report
from bot.periods import Period, window
from bot.quota import MAX_ADMIN_USD, admin_amount, format_usd

PERIOD_CHOICES = [Choice(name=p.adjective, value=p.value) for p in Period]
NO_LIMIT = ("none", "no", "unlimited", "off", "-")


def parse_limit(text: str | None, name: str) -> Decimal | None:
    """`2.50` or `$2.50` -> Decimal; `none` -> None (no limit); anything else is refused."""
    assert text is not None
    cleaned = text.strip().lower().lstrip("$")
    if cleaned in NO_LIMIT:
        return None
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise InvalidRequest(f"{name} must be an amount in dollars (like 2.50) or none") from None
    if not amount.is_finite() or amount < 0:
        raise InvalidRequest(f"{name} must be zero or more")
    return admin_amount(amount)


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
            default_permissions=permissions,
        )
        for command in self._commands():
            group.add_command(command)
        return group

    def _commands(self) -> list[app_commands.Command[Any, ..., Any]]:
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

        @app_commands.command(name="reset", description="Back to the default limits")
        @app_commands.describe(member="Whose limits (leave out for the server's pool)")
        async def reset(
            interaction: discord.Interaction, member: discord.Member | None = None
        ) -> None:
            scope = self._scope(interaction, member)
            changed = await self._core.ledger.reset(scope, by=self._by(interaction))
            text = "back to the defaults" if changed else "already on the defaults"
            await self._done(interaction, f"Limits of {self._whom(member)}: {text}.")

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
            pool = f"{PLATFORM}:{interaction.guild_id}"
            found = await self._core.ledger.report(pool, span.start, span.end)
            await interaction.response.send_message(
                embed=_report_embed(found, span.period), ephemeral=True
            )

        return [set_limits, grant, reset, report]

    def _require_admin(self, interaction: discord.Interaction) -> None:
        if not is_admin(interaction, self._settings):
            role = f" or the {self._settings.admin_role} role" if self._settings.admin_role else ""
            raise PolicyDenied(f"Only members with Manage Server{role} can manage quotas.")

    def _scope(self, interaction: discord.Interaction, member: discord.Member | None) -> str:
        self._require_admin(interaction)
        pool = f"{PLATFORM}:{interaction.guild_id}"
        return pool if member is None else f"{pool}:{member.id}"

    def _by(self, interaction: discord.Interaction) -> str:
        return f"{PLATFORM}:{interaction.guild_id}:{interaction.user.id}"

    @staticmethod
    def _whom(member: discord.Member | None) -> str:
        return member.mention if member is not None else "this server"

    @staticmethod
    async def _done(interaction: discord.Interaction, text: str) -> None:
        await interaction.response.send_message(text, ephemeral=True)


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
