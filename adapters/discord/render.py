"""How results, progress and questions look in Discord: embeds and short lines of text.

Pure functions from the core's values to discord.py objects; sending them is `delivery`'s job.
User text (prompts, replies) only ever goes into embeds or into messages sent with mentions
switched off, so it cannot ping anyone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

import discord

from adapters.discord.context import with_charge_note
from adapters.discord.text import shorten
from bot.delivery import Confirmation, Failure, MediaFile, Progress, Result
from bot.ledger import format_usd

COLOUR = discord.Colour(0x673AB7)
PROMPT_CHARS = 1500
CURSOR = " \N{LEFT HALF BLACK CIRCLE}"  # shown after streamed text while more is coming
WHAT = {
    "imagine": "image",
    "edit": "edited image",
    "video": "video",
    "transcribe": "transcript",
    "ask": "answer",
    "speak": "audio",
}


def progress_line(update: Progress) -> str:
    return f"\N{HOURGLASS WITH FLOWING SAND} {update.describe()}\n-# job `{update.job_id}`"


def confirm_text(request: Confirmation) -> str:
    return (
        f"**{shorten(request.summary, 300)}** is estimated at **{format_usd(request.estimate)}**,"
        f" above the {format_usd(request.threshold)} that needs your confirmation."
        " Nothing is held or charged until you confirm.\n-# The offer lasts 15 minutes."
    )


def failure_text(failure: Failure) -> str:
    message = failure.message.rstrip()
    if failure.charged > 0:
        return f"{message} Charged {format_usd(failure.charged)}."
    return with_charge_note(message)


def ready_line(user: str, command: str) -> str:
    """The first line of a result posted as a channel message: it pings the requester only."""
    return f"<@{user}> your {WHAT.get(command, 'result')} is ready."


def result_embed(
    result: Result,
    *,
    image: str | None = None,
    links: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
    with_prompt: bool = True,
) -> discord.Embed:
    """Prompt, model, seed, size, time, cost and what is left; `image` an uploaded filename."""
    parts = [shorten(result.prompt, PROMPT_CHARS)] if with_prompt and result.prompt else []
    if links:
        parts.append(link_lines(links))
    embed = discord.Embed(colour=COLOUR, description=shorten("\n\n".join(parts), 4096) or None)
    embed.set_author(name=result.model)
    for name, value in details(result, notes):
        embed.add_field(name=name, value=value, inline=name not in ("Left", "Note"))
    if image:
        embed.set_image(url=f"attachment://{image}")
    embed.set_footer(text=job_tag(result.job_id))
    return embed


def link_lines(links: Sequence[tuple[str, str]]) -> str:
    return "\n".join(f"[{name}]({url})" for name, url in links)


def job_tag(job_id: str) -> str:
    """How a result names its job (an embed's footer, a card's last line): clicks and
    re-deliveries find the job by it."""
    return f"job {job_id}"


def details(result: Result, notes: Sequence[str] = ()) -> list[tuple[str, str]]:
    """Seed, size, time, cost, what is left and notes, as (name, value): an embed's fields or
    a Components V2 card's lines."""
    found: list[tuple[str, str]] = []
    if result.seeds:
        found.append(("Seed", ", ".join(str(s) for s in result.seeds)))
    size = size_of(result.files, result.params)
    if size:
        found.append(("Size", size))
    found.append(("Time", duration(result.elapsed_s)))
    found.append(("Cost", "free (cached)" if result.cached else format_usd(result.cost)))
    if result.remaining:
        found.append(("Left", shorten(result.remaining, 1024)))
    all_notes = [*result.notes, *notes]
    if all_notes:
        found.append(("Note", shorten("\n".join(all_notes), 1024)))
    return found


def size_of(files: Sequence[MediaFile], params: object) -> str | None:
    for file in files:
        if file.width and file.height:
            return f"{file.width}\N{MULTIPLICATION SIGN}{file.height}"
    if isinstance(params, dict):
        if "width" in params and "height" in params:
            return f"{params['width']}\N{MULTIPLICATION SIGN}{params['height']}"
        for key in ("size", "aspect_ratio", "resolution"):
            if params.get(key):
                return str(params[key]).replace("*", "\N{MULTIPLICATION SIGN}")
    return None


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes} min {rest} s"


def usd(amount: Decimal | None) -> str:
    return "no limit" if amount is None else format_usd(amount)
