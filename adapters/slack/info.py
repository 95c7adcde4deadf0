"""The commands that answer without running anything: /usage, /models, /cost, /show and help.

Each returns the mrkdwn text of an ephemeral reply; user text in it is escaped.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_DOWN

from adapters.slack.context import Origin, SlackContext
from adapters.slack.text import clip, code_block, escape, from_slack
from bot import pricing
from bot.catalog import Model
from bot.errors import InvalidRequest, UnknownModel
from bot.jobstore import WITH_RESULT
from bot.outputs import result_text
from bot.quota import Allowance, format_usd
from bot.requests import COMMANDS, OPTION_HELP, parse_text

MAX_REPLY = 3900
KIND_TITLES = {
    "image": "Images (/imagine)",
    "image_edit": "Image edits (/edit)",
    "video": "Video (/video)",
    "transcription": "Transcription (/transcribe)",
    "text": "Text (/ask)",
    "speech": "Speech (/speak)",
}


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
        " · `/quota` (admins)\n"
        "Mentions work too: `@me imagine a cat --model flux-dev`, `@me help`.\n"
        f"*Options*\n{options}"
    )


async def usage_text(ctx: SlackContext, origin: Origin) -> str:
    identity = await ctx.people.identity(origin.team, origin.user)
    usage = await ctx.core.ledger.usage(identity)
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
        f"{period}: {spent}{held} of {pricing.format_usd(allowance.limit)},"
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
    models = ctx.core.jobs.policy.allowed_models(list(ctx.core.catalog), where)
    if wanted:
        kinds = COMMANDS[wanted][1] if wanted in COMMANDS else (wanted,)
        models = [m for m in models if m.kind in kinds]
        if not models:
            raise InvalidRequest(f"No models for {wanted!r} here. Try: " + ", ".join(COMMANDS))
    lines: list[str] = []
    for kind, title in KIND_TITLES.items():
        group = [m for m in models if m.kind == kind]
        if group:
            lines.append(f"*{title}*")
            lines += [f"• `{m.id}` {escape(m.name)}: {escape(pricing.describe(m))}" for m in group]
    defaults = ", ".join(f"/{c} {m}" for c, m in ctx.core.settings.jobs.default_models.items())
    lines.append(f"_Defaults: {escape(defaults)}. Pick one with `--model ID`._")
    return clip("\n".join(lines), MAX_REPLY)


async def cost_text(ctx: SlackContext, text: str) -> str:
    """`/cost imagine a cat --count 4` prices a request; `/cost flux-dev` shows a model's price."""
    plain = from_slack(text).strip()
    word, _, rest = plain.partition(" ")
    command = word.lower().lstrip("/")
    if command in COMMANDS:
        jobs = ctx.core.jobs
        request = parse_text(
            command, rest, ctx.core.catalog, default_model=jobs.default_model(command)
        )
        model = jobs.model_of(request)
        copies = f"{request.count} × " if request.count > 1 else ""
        return (
            f"{copies}{escape(model.name)} would cost about *{format_usd(jobs.estimate(request))}*"
            f" ({escape(pricing.describe(model))}). You are charged the actual cost when it is done."
        )
    named = _model_named(ctx, word)
    if named is not None:
        return f"{escape(named.name)} (`{named.id}`): {escape(pricing.describe(named))}"
    raise InvalidRequest(
        "Say what to price, e.g. `/cost imagine a cat --model flux-dev --count 2`, or name a"
        " model: `/cost flux-dev`."
    )


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
    call = await ctx.core.jobs.show_request(job_id, origin.community)
    result = await _result_lines(ctx, origin, job_id)
    heading = f"The Runpod API call for job `{escape(job_id)}` (your own key goes in `$RUNPOD_API_KEY`):\n"
    if result:
        result = clip(result, MAX_REPLY // 2) + "\n"
    return result + heading + code_block(call, MAX_REPLY - len(result) - len(heading))


async def _result_lines(ctx: SlackContext, origin: Origin, job_id: str) -> str:
    """What job `job_id` made, as an ephemeral reply can carry it: text, or the bot's links."""
    jobs = ctx.core.jobs
    job = await jobs.job(job_id, origin.community)
    if job is None or job.state not in WITH_RESULT:
        return ""
    model = ctx.core.catalog.get(job.model)
    text = result_text(model, job)
    if text:
        return f"*Result of `{job.id}`* ({escape(model.name)}):\n{escape(text)}"
    files = await jobs.result_files(job.id) or ()
    links = jobs.result_links(job.id, files)
    if links:
        shown = "\n".join(f"<{link}|{escape(name)}>" for name, link in links.items())
        return f"*Result of `{job.id}`* ({escape(model.name)}):\n{shown}"
    if files:
        return (
            f"The result of `{job.id}` is kept, but this bot has no public address to link it"
            " from (`http.public_url`); it was posted where the job ran."
        )
    return f"The result of `{job.id}` is not kept by this bot; it was posted where the job ran."
