"""The members tests submit jobs as through the core (platform "test", no chat adapter).

The ledger and CLI tests name their members on a Discord server instead (tests/ledger/support.py:
scope keys such as `discord:g1:alice`, as an operator types them)."""

from __future__ import annotations

from bot.jobs.invocation import Community
from bot.ledger.quota import Identity

ALICE = Identity("test", "guild1", "alice")
BOB = Identity("test", "guild1", "bob")
HERE = Community(ALICE.platform, ALICE.workspace)


def member(user: str) -> Identity:
    """Another member of HERE (for tests that need many)."""
    return Identity(HERE.platform, HERE.workspace, user)
