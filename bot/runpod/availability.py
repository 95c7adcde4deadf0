"""Which catalog models Runpod still serves, as the bot learned it from `/run` answers.

Runpod retires Public Endpoints (Whisper V3 Large, WAN 2.1/2.2, Seedance 1.0 Pro...): their
`/run` then answers 404. Each such answer counts against the model; after
`jobs.hide_model_after_404s` in a row the model is hidden from `/models` and autocomplete and
refused, until an operator runs `python -m bot models --enable ID`. A `/run` accepted resets the
count. The counts live in the database, so every process sharing it agrees.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from bot.runpod.catalog import Model
from bot.storage.sql import Connection, Store


def not_available(model: Model) -> str:
    """What a member is told about a model whose endpoint Runpod no longer has."""
    return f"{model.name} is not available at Runpod (its endpoint no longer exists)"


def visible(models: Iterable[Model], hidden: set[str]) -> list[Model]:
    """The models to offer: all but those hidden after Runpod answered 404 for them."""
    return [model for model in models if model.id not in hidden]


class Availability:
    def __init__(self, db: Store) -> None:
        self._db = db

    async def hidden(self) -> set[str]:
        rows = await self._db.fetchall("SELECT model FROM model_availability WHERE hidden = 1")
        return {row[0] for row in rows}

    async def not_found(self, model_id: str, *, hide_after: int) -> bool:
        """Count a `/run` answered 404; True when this answer hid the model."""

        def write(raw: Connection) -> bool:
            raw.execute(
                "INSERT INTO model_availability (model, not_found, hidden, updated_at)"
                " VALUES (?, 1, 0, ?) ON CONFLICT(model) DO UPDATE SET"
                " not_found = model_availability.not_found + 1, updated_at = excluded.updated_at",
                (model_id, time.time()),
            )
            hid = raw.execute(
                "UPDATE model_availability SET hidden = 1"
                " WHERE model = ? AND hidden = 0 AND not_found >= ?",
                (model_id, hide_after),
            ).rowcount
            return bool(hid)

        return await self._db.run(write)

    async def found(self, model_id: str) -> None:
        """A `/run` was accepted: the count starts again (written only when there was one)."""
        row = await self._db.fetchone(
            "SELECT 1 FROM model_availability WHERE model = ? AND not_found > 0", (model_id,)
        )
        if row is not None:
            await self.enable(model_id)

    async def enable(self, model_id: str) -> bool:
        """Offer the model again with a fresh count; False when it was neither hidden nor counted."""

        def write(raw: Connection) -> bool:
            return bool(
                raw.execute(
                    "UPDATE model_availability SET not_found = 0, hidden = 0, updated_at = ?"
                    " WHERE model = ? AND (not_found > 0 OR hidden = 1)",
                    (time.time(), model_id),
                ).rowcount
            )

        return await self._db.run(write)
