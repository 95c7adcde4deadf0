"""Readiness: whether this process can do its work now, for `GET /health/ready`.

Ready means: the database takes a write transaction, every configured adapter is connected to
its platform, Runpod answered within `http.ready_runpod_minutes` (else it is asked now, once),
and the database file's schema is the one this bot writes. Each failing part is named with why.

Adapters report their connection here (`connected` / `disconnected`), or hand over a probe
(`watch`) where their SDK reconnects on its own and only it knows the connection's state; this
module knows no platform, only the names the adapters give.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.runpod.client import RunpodClient, RunpodError
from bot.storage.sql import Connection, Store, db_errors
from bot.storage.tables import SQLITE_MIGRATIONS as MIGRATIONS

DB_PROBE_TIMEOUT_S = 2.0
Probe = Callable[[], Awaitable[str | None]]
RUNPOD_PING_TIMEOUT_S = 3.0


@dataclass
class Readiness:
    """What is not ready, by part; adapters write into it, `/health/ready` reads it."""

    runpod_stale_s: float = 300.0
    _adapters: dict[str, str | None] = field(default_factory=dict)  # name -> why not connected
    _probes: dict[str, Probe] = field(default_factory=dict)  # name -> asks the SDK, when asked
    _db_probe: asyncio.Task[None] | None = None

    def expect(self, adapter: str) -> None:
        """A configured adapter: not ready until it says it is connected."""
        self._adapters.setdefault(adapter, "not connected yet")

    def connected(self, adapter: str) -> None:
        self._adapters[adapter] = None

    def disconnected(self, adapter: str, why: str) -> None:
        self._adapters[adapter] = why

    def watch(self, adapter: str, probe: Probe) -> None:
        """A connected adapter whose state `probe` tells (None, or why it is down) on each ask."""
        self._probes[adapter] = probe

    async def problems(self, db: Store, runpod: RunpodClient, ping_endpoint: str) -> dict[str, str]:
        """Part -> why it is not ready; empty when everything is."""
        found: dict[str, str] = {}
        if (why := await self._database(db)) is not None:
            found["database"] = why
        if (why := await _schema(db)) is not None:
            found["migrations"] = why
        for name, why_not in sorted(self._adapters.items()):
            probe = self._probes.get(name)
            if why_not is None and probe is not None:
                why_not = await probe()
            if why_not is not None:
                found[f"adapter:{name}"] = why_not
        if (why := await self._runpod(runpod, ping_endpoint)) is not None:
            found["runpod"] = why
        return found

    async def _database(self, db: Store) -> str | None:
        """An empty write transaction: fails at once on a read-only file, waits on a lock.

        A probe still waiting (another process holds the write lock) is not started twice.
        """
        if self._db_probe is None or self._db_probe.done():
            self._db_probe = asyncio.create_task(db.run(_nothing), name="readiness db probe")
        probe = self._db_probe
        done, _ = await asyncio.wait({probe}, timeout=DB_PROBE_TIMEOUT_S)
        if not done:
            return f"no write lock within {DB_PROBE_TIMEOUT_S:.0f} s (another process holds it)"
        error = probe.exception()
        if error is None:
            return None
        if isinstance(error, db_errors()):
            return f"not writable: {error}"
        raise error

    async def _runpod(self, runpod: RunpodClient, endpoint: str) -> str | None:
        last = runpod.last_answer_at
        if last is not None and time.monotonic() - last <= self.runpod_stale_s:
            return None
        try:
            await runpod.ping(endpoint, timeout_s=RUNPOD_PING_TIMEOUT_S)
        except RunpodError as exc:
            minutes = self.runpod_stale_s / 60
            return f"no answer in the last {minutes:g} min: {exc.message}"
        return None


async def _schema(db: Store) -> str | None:
    version, newest = await db.schema_version(), len(MIGRATIONS)
    if version < newest:
        return f"schema version {version}, this bot needs {newest} (restart to migrate)"
    return None


def _nothing(raw: Connection) -> None:
    """The probe's transaction body: taking the write lock is the test."""
    return None
