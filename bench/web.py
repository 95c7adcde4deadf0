"""The web page's answer times with 10,000 results in a workspace (and 10,000 in another).

`python -m bench.web [--database sqlite|postgresql://...] [--rounds 15]`: fills the jobs table
directly (delivered results of 50 members and 3 models, some from an NSFW channel, one member
hidden), signs a member and an admin in, and times each page over HTTP through the bot's own
listener, medians and maxima of `--rounds`. PostgreSQL runs in a throwaway database on the
server given (ANALYZEd after the bulk fill, as autovacuum would be after gradual growth).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.common import fresh_place
from bot import web as web_page
from bot.app import Core, open_core
from bot.config import Settings
from bot.delivery import NSFW_CHANNEL, ChannelRef
from bot.ledger.quota import Identity
from bot.listener import Listener
from bot.storage.sql import Connection, is_postgres
from bot.web.hiding import Hiding
from bot.web.http import COOKIE

RESULTS = 10_000
MEMBERS = 50
MODELS = ("flux-schnell", "flux-dev", "qwen-image")
WORKSPACE = "1000"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def _rows(workspace: str) -> Iterator[tuple[object, ...]]:
    start = time.time() - RESULTS * 60
    for n in range(RESULTS):
        user = str(900 + n % MEMBERS)
        extra = {NSFW_CHANNEL: "1"} if n % 97 == 0 else {}
        ref = ChannelRef("discord", workspace, "42", user, extra=extra)
        request = {"input": {"prompt": f"result {n} of a bench", "seed": n}, "count": 1}
        made = start + n * 60
        yield (
            f"{workspace}-{n:05d}", "discord", workspace, user, ref.to_json(), "imagine",
            MODELS[n % len(MODELS)], json.dumps(request), "delivered", "0.0024", "0.0024",
            "[]", made, made,
        )  # fmt: skip


async def _fill(core: Core) -> None:
    def insert(raw: Connection) -> None:
        for workspace in (WORKSPACE, "2000"):
            raw.executemany(
                "INSERT INTO jobs (id, platform, workspace, user_id, channel_ref, command, model,"
                " request, state, estimate, cost, copies, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _rows(workspace),
            )

    await core.db.run(insert)
    await Hiding(core.db).hide_member(Identity("discord", WORKSPACE, "901"), True)
    if is_postgres(core.settings.storage.database):
        await core.db.run(lambda raw: raw.execute("ANALYZE"))


async def _cookie(core: Core, user: str, *, admin: bool) -> str:
    signins = web_page.signins(core)
    link = await signins.issue(Identity("discord", WORKSPACE, user), f"member {user}", admin=admin)
    session = await signins.redeem(link)
    assert session is not None
    return session


async def _measure(place: str, folder: Path, rounds: int) -> None:
    settings = Settings(
        runpod={"api_key": "rp_bench"},
        storage={"database": place, "spool": str(folder / "spool")},
        web={"public_url": "http://bench.test"},
    )
    async with open_core(settings) as core:
        await _fill(core)
        member, admin = (
            await _cookie(core, "900", admin=False),
            await _cookie(core, "902", admin=True),
        )
        listener = Listener(core.jobs, host="127.0.0.1", port=0)
        listener.mounts[web_page.PREFIX] = web_page.web_app(core)
        await listener.start()
        base = f"http://127.0.0.1:{listener.port}/web"
        pages = {
            "gallery": (member, "/"),
            "page 2": (member, "/?page=2"),
            "page 400": (member, "/?page=400"),
            "by model": (member, "/?model=flux-dev"),
            "by member": (member, "/?member=903"),
            "a result": (member, f"/job/{WORKSPACE}-09998"),
            "my spend": (member, "/spend"),
            "admin": (admin, "/admin"),
        }
        try:
            async with httpx.AsyncClient() as client:
                for label, (cookie, path) in pages.items():
                    times = []
                    for _ in range(rounds + 1):  # the first warms caches; not counted
                        began = time.perf_counter()
                        answer = await client.get(base + path, cookies={COOKIE: cookie})
                        times.append((time.perf_counter() - began) * 1000)
                        assert answer.status_code == 200, (label, answer.status_code)
                    kept = times[1:]
                    print(
                        f"  {label:<10} median {statistics.median(kept):6.1f} ms"
                        f"  max {max(kept):6.1f} ms",
                        flush=True,
                    )
        finally:
            await listener.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", action="append", help="sqlite or a PostgreSQL DSN")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    for where in args.database or ["sqlite", DEFAULT_PG]:
        with tempfile.TemporaryDirectory() as tmp, fresh_place(where, Path(tmp)) as place:
            load = os.getloadavg()[0]
            print(f"{where.split('@')[-1]}: {RESULTS} results (load {load:.2f})", flush=True)
            asyncio.run(_measure(place, Path(tmp), args.rounds))


if __name__ == "__main__":
    main()
