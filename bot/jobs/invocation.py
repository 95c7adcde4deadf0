"""What an adapter hands the job service (who asks what, where) and what it gets back."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.delivery import ChannelRef, Delivery
from bot.jobs.conversations import Thread
from bot.jobs.store import JobRecord
from bot.ledger.quota import Identity
from bot.policy import Where
from bot.requests import Request

UNKNOWN_JOB = "That job is not known to this bot."


@dataclass(frozen=True)
class Community:
    """A Discord server, a Slack workspace or the terminal: where a job can be seen.

    Every lookup by job id names the community asking, and a job of another one answers
    exactly like an id never issued, so ids cannot be probed across communities.
    """

    platform: str
    workspace: str

    def holds(self, job: JobRecord) -> bool:
        return job.identity[:2] == (self.platform, self.workspace)


@dataclass(frozen=True)
class Invocation:
    """A request plus who asked, where, and how to answer them."""

    request: Request
    identity: Identity
    channel: ChannelRef
    delivery: Delivery
    where: Where
    # An `ask` continuing a conversation, or starting one that replies at `place` continue.
    thread: Thread | None = None


@dataclass(frozen=True)
class Submitted:
    job_id: str
    estimate: Decimal
    awaiting_confirmation: bool = False
    cached: bool = False
