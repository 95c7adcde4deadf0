"""Riding out the store going away: writes that move a job wait for it to come back.

When PostgreSQL restarts, the network drops, or the SQLite file stays locked past the busy
timeout, a job's next write fails with an error `bot.storage.sql.unreachable` recognises. `outlast`
tries it again with capped backoff until `storage.outage_s` has passed; the job pauses
where it is and carries on when the store answers. Retrying is safe because each retried
write is idempotent (a fenced `UPDATE` to the same values, an idempotent settle/release), and
fenced: if this worker's lease lapsed meanwhile and another worker took the job, the retried
write raises `LeaseLost` and nothing is delivered or charged here.

One WARNING when this process finds the store gone, one INFO when it answers again, however
many jobs and heartbeats were waiting in between.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.storage.sql import db_errors, unreachable

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_WAIT_S = 0.2
LONGEST_WAIT_S = 5.0  # the backoff's cap: a returning store is noticed within this


class StoreAway(Exception):
    """The store stayed away past `storage.outage_s`: the job stops in this process, writing
    nothing. Its lease lapses meanwhile (`outage_s` > `workers.lease_s`), so when the store
    is back a live worker (this one, joined anew) takes the job over where it stood."""


class Outage:
    """Whether this process last found the store away, shared by every job and the heartbeat."""

    def __init__(self) -> None:
        self.since: float | None = None  # monotonic; None while the store answers

    def gone(self, exc: BaseException) -> None:
        """Note a failure that says the store is away; logged once per outage."""
        if self.since is None:
            self.since = time.monotonic()
            log.warning("the store is unreachable (%s); jobs wait for it", _first(exc))

    def back(self) -> None:
        """Note a store that answered; logs the end of an outage once."""
        if self.since is not None:
            away = time.monotonic() - self.since
            self.since = None
            log.info("the store is reachable again after %.1fs; jobs carry on", away)

    async def outlast(self, op: Callable[[], Awaitable[T]], *, deadline_s: float) -> T:
        """Run `op`, again and again while the store is away, for up to `deadline_s`.

        Any other error is raised as it came; past the deadline, `StoreAway`.
        """
        give_up = time.monotonic() + deadline_s
        wait = FIRST_WAIT_S
        while True:
            try:
                result = await op()
            except db_errors() as exc:
                if not unreachable(exc):
                    raise
                left = give_up - time.monotonic()
                if left <= 0:
                    raise StoreAway(f"the store stayed away for {deadline_s:.0f}s") from exc
                self.gone(exc)
                await asyncio.sleep(min(wait, left))
                wait = min(wait * 2, LONGEST_WAIT_S)
                continue
            self.back()
            return result


def _first(exc: BaseException) -> str:
    """The first line of a driver's message (psycopg's run over several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
