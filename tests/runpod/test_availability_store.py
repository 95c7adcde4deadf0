"""The record of models Runpod stopped serving (bot/runpod/availability.py), on both backends."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bot.runpod.availability import STALE_S, Availability
from bot.storage.sql import open_store


async def test_404s_hide_a_model_after_the_count_and_an_accepted_run_offers_it_again(
    db_place: Path | str,
) -> None:
    db = await open_store(db_place)
    try:
        models = Availability(db)
        assert await models.not_found("flux", hide_after=2) is False
        assert await models.hidden() == set()
        assert await models.not_found("flux", hide_after=2) is True  # this answer hid it
        assert await models.not_found("flux", hide_after=2) is False  # already hidden
        assert await models.hidden() == {"flux"}
        await models.found("flux")
        assert await models.hidden() == set()
        assert await models.enable("flux") is False  # nothing left to reset
    finally:
        await db.close()


async def test_another_process_change_is_seen_within_the_staleness_and_our_own_at_once(
    db_place: Path | str,
) -> None:
    db = await open_store(db_place)
    try:
        ours, theirs = Availability(db), Availability(db)  # two processes on one database
        assert await ours.hidden() == set()
        assert await theirs.not_found("flux", hide_after=1) is True
        assert await ours.hidden() == set(), "read once, kept for STALE_S"
        started = time.monotonic()
        while await ours.hidden() != {"flux"}:
            assert time.monotonic() - started < STALE_S + 1, "still stale after STALE_S"
            await asyncio.sleep(0.05)
        assert await ours.enable("flux") is True
        assert await ours.hidden() == set(), "our own write is seen at once"
        assert await ours.not_found("flux", hide_after=1) is True
        assert await ours.hidden() == {"flux"}
    finally:
        await db.close()
