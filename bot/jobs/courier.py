"""Getting a paid result to the member: every route, best first, again and again until shown.

A platform that refuses a result for a while (Slack answering 5xx to `chat.update`, Discord
502 to the interaction edit, a deleted message) must not lose what the member paid for. One
round tries each `Route` in turn (edit -> new message -> direct message -> links served by the
bot), each try bounded by `delivery.attempt_timeout_s`; the first that the platform accepts
ends it. Between failed rounds `JobRunner` waits `delay(round)`: `retry_first_s`, doubling, at
most `retry_max_s`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from bot.config import DeliverySettings
from bot.delivery import Delivery, Result, Route
from bot.jobs.links import ResultLinks

log = logging.getLogger(__name__)

MAX_DOUBLINGS = 32  # past this the wait is retry_max_s whatever the settings


class Undelivered(Exception):
    """Every route failed this round; the message is the last platform error."""


class Courier:
    def __init__(self, settings: DeliverySettings, links: ResultLinks) -> None:
        self._settings = settings
        self._links = links

    @property
    def horizon_s(self) -> float:
        """How long after completion a result is offered before the job is `undeliverable`."""
        return self._settings.horizon_s

    def delay(self, round: int) -> float:
        """How long to wait after failed round number `round` (0 is the first)."""
        first, most = self._settings.retry_first_s, self._settings.retry_max_s
        return most if round >= MAX_DOUBLINGS else min(most, first * 2**round)

    async def hand_over(self, delivery: Delivery, result: Result) -> Route:
        """Offer the result on each route until one is accepted; raises Undelivered if none is."""
        failure: Exception | None = None
        for route in Route:
            offered = self._linked(result) if route is Route.LINK else result
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                async with asyncio.timeout(self._settings.attempt_timeout_s):
                    await delivery.deliver(offered, route)
            except Exception as exc:
                failure = exc
                log.warning("job %s: delivery by %s failed: %s", result.job_id, route, _say(exc))
                continue
            return route
        raise Undelivered(_say(failure))

    def _linked(self, result: Result) -> Result:
        """The result with every file pointing at the bot's own signed link (when it has one)."""
        files = tuple(
            replace(f, source_url=self._links.url(result.job_id, f.filename) or f.source_url)
            for f in result.files
        )
        return replace(result, files=files)


def _say(exc: BaseException | None) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__
