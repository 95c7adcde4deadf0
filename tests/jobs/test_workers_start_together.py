"""Workers started together on a fresh database (compose.postgres.yaml starts two at once):
each creates the Slack adapter's tables, and neither may fail because the other did it first."""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapters.slack.store import SlackStore
from bot.storage.sql import open_store


async def test_two_workers_creating_the_slack_tables_at_once_both_start(
    db_place: Path | str,
) -> None:
    stores = [await open_store(db_place) for _ in range(3)]
    try:
        opened = await asyncio.gather(
            *(SlackStore(store).open() for store in stores), return_exceptions=True
        )
        assert [repr(o) for o in opened if o is not None] == []
        first, second = SlackStore(stores[0]), SlackStore(stores[1])
        assert await first.first_time("event:Ev1")
        assert not await second.first_time("event:Ev1")  # one table, seen by every worker
    finally:
        for store in stores:
            await store.close()
