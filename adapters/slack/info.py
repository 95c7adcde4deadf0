"""The commands that answer without running anything: /usage, /models, /cost, /show and help.

Each returns the mrkdwn text of an ephemeral reply; user text in it is escaped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_DOWN
from zoneinfo import ZoneInfo

from adapters.slack.charts import send_chart
from adapters.slack.context import Origin, SlackContext
from adapters.slack.text import clip, code_block, escape, from_slack
from bot import web as web_page
from bot.commands import COMMANDS
from bot.errors import InvalidRequest, UnknownModel
from bot.jobs import UNKNOWN_JOB, PastResult, Viewer, past_result
from bot.ledger import Allowance, format_usd
from bot.quote import Quote
from bot.requests import OPTION_HELP, parse_text
from bot.runpod import Model, describe_price, exact_usd
from bot.usage_charts import USAGE_FILENAME, usage_chart
from bot.web import Hiding

MAX_REPLY = 3900


def help_text() -> str:
    options = "\n".join(f"`{form}` {escape(what)}" for form, what in OPTION_HELP.items())
    return (
        "*Runpod models in Slack.* Every job is charged to your quota; `/usage` shows what is left.\n"
        "`/imagine a cat on the moon --ar 16:9 --seed 7` an image\n"
        "`/edit make it night https://…/photo.png` edit an image (or mention me with it attached)\n"
        "`/video a fox runs https://…/fox.png` animate an image\n"
        "`/transcribe https://…/talk.mp3` speech to text (or mention me with the audio attached)\n"
        "`/ask why is the sky blue?` · `/speak hello there`\n"
        "`/cost imagine a cat --count 4` · `/models [kind]` · `/usage` · `/show [job id]`"
        " · `/web` (a sign-in link to the web page) · `/quota` (admins)\n"
        "Mentions work too: `@me imagine a cat --model flux-dev`, `@me help`; in a DM with me"
        " no mention is needed, and a plain question goes to a text model.\n"
        f"*Options*\n{options}"
    )


async def web_text(ctx: SlackContext, origin: Origin, text: str = "") -> str:
    """A one-time sign-in link to the web page, bound to this member, workspace and admin flag;
    `/web hide-mine` / `show-mine` take all of the member's results off the page, or back."""
    core = ctx.core
    action = text.strip().lower()
    if action in ("hide-mine", "show-mine"):
        identity = await ctx.people.identity(origin.team, origin.user)
        await Hiding(core.db).hide_member(identity, action == "hide-mine")
        if action == "hide-mine":
            return "Your results are no longer shown on the web page (`/web show-mine` undoes it)."
        return "Your results are shown on the web page again."
    if action:
        return "Try `/web` for a sign-in link, or `/web hide-mine` / `/web show-mine`."
    if core.settings.web.public_url is None:
        return "The web page is not enabled: the bot's admin sets `web.public_url` (docs/web.md)."
    identity = await ctx.people.identity(origin.team, origin.user)
    admin = await ctx.people.is_admin(origin.user)
    token = await web_page.signins(core).issue(identity, origin.user, admin=admin)
    minutes = f"{core.settings.web.link_minutes:g}"
    return (
        f"Your sign-in link (works once, for {minutes} minutes; don't share it):\n"
        f"<{web_page.signin_url(core, token)}|Open the community page>"
    )


async def usage_text(ctx: SlackContext, origin: Origin) -> str:
    identity = await ctx.people.identity(origin.team, origin.user)
    usage = await ctx.core.ledger.usage(identity)
    core = ctx.core
    zone = ZoneInfo(core.settings.quotas.timezone)
    chart = usage_chart(core.db, core.ledger, identity, zone, datetime.now(UTC))
    send_chart(ctx, origin.user, chart, filename=USAGE_FILENAME, title="Your spend per day")
    lines = ["*Your spend*", *(f"• {allowance_line(a)}" for a in usage.user)]
    lines += ["*This workspace*", *(f"• {allowance_line(a)}" for a in usage.workspace)]
    if usage.recent:
        lines.append("*Recent jobs*")
        for job in usage.recent[:8]:
            when = slack_date(job.time, "{date_short_pretty} {time}")
            lines.append(
                f"• `{job.job_id}` {escape(job.model)}: {format_usd(job.cost)} ({job.state}), {when}"
            )
    return "\n".join(lines)


def allowance_line(allowance: Allowance) -> str:
    period = allowance.period.adverb
    spent = format_usd(allowance.spent)
    if allowance.limit is None or allowance.remaining is None:
        return f"{period}: {spent} spent, no limit"
    held = f" (+{format_usd(allowance.held)} running)" if allowance.held else ""
    return (
        f"{period}: {spent}{held} of {exact_usd(allowance.limit)},"
        f" *{format_usd(allowance.remaining, rounding=ROUND_DOWN)} left*,"
        f" resets {slack_date(allowance.resets_at, '{date_short_pretty} {time}')}"
    )


def slack_date(when: datetime, form: str) -> str:
    """A date each reader sees in their own time zone (`<!date^...>`), with a UTC fallback."""
    fallback = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{form}|{fallback}>"


