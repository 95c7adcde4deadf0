"""A Delivery that records what a user would see, for tests of the core without a chat platform."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.delivery import ChannelRef, Confirmation, Failure, Progress, Result, Route


@dataclass
class RecordingDelivery:
    channel: ChannelRef | None = None
    progress_updates: list[Progress] = field(default_factory=list)
    confirmations: list[Confirmation] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fail_deliveries: int = 0  # make the next N deliver() calls raise, like a platform outage
    routes: list[Route] = field(default_factory=list)  # the route of each delivered result
    refused: list[Route] = field(default_factory=list)  # the route of each failed deliver()
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _record(self, items: list[Any], item: Any) -> None:
        async with self._changed:
            items.append(item)
            self._changed.notify_all()

    async def progress(self, update: Progress) -> None:
        await self._record(self.progress_updates, update)

    async def confirm(self, request: Confirmation) -> None:
        await self._record(self.confirmations, request)

    async def deliver(self, result: Result, route: Route = Route.EDIT) -> None:
        if self.fail_deliveries:
            self.fail_deliveries -= 1
            await self._record(self.refused, route)
            raise ConnectionError("platform unavailable")
        self.routes.append(route)
        await self._record(self.results, result)

    async def fail(self, failure: Failure) -> None:
        await self._record(self.failures, failure)

    async def warn(self, job_id: str, message: str) -> None:
        await self._record(self.warnings, message)

    @property
    def ended(self) -> int:
        return len(self.results) + len(self.failures)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)
        return predicate()


class DeliveryHub:
    """A DeliveryFactory for a fake platform: one RecordingDelivery per channel reference."""

    def __init__(self) -> None:
        self.by_channel: dict[str, RecordingDelivery] = {}

    def __call__(self, channel: ChannelRef) -> RecordingDelivery:
        return self.by_channel.setdefault(channel.channel, RecordingDelivery(channel))
