"""The core's one error base: every `BotError` carries a message fit to show a user.

Adapters turn these into a platform reply in exactly one place; anything that is not a
`BotError` is a bug, logged with its traceback and shown to the user as a generic apology.
"""

from __future__ import annotations


class BotError(Exception):
    """An expected failure with a message for the person who asked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(BotError):
    """The configuration is invalid; the message names the key."""


class InvalidRequest(BotError):
    """A request or its parameters are wrong; nothing was run or charged."""


class UnknownModel(InvalidRequest):
    """No catalog model matches the given name."""


class PolicyDenied(BotError):
    """This user, channel or prompt may not run this; nothing was charged."""


def clip(text: str, limit: int = 40) -> str:
    """User input echoed in a message, cut short: a refusal must fit in one chat message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown(value: object, limit: int = 40) -> str:
    """`repr(value)`, clipped."""
    return clip(repr(value), limit)
