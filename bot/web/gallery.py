"""The gallery's listing: one workspace's finished results, newest first, a page at a time.

Every query names the session's platform and workspace, so no page can list another
workspace's jobs; the job ids it returns are then opened through `Community`-scoped lookups.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

from bot.invocation import Community
from bot.jobstate import WITH_RESULT, sql_in
from bot.requests import prompt_of
from bot.sql import Store
from bot.web.hiding import LISTED, nsfw_channels_clause

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
    (bot/web/hiding.py) are never listed."""
    scope = f"platform = ? AND workspace = ? AND {sql_in(WITH_RESULT)}"
    scope_params: list[object] = [community.platform, community.workspace]
    scope += f" AND {LISTED}"
    scope_params += [community.platform, community.workspace]
    nsfw, nsfw_params = nsfw_channels_clause(nsfw_slack_channels)
    scope += f" AND {nsfw}"
    scope_params += nsfw_params
    if unlisted_models:
        scope += f" AND model NOT IN ({', '.join('?' for _ in unlisted_models)})"
        scope_params += list(unlisted_models)
    where, params = scope, list(scope_params)
    if model:
        where += " AND model = ?"
        params.append(model)
    if member:
        where += " AND user_id = ?"
        params.append(member)
    number = max(1, number)
    rows = await db.fetchall(
        "SELECT id, user_id, command, model, request, cost, created_at FROM jobs"
        f" WHERE {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
        (*params, PAGE_SIZE + 1, (number - 1) * PAGE_SIZE),
    )
    entries = [
        Entry(
            job_id=row[0],
            member=row[1],
            command=row[2],
            model=row[3],
            prompt=prompt_of(json.loads(row[4])["input"]),
            cost=Decimal(row[5] or 0),
            made_at=row[6],
        )
        for row in rows[:PAGE_SIZE]
    ]
    models = await db.fetchall(
        f"SELECT DISTINCT model FROM jobs WHERE {scope} ORDER BY model", scope_params
    )
    members = await db.fetchall(
        f"SELECT DISTINCT user_id FROM jobs WHERE {scope} ORDER BY user_id", scope_params
    )
    return Page(
        entries,
        number,
        has_next=len(rows) > PAGE_SIZE,
        models=[row[0] for row in models],
        members=[row[0] for row in members],
    )
