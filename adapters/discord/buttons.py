"""Persistent buttons: the custom_id carries the action and the job id, state lives in SQLite.

Every button is one `JobButton` (a discord.py DynamicItem registered at start), so a click on a
message posted before a restart is dispatched like any other: nothing is kept in memory per
message. custom_id is `rpb:<action>:<job id>` (Discord allows 100 characters).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import discord

from bot.commands import command_of_kind

ACTIONS = ("reroll", "vary", "cancel", "request", "confirm", "fresh")
PATTERN = r"rpb:(?P<action>reroll|vary|cancel|request|confirm|fresh):(?P<job>[A-Za-z0-9_-]{1,64})"

_STYLE = {
    "reroll": (
        discord.ButtonStyle.secondary,
        "Reroll",
        "\N{ANTICLOCKWISE DOWNWARDS AND UPWARDS OPEN CIRCLE ARROWS}",
    ),
    "vary": (discord.ButtonStyle.secondary, "Variations", "\N{ARTIST PALETTE}"),
    "request": (discord.ButtonStyle.secondary, "Show request", "\N{PAGE FACING UP}"),
    "cancel": (discord.ButtonStyle.danger, "Cancel", None),
    "confirm": (discord.ButtonStyle.success, "Confirm", None),
    "fresh": (discord.ButtonStyle.secondary, "Start fresh", "\N{SPARKLES}"),
}


class ButtonHandler(Protocol):
    async def on_button(
        self, interaction: discord.Interaction, action: str, job_id: str
    ) -> None: ...


def custom_id(action: str, job_id: str) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown button action {action!r}")
    return f"rpb:{action}:{job_id}"


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=PATTERN):
    def __init__(self, action: str, job_id: str) -> None:
        style, label, emoji = _STYLE[action]
        super().__init__(
            discord.ui.Button(
                style=style, label=label, emoji=emoji, custom_id=custom_id(action, job_id)
            )
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> JobButton:
        return cls(match["action"], match["job"])

    async def callback(self, interaction: discord.Interaction) -> None:
        handler: ButtonHandler = interaction.client.adapter  # type: ignore[attr-defined]
        await handler.on_button(interaction, self.action, self.job_id)


def view(job_id: str, *actions: str) -> discord.ui.View:
    """A view of job buttons; with no timeout and only dynamic items, discord.py keeps nothing."""
    buttons = discord.ui.View(timeout=None)
    for action in actions:
        buttons.add_item(JobButton(action, job_id))
    return buttons


def progress_view(job_id: str) -> discord.ui.View:
    return view(job_id, "cancel")


def confirm_view(job_id: str) -> discord.ui.View:
    return view(job_id, "confirm", "cancel")


def result_actions(kind: str, *, continues: bool = False) -> tuple[str, ...]:
    """An answer (`/ask`) posted where replies reach the bot (`continues`: a server's channel
    or the member's DM with the bot, not a group DM) is a conversation's turn: Start fresh
    makes its next turn a new one."""
    if kind == "text":
        return ("reroll", "request", "fresh") if continues else ("reroll", "request")
    if command_of_kind(kind).variations:
        return ("reroll", "vary", "request")
    return ("reroll", "request")


def result_view(job_id: str, kind: str, *, continues: bool) -> discord.ui.View:
    return view(job_id, *result_actions(kind, continues=continues))


def result_items(job_id: str, kind: str) -> list[JobButton]:
    """The result's buttons, for a Components V2 card's action row."""
    return [JobButton(action, job_id) for action in result_actions(kind)]
