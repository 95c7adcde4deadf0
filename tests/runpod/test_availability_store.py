"""The record of models Runpod stopped serving (bot/runpod/availability.py), on both backends."""

from __future__ import annotations

from pathlib import Path

from bot.runpod.availability import Availability
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
