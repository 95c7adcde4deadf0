"""The gallery's listing: one workspace's finished results, newest first, a page at a time.

Every query names the session's platform and workspace, so no page can list another
workspace's jobs; the job ids it returns are then opened through `Community`-scoped lookups.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.jobs.invocation import Community
from bot.jobs.states import WITH_RESULT, sql_in
from bot.requests import prompt_of
from bot.storage.sql import Connection, Store
from bot.web.hiding import LISTED, nsfw_channels_clause, opted_out
from bot.web.names import names_in

PAGE_SIZE = 24


@dataclass(frozen=True)
class Entry:
    job_id: str
    member: str
    command: str
    model: str
    prompt: str
    cost: Decimal
    made_at: float


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    number: int
    has_next: bool
    models: list[str]  # every model with a result here, for the filter
    members: list[str]  # every member with a result here, for the filter
    names: dict[str, str]  # member id -> the name the adapters last saw (bot/web/names.py)


async def page(
    db: Store,
    community: Community,
    number: int = 1,
    *,
    model: str | None = None,
    member: str | None = None,
    unlisted_models: Collection[str] = (),
    nsfw_slack_channels: Collection[str] = (),
) -> Page:
    """Page `number` (from 1) of the community's results, optionally one model's or member's.

    Results of `unlisted_models` (the NSFW ones), of NSFW channels and hidden ones
    (bot/web/hiding.py) are never listed. One read, so the page and its filters agree."""
    number = max(1, number)

    def read(raw: Connection) -> Page:
        where, params = _scope(raw, community, unlisted_models, nsfw_slack_channels)
        for column, wanted in (("model", model), ("user_id", member)):
            if wanted:
                where += f" AND {column} = ?"
                params.append(wanted)
        rows = raw.execute(
            "SELECT id, user_id, command, model, request, cost, created_at FROM jobs"
            f" WHERE {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
            (*params, PAGE_SIZE + 1, (number - 1) * PAGE_SIZE),
        ).fetchall()
        gone = opted_out(raw, community)
        return Page(
            [_entry(row) for row in rows[:PAGE_SIZE]],
            number,
            has_next=len(rows) > PAGE_SIZE,
            models=[m for m in _distinct(raw, "model", community) if m not in unlisted_models],
            members=[u for u in _distinct(raw, "user_id", community) if u not in gone],
            names=names_in(raw, community),
        )

    return await db.read(read)


def _distinct(raw: Connection, column: str, community: Community) -> list[str]:
    """Every model or member with a result in the community, for the filters: read from the
    page's indexes alone (bot/web/schema.py), so not narrowed by channel or single hidden
    results, which would mean reading every row (docs/web.md, Speed)."""
    rows = raw.execute(
        f"SELECT DISTINCT {column} FROM jobs WHERE platform = ? AND workspace = ?"
        f" AND {sql_in(WITH_RESULT)} ORDER BY {column}",
        (community.platform, community.workspace),
    )
    return [row[0] for row in rows]


def _scope(
    raw: Connection,
    community: Community,
    unlisted_models: Collection[str],
    nsfw_slack_channels: Collection[str],
) -> tuple[str, list[object]]:
    """The condition on `jobs` for every result the community's gallery may list."""
    nsfw, nsfw_params = nsfw_channels_clause(raw, nsfw_slack_channels)
    scope = f"platform = ? AND workspace = ? AND {sql_in(WITH_RESULT)} AND {LISTED} AND {nsfw}"
    params: list[object] = [community.platform, community.workspace]
    params += [community.platform, community.workspace, *nsfw_params]
    if unlisted_models:
        scope += f" AND model NOT IN ({', '.join('?' for _ in unlisted_models)})"
        params += list(unlisted_models)
    return scope, params


def _entry(row: Any) -> Entry:
    return Entry(
        job_id=row[0],
        member=row[1],
        command=row[2],
        model=row[3],
        prompt=prompt_of(json.loads(row[4])["input"]),
        cost=Decimal(row[5] or 0),
        made_at=row[6],
    )
