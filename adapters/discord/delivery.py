"""`DiscordDelivery`: how a job talks to the person who asked for it.

While the interaction token is fresh (Discord accepts it for 15 minutes) the job edits its
original response: progress, the streamed reply, then the result. After that, for jobs resumed
after a restart, or when Discord says the token is gone (50027), results and failures are posted
as channel messages that mention the requester and nobody else, with the job id as the message
nonce so a re-delivery after a crash is deduplicated by Discord (`enforce_nonce`). When the
core asks for another route (the edit keeps failing, e.g. 502s), `Route.MESSAGE` posts that
channel message at once, `DIRECT` sends the result as a DM, `LINK` posts it with links only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import discord

from adapters.discord import buttons, cards, render
from adapters.discord.files import Fitted, Upload, fit
from adapters.discord.text import MESSAGE_LIMIT, shorten, split_message
from adapters.pacing import CardPacer
from bot.delivery import ChannelRef, Confirmation, Failure, MediaFile, Progress, Result, Route

log = logging.getLogger(__name__)

TOKEN_LIFETIME_S = 15 * 60
TOKEN_MARGIN_S = 30  # stop using a token this long before Discord would refuse it
MENTION_ROOM = 80  # characters kept free in text chunks for the ready line of channel messages
TOKEN_GONE_CODES = {50027, 10015, 10008}  # invalid webhook token, unknown webhook / message
TRANSCRIPT_INLINE_CHUNKS = 2  # longer transcripts are posted as a file
NO_PINGS = discord.AllowedMentions.none()


class Card(Protocol):
    def __call__(self, *, headline: str = "") -> discord.ui.LayoutView: ...


@dataclass
class Outgoing:
    """One message to post: text, embeds, files and buttons, or a Components V2 `card`."""

    content: str = ""
    embeds: list[discord.Embed] = field(default_factory=list)
    files: tuple[MediaFile, ...] = ()
    view: discord.ui.View | None = None
    alt_text: str = ""
    card: Card | None = None

    def shown(self, headline: str = "") -> dict[str, Any]:
        """content, embeds and view for discord.py; `headline` leads the message. A card holds
        the headline itself and carries no content or embeds (V2 messages may not)."""
        if self.card is not None:
            return {"content": None, "embeds": [], "view": self.card(headline=headline)}
        content = "\n".join(part for part in (headline, self.content) if part)
        return {"content": content or None, "embeds": self.embeds, "view": self.view}

    def discord_files(self) -> list[discord.File]:
        description = shorten(self.alt_text, 1000) or None
        return [Upload(f, description) for f in self.files]


class UploadTooLarge(Exception):
    """Discord refused the files (413) although they were under the limit we knew of."""


class DiscordDelivery:
    def __init__(
        self,
        client: discord.Client,
        ref: ChannelRef,
        *,
        pacer: CardPacer,
        interaction: discord.Interaction | None = None,
    ) -> None:
        self._client = client
        self._pacer = pacer
        self._ref = ref
        self._interaction = interaction
        self._followups: list[int] = []  # messages after the original (a long streamed reply)
        self._shown: list[str] = []  # text chunks currently shown while streaming
        self._channel_edits = ref.message is not None

    # --- the Delivery protocol ------------------------------------------------------------

    async def progress(self, update: Progress) -> None:
        await self._pacer.edit(update.job_id, lambda: self._show_progress(update))

    async def _show_progress(self, update: Progress) -> None:
        if update.partial_text is not None:
            chunks = split_message(update.partial_text + render.CURSOR)
            await self._with_token(lambda i: self._show_chunks(i, chunks, update.job_id))
            return
        line, view = render.progress_line(update), buttons.progress_view(update.job_id)
        shown = await self._with_token(
            lambda i: i.edit_original_response(content=line, embeds=[], view=view)
        )
        if not shown:
            await self._edit_original_in_channel(content=line, view=view)

    async def confirm(self, request: Confirmation) -> None:
        text, view = render.confirm_text(request), buttons.confirm_view(request.job_id)
        shown = await self._with_token(
            lambda i: i.edit_original_response(content=text, embeds=[], view=view)
        )
        if not shown:
            await self._send_to_channel([Outgoing(text, view=view)], nonce=f"{request.job_id}c")

    async def deliver(self, result: Result, route: Route = Route.EDIT) -> None:
        await self._pacer.final(result.job_id)
        limit = 0 if route is Route.LINK else self.upload_limit()
        heard = await self._heard(route)
        try:
            await self._post(self._compose(result, limit, heard), result, route)
        except UploadTooLarge:
            log.warning("job %s: upload refused as too large; linking instead", result.job_id)
            await self._post(self._compose(result, 0, heard), result, route)

    async def fail(self, failure: Failure) -> None:
        await self._pacer.final(failure.job_id)
        text = render.failure_text(failure)
        if await self._with_token(lambda i: self._replace_with_ephemeral(i, text)):
            return
        await self._send_to_channel(
            [Outgoing(f"Job `{failure.job_id}` ended: {text}")],
            nonce=f"{failure.job_id}f",
        )
        await self._edit_original_in_channel(
            content=f"\N{WARNING SIGN} This job ended without a result.\n-# job `{failure.job_id}`",
            view=None,
        )

    async def warn(self, job_id: str, message: str) -> None:
        sent = await self._with_token(lambda i: i.followup.send(message, ephemeral=True))
        if not sent:
            await self._send_to_channel([Outgoing(message)], nonce=f"{job_id}w")

    # --- composing ------------------------------------------------------------------------

    def upload_limit(self) -> int:
        """This channel's per-file limit: the interaction's own figure, else the guild's."""
        if self._interaction is not None:
            return self._interaction.filesize_limit
        stored = self._ref.extra.get("upload_limit", "")
        if stored.isdigit():
            return int(stored)
        guild = self._client.get_guild(int(self._ref.workspace)) if self._guild_id else None
        return guild.filesize_limit if guild else discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES

    async def _heard(self, route: Route) -> bool:
        """Whether the bot hears replies to this answer: in its server's channel and in the
        requester's DM with it, not in a group DM or a server without it (a member's own
        install), nor in a DM it was sent to because the channel refused it."""
        if route is Route.DIRECT:
            return False
        if self._guild_id is not None:
            return True
        if self._interaction is not None:
            return self._interaction.context.dm_channel
        try:
            dm = await self._client.create_dm(discord.Object(int(self._ref.user)))
        except discord.HTTPException as exc:
            log.info("could not open the DM with %s: %s", self._ref.user, exc)
            return False
        return dm.id == int(self._ref.channel)

    def _compose(self, result: Result, limit: int, heard: bool) -> list[Outgoing]:
        kind = result.kind
        view = buttons.result_view(result.job_id, kind, continues=heard)
        if kind == "text":
            return self._text_messages(result, result.text or "(The model returned no text.)", view)
        if kind == "transcription" and self._ref.extra.get("output", "text") == "text":
            chunks = split_message(result.text or "", MESSAGE_LIMIT - MENTION_ROOM)
            if chunks and len(chunks) <= TRANSCRIPT_INLINE_CHUNKS:
                return self._text_messages(result, result.text or "", view)
        files = result.files
        if kind == "transcription":
            wanted = ".srt" if self._ref.extra.get("output") == "srt" else ".txt"
            files = tuple(f for f in files if f.filename.endswith(wanted)) or tuple(
                f for f in files if f.filename.endswith(".txt")
            )
        fitted = fit(files, limit)
        return [self._media_message(result, fitted, view)]

    def _text_messages(self, result: Result, text: str, view: discord.ui.View) -> list[Outgoing]:
        chunks = split_message(text, MESSAGE_LIMIT - MENTION_ROOM) or ["(empty)"]
        messages = [Outgoing(chunk) for chunk in chunks]
        messages[-1].embeds = [render.result_embed(result, with_prompt=False)]
        messages[-1].view = view
        return messages

    def _media_message(self, result: Result, fitted: Fitted, view: discord.ui.View) -> Outgoing:
        images = [f for f in fitted.uploads if f.content_type.startswith("image/")]
        image = images[0].filename if len(fitted.uploads) == 1 and images else None
        notes = list(fitted.notes)
        if not result.files and not fitted.uploads:
            notes.append("The job finished but its file could not be fetched.")
        if cards.wants_card(fitted.uploads):
            card = partial(
                cards.result_card, result, fitted.uploads, links=fitted.links, notes=notes
            )
            return Outgoing(files=fitted.uploads, alt_text=result.prompt, card=card)
        embed = render.result_embed(result, image=image, links=fitted.links, notes=notes)
        return Outgoing(embeds=[embed], files=fitted.uploads, view=view, alt_text=result.prompt)

    # --- posting --------------------------------------------------------------------------

    async def _post(self, messages: list[Outgoing], result: Result, route: Route) -> None:
        if route is Route.DIRECT:
            await self._send_direct(messages, result.job_id)
            return
        if route is Route.EDIT and await self._with_token(
            lambda i: self._post_with_token(i, messages)
        ):
            return
        if await self._shown_in_original(result.job_id):
            log.info("job %s: the result is in its message already; not posted", result.job_id)
            return
        await self._send_to_channel(
            messages,
            nonce=result.job_id,
            headline=render.ready_line(self._ref.user, result.command),
        )
        await self._edit_original_in_channel(
            content="\N{WHITE HEAVY CHECK MARK} Finished: the result is posted below."
            f"\n-# job `{result.job_id}`",
            view=None,
        )

    async def _post_with_token(
        self, interaction: discord.Interaction, messages: Sequence[Outgoing]
    ) -> None:
        """The original response becomes the first message; follow-ups carry the rest."""
        first, rest = messages[0], messages[1:]
        await self._guard_size(
            interaction.edit_original_response(**first.shown(), attachments=first.discord_files())
        )
        for index, message in enumerate(rest):
            shown = message.shown()
            if index < len(self._followups):
                await self._guard_size(
                    interaction.followup.edit_message(
                        self._followups[index], **shown, attachments=message.discord_files()
                    )
                )
            else:
                missing = discord.utils.MISSING
                sent = await self._guard_size(
                    interaction.followup.send(
                        shown["content"] or missing,
                        embeds=shown["embeds"],
                        files=message.discord_files(),
                        view=shown["view"] or missing,
                        wait=True,
                    )
                )
                self._followups.append(sent.id)
        for extra in self._followups[len(rest) :]:
            await interaction.followup.delete_message(extra)
        del self._followups[len(rest) :]

    async def _show_chunks(
        self, interaction: discord.Interaction, chunks: list[str], job_id: str
    ) -> None:
        """A streamed reply so far: edit what changed, add messages as it grows."""
        for index, chunk in enumerate(chunks):
            if index < len(self._shown) and self._shown[index] == chunk:
                continue
            if index == 0:
                view = buttons.progress_view(job_id)
                await interaction.edit_original_response(content=chunk, embeds=[], view=view)
            elif index - 1 < len(self._followups):
                await interaction.followup.edit_message(self._followups[index - 1], content=chunk)
            else:
                sent = await interaction.followup.send(chunk, wait=True)
                self._followups.append(sent.id)
        self._shown = chunks

    async def _replace_with_ephemeral(self, interaction: discord.Interaction, text: str) -> None:
        """Remove the public progress message and tell only the requester what happened."""
        try:
            await interaction.delete_original_response()
        except discord.NotFound:
            pass
        for message_id in self._followups:
            try:
                await interaction.followup.delete_message(message_id)
            except discord.NotFound:
                pass
        self._followups.clear()
        await interaction.followup.send(text, ephemeral=True)

    async def _send_to_channel(
        self, messages: Sequence[Outgoing], *, nonce: str, headline: str = ""
    ) -> None:
        """Channel messages; the first mentions the requester (`headline` or a bare mention),
        and only the requester can be pinged."""
        channel = self._channel()
        mentions = discord.AllowedMentions(
            everyone=False,
            roles=False,
            users=[discord.Object(int(self._ref.user))],
            replied_user=False,
        )
        for index, message in enumerate(messages):
            lead = (headline or f"<@{self._ref.user}>") if index == 0 else ""
            await self._guard_size(
                channel.send(
                    **message.shown(lead),
                    files=message.discord_files(),
                    allowed_mentions=mentions if index == 0 else NO_PINGS,
                    nonce=nonce if index == 0 else f"{nonce}.{index}",
                )
            )

    async def _send_direct(self, messages: Sequence[Outgoing], job_id: str) -> None:
        """The result in a DM to the requester (the channel refused it)."""
        dm = await self._client.create_dm(discord.Object(int(self._ref.user)))
        for index, message in enumerate(messages):
            await self._guard_size(
                dm.send(
                    **message.shown(),
                    files=message.discord_files(),
                    allowed_mentions=NO_PINGS,
                    nonce=f"{job_id}d" if index == 0 else f"{job_id}d.{index}",
                )
            )

    async def _shown_in_original(self, job_id: str) -> bool:
        """Whether the job's first message already carries its result: delivered through the
        interaction just before a crash, so re-delivery must not post it a second time."""
        if self._ref.message is None:
            return False
        try:
            message = await self._channel().fetch_message(int(self._ref.message))
        except discord.HTTPException:
            return False
        footers = {embed.footer.text for embed in message.embeds}
        return render.job_tag(job_id) in footers or cards.names_job(message, job_id)

    async def _edit_original_in_channel(self, **changes: Any) -> None:
        """Best effort: tidy the job's first message with the bot token once the token is gone."""
        if not self._channel_edits or self._ref.message is None or self._interaction is not None:
            return
        message = self._channel().get_partial_message(int(self._ref.message))
        try:
            await message.edit(embeds=[], **changes)
        except discord.HTTPException as exc:
            self._channel_edits = False
            log.info("cannot edit message %s any more: %s", self._ref.message, exc)

    # --- plumbing -------------------------------------------------------------------------

    @property
    def _guild_id(self) -> int | None:
        return int(self._ref.workspace) if self._ref.workspace.isdigit() else None

    def _channel(self) -> discord.PartialMessageable:
        return self._client.get_partial_messageable(int(self._ref.channel), guild_id=self._guild_id)

    def _token_fresh(self) -> bool:
        issued = float(self._ref.extra.get("issued_at", "0") or 0)
        return time.time() - issued < TOKEN_LIFETIME_S - TOKEN_MARGIN_S

    async def _with_token(self, call: Callable[[discord.Interaction], Awaitable[Any]]) -> bool:
        """Run `call` with the interaction; False when its token can no longer be used."""
        interaction = self._interaction
        if interaction is None:
            return False
        if not self._token_fresh():
            self._interaction = None
            return False
        try:
            await call(interaction)
        except discord.HTTPException as exc:
            if exc.status != 401 and exc.code not in TOKEN_GONE_CODES:
                raise
            log.info(
                "interaction %s: token no longer usable (%s %s); using channel messages",
                interaction.id,
                exc.status,
                exc.code,
            )
            self._interaction = None
            return False
        return True

    @staticmethod
    async def _guard_size(call: Awaitable[Any]) -> Any:
        try:
            return await call
        except discord.HTTPException as exc:
            if exc.status == 413 or exc.code == 40005:
                raise UploadTooLarge(str(exc)) from exc
            raise
