"""Which catalog models Runpod still serves, as the bot learned it from `/run` answers.

Runpod retires Public Endpoints (Whisper V3 Large, WAN 2.1/2.2, Seedance 1.0 Pro...): their
`/run` then answers 404. Each such answer counts against the model; after
`jobs.hide_model_after_404s` in a row the model is hidden from `/models` and autocomplete and
refused, until an operator runs `python -m bot models --enable ID`. A `/run` accepted resets the
count. The counts live in the database, so every process sharing it agrees.

What was read is kept for `STALE_S`: every command and every accepted `/run` asks, and the answer
almost never changes. A change made by this process is seen at once; one made by another process
(a second worker, `models --enable`) within `STALE_S`. Meanwhile this process may still refuse a
model just enabled, or admit one just hidden (its `/run` then answers 404 and nothing is
charged), and an accepted `/run` here may leave another process's fresh 404 counted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from bot.runpod.catalog import Model
from bot.storage.sql import Connection, Store

STALE_S = 2.0


def not_available(model: Model) -> str:
    """What a member is told about a model whose endpoint Runpod no longer has."""
    return f"{model.name} is not available at Runpod (its endpoint no longer exists)"


def visible(models: Iterable[Model], hidden: set[str]) -> list[Model]:
    """The models to offer: all but those hidden after Runpod answered 404 for them."""
    return [model for model in models if model.id not in hidden]


class Availability:
    def __init__(self, db: Store) -> None:
        self._db = db
        self._counted: dict[str, bool] = {}  # model -> hidden, for every model with a 404 counted
        self._read_at = float("-inf")
        self._writes = 0  # by this process, so a read begun before one is not kept

    async def hidden(self) -> set[str]:
        return {model for model, hidden in (await self._counts()).items() if hidden}

    async def _counts(self) -> dict[str, bool]:
        if time.monotonic() - self._read_at < STALE_S:
            return self._counted
        read_at, writes = time.monotonic(), self._writes
        rows = await self._db.fetchall(
            "SELECT model, hidden FROM model_availability WHERE not_found > 0 OR hidden = 1"
        )
        counted = {row[0]: bool(row[1]) for row in rows}
        if writes == self._writes:
            self._counted, self._read_at = counted, read_at
        return counted

    def _changed(self) -> None:
        """This process wrote the table: the next question reads it again."""
        self._writes += 1
        self._read_at = float("-inf")

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

        try:
            return await self._db.run(write)
        finally:
            self._changed()

    async def found(self, model_id: str) -> None:
        """A `/run` was accepted: the count starts again (written only when there was one)."""
        if model_id in await self._counts():
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

        try:
            return await self._db.run(write)
        finally:
            self._changed()