async def models_text(ctx: SlackContext, origin: Origin, text: str) -> str:
    wanted = from_slack(text).strip().lower()
    where = await ctx.where(origin)
    models = await ctx.core.jobs.offered_models(where)
    if wanted:
        kinds = COMMANDS[wanted].kinds if wanted in COMMANDS else (wanted,)
        models = [m for m in models if m.kind in kinds]
        if not models:
            raise InvalidRequest(f"No models for {wanted!r} here. Try: " + ", ".join(COMMANDS))
    lines: list[str] = []
    for command in COMMANDS.values():
        group = [m for m in models if m.kind in command.kinds]
        if group:
            lines.append(f"*{command.label.capitalize()} (/{command.name})*")
            lines += [f"• `{m.id}` {escape(m.name)}: {escape(describe_price(m))}" for m in group]
    defaults = ", ".join(f"/{c} {m}" for c, m in ctx.core.settings.jobs.default_models.items())
    lines.append(f"_Defaults: {escape(defaults)}. Pick one with `--model ID`._")
    return clip("\n".join(lines), MAX_REPLY)


async def cost_text(ctx: SlackContext, origin: Origin, text: str) -> str:
    """`/cost imagine a cat --count 4` prices a request; `/cost flux-dev` shows a model's price."""
    plain = from_slack(text).strip()
    word, _, rest = plain.partition(" ")
    command = word.lower().lstrip("/")
    if command in COMMANDS:
        jobs = ctx.core.jobs
        request = parse_text(
            command, rest, ctx.core.catalog, default_model=jobs.default_model(command)
        )
        identity = await ctx.people.identity(origin.team, origin.user)
        return quote_text(await jobs.quote(request, identity, await ctx.where(origin)))
    named = _model_named(ctx, word)
    if named is not None:
        return f"{escape(named.name)} (`{named.id}`): {escape(describe_price(named))}"
    raise InvalidRequest(
        "Say what to price, e.g. `/cost imagine a cat --model flux-dev --count 2`, or name a"
        " model: `/cost flux-dev`."
    )


def quote_text(found: Quote) -> str:
    copies = f"{found.request.count} × " if found.request.count > 1 else ""
    lines = [
        f"{copies}{escape(found.model.name)} would cost about *{format_usd(found.estimate)}*"
        f" ({escape(found.price)}). You are charged the actual cost when it is done."
    ]
    if found.tightest is not None:
        lines.append(f"• {found.tightest.describe()}")
    if found.over_limit:
        lines.append("• This is more than is left.")
    if found.refusal is not None:
        lines.append(f"• Not allowed here: {escape(found.refusal)}")
    if found.confirm_above is not None:
        lines.append(f"• Above {format_usd(found.confirm_above)}: you will be asked to confirm.")
    lines.append("_An estimate only: nothing was run or charged._")
    return "\n".join(lines)


def _model_named(ctx: SlackContext, word: str) -> Model | None:
    if not word:
        return None
    try:
        return ctx.core.catalog.get(word)
    except UnknownModel:
        return None


async def show_text(ctx: SlackContext, origin: Origin, text: str) -> str:
    """A past job of this workspace: its result (text, or links to its kept files) and the
    equivalent Runpod API call."""
    job_id = from_slack(text).strip().strip("`")
    if not job_id:
        identity = await ctx.people.identity(origin.team, origin.user)
        recent = (await ctx.core.ledger.usage(identity)).recent
        if not recent:
            raise InvalidRequest("You have no jobs yet; `/show JOB_ID` shows any job's request.")
        job_id = recent[0].job_id
    past = await past_result(ctx.core.jobs, job_id, Viewer(origin.community, origin.user))
    if past is None:
        raise InvalidRequest(UNKNOWN_JOB)
    call = await ctx.core.jobs.show_request(past.job_id, origin.community)
    result = _result_lines(past)
    heading = f"The Runpod API call for job `{escape(past.job_id)}` (your own key goes in `$RUNPOD_API_KEY`):\n"
    if result:
        result = clip(result, MAX_REPLY // 2) + "\n"
    return result + heading + code_block(call, MAX_REPLY - len(result) - len(heading))


def _result_lines(past: PastResult) -> str:
    """What the job made, as an ephemeral reply can carry it: text, or the bot's links."""
    result = past.result
    if result is None:
        reason = f": {escape(past.error)}" if past.error else "."
        return f"Job `{past.job_id}` has no result to show ({past.state}){reason}"
    if result.text:
        return f"*Result of `{past.job_id}`* ({escape(result.model)}):\n{escape(result.text)}"
    if past.links:
        shown = "\n".join(f"<{link}|{escape(name)}>" for name, link in past.links.items())
        return f"*Result of `{past.job_id}`* ({escape(result.model)}):\n{shown}"
    if result.files:
        return (
            f"The result of `{past.job_id}` is kept, but this bot has no public address to link"
            " it from (`http.public_url`); it was posted where the job ran."
        )
    return (
        f"The result of `{past.job_id}` is not kept by this bot; it was posted where the job ran."
    )
