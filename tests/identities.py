"""The members tests submit jobs as through the core (no chat platform): one community, two members."""

from __future__ import annotations

from bot.jobs.invocation import Community
from bot.ledger.quota import Identity

ALICE = Identity("test", "guild1", "alice")
BOB = Identity("test", "guild1", "bob")
HERE = Community(ALICE.platform, ALICE.workspace)
