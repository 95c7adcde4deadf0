"""Who may run what, where: per-channel models and commands, blocked terms, NSFW gating, DMs.

Adapters describe where a request came from (`Where`); the policy answers with a PolicyDenied
whose message tells the user what is allowed instead. Nothing is held or charged before it passes.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from bot.config_fields import PolicyFields
from bot.errors import PolicyDenied
from bot.runpod.catalog import Model


@dataclass(frozen=True)
class Where:
    """The platform facts the policy needs about where a request was made."""

    channel: str
    is_dm: bool = False
    nsfw_channel: bool = False
    is_admin: bool = False
    personal: bool = False  # the member's own install (not a server's): the strictest rules


PERSONAL_OFF = (
    "This bot's operator has not turned on personal use (the app installed on your account, "
    "outside a server that installed it); use it in a server that has it."
)


class Policy:
    def __init__(self, settings: PolicyFields, *, personal_use: bool = False) -> None:
        self._settings = settings
        self._personal_use = personal_use
        self._blocked = [
            re.compile(rf"(?<!\w){re.escape(_fold(term))}(?!\w)")
            for term in settings.blocked_terms
            if term.strip()
        ]

    def check(self, command: str, model: Model, prompt: str, where: Where) -> None:
        if where.personal and not self._personal_use:
            raise PolicyDenied(PERSONAL_OFF)
        if where.is_dm and not self._settings.allow_dms:
            raise PolicyDenied("This bot does not run jobs in direct messages; ask in a channel.")
        channel = self._settings.channels.get(where.channel)
        if channel is not None and channel.commands is not None and command not in channel.commands:
            allowed = ", ".join(f"/{c}" for c in channel.commands) or "no commands"
            raise PolicyDenied(f"/{command} is not allowed in this channel (allowed: {allowed}).")
        if channel is not None and channel.models is not None and model.id not in channel.models:
            allowed = ", ".join(channel.models) or "none"
            raise PolicyDenied(f"{model.id} is not allowed in this channel (allowed: {allowed}).")
        if model.nsfw and not _nsfw_allowed(where):
            raise PolicyDenied(f"{model.name} may only be used in age-restricted channels.")
        folded = _fold(prompt)
        for pattern in self._blocked:
            if pattern.search(folded):
                raise PolicyDenied("The prompt contains a term this community has blocked.")

    def allowed_models(self, models: list[Model], where: Where) -> list[Model]:
        """The models a picker should offer here (autocomplete)."""
        channel = self._settings.channels.get(where.channel)
        return [
            m
            for m in models
            if (channel is None or channel.models is None or m.id in channel.models)
            and (not m.nsfw or _nsfw_allowed(where))
        ]


def _nsfw_allowed(where: Where) -> bool:
    """An age-restricted channel, or the bot's DM with a server's install. Personal use may
    reach group DMs and servers that never chose the bot: only a channel's own flag counts."""
    return where.nsfw_channel or (where.is_dm and not where.personal)


def _fold(text: str) -> str:
    """Case- and accent-insensitive form, so `Ünsafe` matches a blocked `unsafe`."""
    if text.isascii():  # nothing to decompose: the same as below, without a call per letter
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))
