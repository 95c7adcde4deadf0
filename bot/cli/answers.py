"""`cost` and `show`: the terminal's answers to what members ask in chat with `/cost` and `/show`.

Both read the same core queries as the chat commands (`bot.quote`, `bot.jobs.past`), so the terminal
gives the same facts; the member is the local identity (`cli:local:<user>`) unless `--as` names
another, and `show` looks in the terminal's own jobs unless `--workspace` names a community.
"""

from __future__ import annotations

import argparse
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.cli.basic import local_identity, parse_key_values, settings_and_catalog
from bot.commands import command_of_kind
from bot.config import quote_settings
from bot.errors import InvalidRequest
from bot.ledger.quota import Identity, Scope, scope_of
from bot.policy import Policy, Where
from bot.quote import quote
from bot.requests import Request, build_request
from bot.runpod import pricing
from bot.runpod.catalog import Catalog, load_catalog
from bot.storage.sql import open_existing

if TYPE_CHECKING:
    from bot.config import QuotaSettings, QuoteSettings
    from bot.jobs.invocation import Community
    from bot.ledger.records import Usage

TERMINAL = Where(channel="terminal", is_dm=True)
PLACEHOLDER_URL = "https://example.com/input"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cost = subparsers.add_parser("cost", help="estimate what a request would cost (runs nothing)")
    cost.add_argument("model", help="model id, alias or endpoint id")
    cost.add_argument("params", nargs="*", metavar="key=value", help="model parameters")
    cost.add_argument("--count", type=int, default=1, help="how many copies")
    cost.add_argument("--as", dest="member", type=_member, help="platform:workspace:user")
    cost.set_defaults(handler=_cost)
    show = subparsers.add_parser("show", help="a past job's result, as /show gives it")
    show.add_argument("job_id", metavar="JOB_ID")
    show.add_argument("--workspace", type=_community, help="platform:workspace the job is in")
    show.set_defaults(handler=_show)


def _member(text: str) -> Identity:
    try:
        if scope_of(text) is not Scope.USER:
            raise argparse.ArgumentTypeError("name a member: platform:workspace:user")
    except InvalidRequest as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    platform, workspace, user = text.split(":")
    return Identity(platform, workspace, user)


def _community(text: str) -> Community:
    from bot.jobs.invocation import Community  # the job vocabulary: only `show` needs it

    platform, _, workspace = text.partition(":")
    if not platform or not workspace or ":" in workspace:
        raise argparse.ArgumentTypeError("give platform:workspace, e.g. slack:T0123")
    return Community(platform, workspace)


def _cost(args: argparse.Namespace) -> int | Coroutine[Any, Any, int]:
    """Without a database there is no standing to read: the answer needs no event loop."""
    settings = quote_settings(args.config)  # not every section: `cost` answers at once
    catalog = load_catalog(settings.catalog.models)
    request = _request(args, catalog)
    if settings.quotas is None:
        return _print_quote(request, None, settings, catalog)
    member = args.member or local_identity()
    return _quote_with_usage(request, member, settings.quotas, settings, catalog)


def _request(args: argparse.Namespace, catalog: Catalog) -> Request:
    model = catalog.get(args.model)
    options = parse_key_values(args.params)
    prompt = str(options.pop(model.prompt_param, "cost estimate")) if model.prompt_param else ""
    media = [PLACEHOLDER_URL] if any(model.params[n].required for n in model.media_inputs) else []
    options |= {"model": model.id, "count": args.count}
    command = command_of_kind(model.kind).name
    return build_request(
        command, catalog, prompt=prompt, options=options, default_model=model.id, media=media
    )


async def _quote_with_usage(
    request: Request,
    identity: Identity,
    quotas: QuotaSettings,
    settings: QuoteSettings,
    catalog: Catalog,
) -> int:
    """The member's standing read from the database (`cost` never creates one)."""
    from bot.ledger.service import SqliteLedger  # the ledger's SQL: only when there is a database

    db = await open_existing(settings.catalog.database)
    try:
        usage = await SqliteLedger(db, quotas).usage(identity)
    finally:
        await db.close()
    return _print_quote(request, usage, settings, catalog)


def _print_quote(
    request: Request, usage: Usage | None, settings: QuoteSettings, catalog: Catalog
) -> int:
    found = quote(
        request,
        usage,
        TERMINAL,
        catalog=catalog,
        policy=Policy(settings.policy),
        jobs=settings.jobs,
    )
    print(pricing.exact_usd(found.estimate))
    print(f"{found.model.name}: {found.price}")
    if found.tightest is not None:
        print(f"left: {found.tightest.describe()}")
    if found.over_limit:
        print("more than is left: it would be refused")
    if found.refusal is not None:
        print(f"not allowed: {found.refusal}")
    if found.confirm_above is not None:
        print(f"above {pricing.exact_usd(found.confirm_above)}: it asks for confirmation first")
    return 0


async def _show(args: argparse.Namespace) -> int:
    from bot.app import open_core  # the job engine: `cost` starts without it
    from bot.jobs.invocation import Community
    from bot.jobs.past import Viewer, past_result

    settings, _ = settings_and_catalog(args)
    me = local_identity()
    community = args.workspace or Community(me.platform, me.workspace)
    async with open_core(settings) as core:
        past = await past_result(core.jobs, args.job_id, Viewer(community, me.user))
        if past is None:
            raise InvalidRequest(
                f"no job {args.job_id} in {community.platform}:{community.workspace}"
            )
        made = datetime.fromtimestamp(past.made_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        print(f"job {past.job_id}: {past.state}, made {made}")
        result = past.result
        if result is None:
            print(f"no result to show{f': {past.error}' if past.error else ''}")
            return 0
        print(f"model: {result.model}; cost: {pricing.exact_usd(result.cost)}")
        if result.seeds:
            print(f"seeds: {', '.join(map(str, result.seeds))}")
        for file in result.files:
            print(f"file: {core.jobs.kept.path(past.job_id, file.filename)}")
        if result.text:
            print(result.text)
        if not past.kept:
            print("the result is not kept by this bot; it was posted where the job ran")
    return 0
