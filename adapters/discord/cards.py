"""Components V2 result cards, for results of several images: an embed shows one image, so a
gallery read as loose attachments under it; a card shows them together in a media gallery.

A V2 message (flag IS_COMPONENTS_V2, which discord.py sets for a `LayoutView`) carries no
content or embeds: the requester's mention, the prompt and the details are text displays in one
container, the images a media gallery of the message's own attachments (only files actually
uploaded, so the card stays within the channel's `attachment_size_limit`; the rest are links),
and the job buttons an action row. Once a message is V2 it stays V2.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import discord

from adapters.discord import buttons, render
from adapters.discord.text import shorten
from bot.delivery import MediaFile, Result

GALLERY_MAX = 10  # items a media gallery holds
DESCRIPTION_CHARS = 256  # a gallery item's alt text


def wants_card(uploads: Sequence[MediaFile]) -> bool:
    """Several uploaded images read better as a V2 gallery than under an embed."""
    return len(images(uploads)) > 1


def images(uploads: Sequence[MediaFile]) -> list[MediaFile]:
    return [f for f in uploads if f.content_type.startswith("image/")][:GALLERY_MAX]


def result_card(
    result: Result,
    uploads: Sequence[MediaFile],
    *,
    headline: str = "",
    links: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
) -> discord.ui.LayoutView:
    """The result as one container: headline, prompt, gallery, links, details, job, buttons."""
    alt = shorten(result.prompt, DESCRIPTION_CHARS) or None
    gallery = discord.ui.MediaGallery[Any](
        *(
            discord.MediaGalleryItem(f"attachment://{f.filename}", description=alt)
            for f in images(uploads)
        )
    )
    lines = [f"**{result.model}**", shorten(result.prompt, render.PROMPT_CHARS)]
    shown = [(n, v) for n, v in render.details(result) if n != "Note"]  # notes: their own text
    facts = [" \N{MIDDLE DOT} ".join(f"{n} {v}" for n, v in shown if n != "Left")]
    facts += [f"Left {v}" for n, v in shown if n == "Left"]
    notes_text = "\n".join([*result.notes, *notes])
    card = discord.ui.Container[Any](accent_colour=render.COLOUR)
    for text in [headline, *lines]:
        if text:
            card.add_item(discord.ui.TextDisplay[Any](text))
    card.add_item(gallery)
    if links:
        card.add_item(discord.ui.TextDisplay[Any](render.link_lines(links)))
    if notes_text:
        card.add_item(discord.ui.TextDisplay[Any](shorten(notes_text, 1024)))
    small = [*facts, render.job_tag(result.job_id)]
    card.add_item(discord.ui.TextDisplay[Any]("\n".join(f"-# {line}" for line in small)))
    card.add_item(discord.ui.ActionRow[Any](*buttons.result_items(result.job_id, result.kind)))
    layout = discord.ui.LayoutView(timeout=None)
    layout.add_item(card)
    return layout


def names_job(message: discord.Message, job_id: str) -> bool:
    """Whether a card among the message's components names `job_id` (see `render.job_tag`)."""
    tag = render.job_tag(job_id)
    return any(tag in text for text in _texts(message.components))


def _texts(components: Iterable[Any]) -> Iterable[str]:
    for component in components:
        if isinstance(component, discord.TextDisplay):
            yield component.content
        yield from _texts(getattr(component, "children", ()))
