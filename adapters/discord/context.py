"""What the core needs to know about an interaction: who, where, and how to answer later.

Also the one place where errors become replies: a `BotError` is shown as it is, anything else
is logged with its traceback and shown as a short apology. Errors are always ephemeral.
"""

from __future__ import annotations

import logging
import time

import discord
from discord import app_commands

from bot.config import DiscordSettings
from bot.delivery import NSFW_CHANNEL, ChannelRef
from bot.errors import BotError
from bot.jobs import Community
from bot.ledger import Identity
from bot.policy import Where

log = logging.getLogger(__name__)

PLATFORM = "discord"
DM_WORKSPACE = "dm"
APOLOGY = "Sorry, something went wrong inside the bot (it has been logged)."


def is_personal(interaction: discord.Interaction) -> bool:
    """Used through the member's own install (user install), with no server's install behind
    it: a DM or group DM, or a server that never added the bot."""
    return interaction.is_user_integration() and not interaction.is_guild_integration()


def workspace_of(interaction: discord.Interaction) -> str:
    return pool(str(interaction.user.id), interaction.guild_id, personal=is_personal(interaction))


def pool(user: str, guild_id: int | None, *, personal: bool) -> str:
    """The workspace a member's use is charged to: the guild id; "dm" for the bot's DM; the
    member's personal pool for personal use."""
    if personal:
        return Identity.personal(PLATFORM, user).workspace
    return str(guild_id) if guild_id else DM_WORKSPACE


def community_of(interaction: discord.Interaction) -> Community:
    """The server the interaction happened in (all DMs are one "dm" community; a member's
    personal use is their own)."""
    return Community(PLATFORM, workspace_of(interaction))


def identity_of(interaction: discord.Interaction) -> Identity:
    """("discord", guild id or "dm", user id), with role ids and names for quota tiers; the
    member's personal pool (no roles: no server chose them) for personal use."""
    if is_personal(interaction):
        return Identity.personal(PLATFORM, str(interaction.user.id))
    roles: set[str] = set()
    if isinstance(interaction.user, discord.Member):
        for role in interaction.user.roles:
            if not role.is_default():
                roles.update((str(role.id), role.name))
    return Identity(
        PLATFORM, workspace_of(interaction), str(interaction.user.id), roles=frozenset(roles)
    )


def is_admin(interaction: discord.Interaction, settings: DiscordSettings) -> bool:
    """Manage Server (or Administrator) in this guild, or the configured admin role."""
    if interaction.guild_id is None or not isinstance(interaction.user, discord.Member):
        return False
    if is_personal(interaction):  # a server that did not add the bot: its roles say nothing
        return False
    return _admin(interaction.permissions, interaction.user, settings)


def member_is_admin(member: discord.Member, settings: DiscordSettings) -> bool:
    """The same test for a member fetched from the server (the web page's re-check)."""
    return _admin(member.guild_permissions, member, settings)


def _admin(
    permissions: discord.Permissions, member: discord.Member, settings: DiscordSettings
) -> bool:
    if permissions.manage_guild or permissions.administrator:
        return True
    wanted = settings.admin_role
    return wanted is not None and any(wanted in (str(role.id), role.name) for role in member.roles)


def where_of(interaction: discord.Interaction, settings: DiscordSettings) -> Where:
    """A thread follows its parent channel's rules (policy.channels is keyed by channel id)."""
    channel = interaction.channel
    ruled_by = channel.parent_id if isinstance(channel, discord.Thread) else interaction.channel_id
    return Where(
        channel=str(ruled_by),
        is_dm=interaction.guild_id is None,
        nsfw_channel=in_nsfw_channel(interaction),
        is_admin=is_admin(interaction, settings),
        personal=is_personal(interaction),
    )


def in_nsfw_channel(interaction: discord.Interaction) -> bool:
    """Asked in an age-restricted channel (a thread follows its parent)."""
    is_nsfw = getattr(interaction.channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


def channel_ref(
    interaction: discord.Interaction,
    *,
    message_id: int | None,
    extra: dict[str, str] | None = None,
) -> ChannelRef:
    """Where this interaction's job answers: its token while valid, the channel after that.

    `issued_at` (epoch seconds) dates the token, which Discord accepts for 15 minutes;
    `upload_limit` is this channel's live limit when the job started.
    """
    return ChannelRef(
        platform=PLATFORM,
        workspace=workspace_of(interaction),
        channel=str(interaction.channel_id),
        user=str(interaction.user.id),
        message=str(message_id) if message_id else None,
        extra={
            "issued_at": f"{time.time():.3f}",
            "upload_limit": str(interaction.filesize_limit),
            **({NSFW_CHANNEL: "1"} if in_nsfw_channel(interaction) else {}),
            **(extra or {}),
        },
    )


def user_message(error: BaseException, *, about_a_job: bool = True) -> str:
    """What to tell the user about `error`; logs the unexpected ones with their traceback.

    `about_a_job`: the error refused a job, so the message says nothing was charged (refusals
    are raised before a job is held). An unexpected error says nothing about money: it may come
    after the job was held and started, and the job's own messages tell what it cost.
    """
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, BotError):
        message = error.message
    elif isinstance(error, app_commands.TransformerError):
        message = f"{shown(error.value)} is not a valid {error.type.name} here."
    elif isinstance(error, app_commands.AppCommandError):
        message = "You cannot use that command here."
    else:
        log.error("unexpected error in a Discord interaction", exc_info=error)
        return APOLOGY
    return with_charge_note(message) if about_a_job else message


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def with_charge_note(message: str) -> str:
    """Say nothing was charged (refusals come before any hold; failed jobs are released) unless
    the message already speaks of charging."""
    if "charged" in message.lower():
        return message
    return f"{message.rstrip()} Nothing was charged."


async def reply_ephemeral(interaction: discord.Interaction, text: str) -> None:
    """Answer only the person who asked, whatever state the interaction is in."""
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True)
            return
        if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
            # A public "thinking..." placeholder: remove it so the error is seen by the asker only.
            try:
                await interaction.delete_original_response()
            except discord.HTTPException:
                log.debug("could not remove the thinking placeholder", exc_info=True)
        await interaction.followup.send(text, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not tell user %s: %s", interaction.user.id, exc)


async def report_error(
    interaction: discord.Interaction, error: BaseException, *, about_a_job: bool = True
) -> None:
    """The one place errors become replies: ephemeral, and never a traceback."""
    await reply_ephemeral(interaction, user_message(error, about_a_job=about_a_job))
