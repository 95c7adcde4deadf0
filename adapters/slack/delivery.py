"""`SlackDelivery`: what a job shows in Slack, from the first progress line to the result card.

One job, one *anchor* message, edited in place: a new parent message for a slash command (its
replies are the job's thread), a reply in the thread of a mention or a clicked card. It shows
progress with a Cancel button, and finally the result card (prompt, model, seed, cost, what is
left, Reroll / Variations / Show request). Files go into the thread with `files_upload_v2`;
text is posted in pieces under Slack's practical message size and edited while it streams; a
text model's answer streams with Slack's streaming methods (`adapters.slack.stream`), or, where
the workspace refuses them, is edited in `markdown` blocks of up to 12,000 characters.
Errors, warnings and confirmations are ephemeral, for the requester only.

When the card cannot be edited (Slack answering 5xx to `chat.update`), the core asks for other
routes: `Route.MESSAGE` posts the result card as a new message in the job's thread, `DIRECT`
sends it to the requester's DM, `LINK` posts it without uploads (files as the bot's links).

Everything a later call must find again (the anchor, text pieces, "files uploaded", "delivered")
is stored by job id (`SlackStore`), so a Delivery rebuilt after a restart edits the same
messages, and a result delivered twice (crash after the upload) is posted once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.pacing import CardPacer
from adapters.slack import blocks
from adapters.slack.reply import Audience, Replies
from adapters.slack.store import SlackStore
from adapters.slack.stream import (
    PIECE_LIMIT,
    AnswerStream,
    StreamRefused,
    StreamSupport,
    markdown_message,
)
from adapters.slack.text import clip, escape, split_text
from bot.commands import COMMANDS
from bot.delivery import ChannelRef, Confirmation, Failure, MediaFile, Progress, Result, Route

log = logging.getLogger(__name__)

TEXT_LIMIT = 3500  # Slack documents 40k; messages fail with msg_too_long around 4k
MAX_UPLOAD_BYTES = 1024**3  # Slack's per-file limit
ANCHOR = "anchor"
FILES = "files"
DELIVERED = "delivered"
TOO_BIG = "Too big to upload here; download (links work for 7 days):"
NOT_UPLOADED = "Slack would not take the upload; download (links work for 7 days):"


class SlackDelivery:
    def __init__(
        self,
        *,
        client: AsyncWebClient,
        store: SlackStore,
        replies: Replies,
        ref: ChannelRef,
        pacer: CardPacer,
        streaming: StreamSupport | None = None,
    ) -> None:
        self._client = client
        self._pacer = pacer
        self._streaming = streaming or StreamSupport()
        self._streams: dict[str, AnswerStream] = {}  # job id -> its answer being streamed
        self._store = store
        self._replies = replies
        self.ref = ref
        self._lock = asyncio.Lock()
        self._posted: dict[str, dict[str, tuple[str, str]]] = {}  # job id -> kind -> (ch, ts)
        self._shown: dict[tuple[str, str], str] = {}  # (job id, kind) -> text last sent

    @property
    def audience(self) -> Audience:
        extra = self.ref.extra
        return Audience(
            channel=self.ref.channel,
            user=self.ref.user,
            thread=self.ref.thread,
            response_url=extra.get("response_url"),
            response_url_at=float(extra.get("response_url_at", 0) or 0),
        )

    @property
    def title(self) -> str:
        return blocks.headline(self.ref.extra, self.ref.user)

    # --- the Delivery protocol ----------------------------------------------------------

    async def progress(self, update: Progress) -> None:
        view = blocks.progress(self.title, update.describe(), update.job_id)
        await self._step(update.job_id, self._fallback("working on it"), view)
        if update.partial_text:
            await self._post_text(update.job_id, update.partial_text, final=False)

    async def confirm(self, request: Confirmation) -> None:
        question = f"This will cost about {blocks.cost(request.estimate)}; run it?"
        await self._replies.ephemeral(self.audience, question, blocks.confirmation(request))

    async def deliver(self, result: Result, route: Route = Route.EDIT) -> None:
        await self._pacer.final(result.job_id)
        posted = await self._messages(result.job_id)
        if DELIVERED in posted:
            log.info("job %s: already in Slack; not posting it again", result.job_id)
            return
        if route is not Route.EDIT:
            await self._post_anew(result, route, posted)
            return
        view = blocks.progress(self.title, f"{result.model}: uploading", result.job_id)
        channel, anchor = await self._step(result.job_id, self._fallback("uploading"), view)
        thread = self.ref.thread or anchor
        text, files = _shown_parts(result)
        if text:
            await self._post_text(result.job_id, text, final=True, thread=thread)
        if files and FILES not in posted:
            await self._upload(result, files, channel, thread)
            await self._remember(result.job_id, FILES, channel, anchor)
        card = blocks.result(self.title, result, variations=COMMANDS[result.command].variations)
        await self._pacer.final(result.job_id)
        await self.show(result.job_id, self._fallback(blocks.summary(result)), card)
        await self._remember(result.job_id, DELIVERED, channel, anchor)

    async def _post_anew(
        self, result: Result, route: Route, posted: dict[str, tuple[str, str]]
    ) -> None:
        """The result as new messages, without touching the card: in its thread, or the DM."""
        if route is Route.DIRECT:
            channel, thread = self.ref.user, None  # Slack posts to a user id as the bot's DM
        elif ANCHOR in posted:
            channel, thread = posted[ANCHOR][0], self.ref.thread or posted[ANCHOR][1]
        else:
            channel, thread = self.ref.channel, self.ref.thread
        text, files = _shown_parts(result)
        for piece in split_text(escape(text), TEXT_LIMIT) if text else []:
            await self._client.chat_postMessage(
                channel=channel, thread_ts=thread, text=piece, unfurl_links=False
            )
        if files and FILES not in posted:
            if route is Route.MESSAGE:
                await self._upload(result, files, channel, thread)
            else:  # no upload: links (the bot's own for Route.LINK)
                await self._client.chat_postMessage(
                    channel=channel,
                    thread_ts=thread,
                    text=_links(files, NOT_UPLOADED),
                    unfurl_links=False,
                )
            await self._remember(result.job_id, FILES, channel, thread or "")
        card = blocks.result(self.title, result, variations=COMMANDS[result.command].variations)
        answer = await self._client.chat_postMessage(
            channel=channel,
            thread_ts=thread,
            text=self._fallback(blocks.summary(result)),
            blocks=card,
            unfurl_links=False,
            unfurl_media=False,
        )
        await self._remember(result.job_id, DELIVERED, str(answer["channel"]), str(answer["ts"]))

    async def fail(self, failure: Failure) -> None:
        stream = self._streams.pop(failure.job_id, None)
        if stream is not None:
            await stream.close()
        await self._pacer.final(failure.job_id)
        await self._replies.ephemeral(self.audience, escape(failure.message))
        try:
            await self.show(
                failure.job_id, self._fallback("ended"), blocks.ended(self.title, failure)
            )
        except (SlackApiError, SlackClientError) as exc:
            log.warning("job %s: could not mark the card as ended: %s", failure.job_id, exc)

    async def warn(self, job_id: str, message: str) -> None:
        await self._replies.ephemeral(self.audience, f"⚠️ {escape(message)}")

    # --- the anchor ---------------------------------------------------------------------

    async def open(self, job_id: str) -> tuple[str, str]:
        """Post the card of a job just submitted through this delivery ('queued'), unless its
        task got there first. Nothing can be stored for it yet but by this delivery, so the
        store is not read."""
        self._posted.setdefault(job_id, {})
        view = blocks.progress(self.title, "queued", job_id)
        return await self.show(job_id, self._fallback("queued"), view, create_only=True)

    async def show(
        self, job_id: str, text: str, view: Sequence[dict[str, Any]], *, create_only: bool = False
    ) -> tuple[str, str]:
        """Post the anchor with this content, or edit it if it exists: (channel, ts)."""
        async with self._lock:
            posted = await self._messages(job_id)
            if ANCHOR in posted:
                channel, ts = posted[ANCHOR]
                if not create_only:
                    await self._client.chat_update(channel=channel, ts=ts, text=text, blocks=view)
                    self._pacer.wrote(job_id)
                return channel, ts
            answer = await self._client.chat_postMessage(
                channel=self.ref.channel,
                thread_ts=self.ref.thread,
                text=text,
                blocks=view,
                unfurl_links=False,
                unfurl_media=False,
            )
            channel, ts = str(answer["channel"]), str(answer["ts"])
            self._pacer.wrote(job_id)
            await self._remember(job_id, ANCHOR, channel, ts)
            log.info("job %s: card posted in %s at %s", job_id, channel, ts)
            return channel, ts

    async def _step(
        self, job_id: str, text: str, view: Sequence[dict[str, Any]]
    ) -> tuple[str, str]:
        """A step before the job's end: paced (`adapters.pacing`) once the card is up."""
        async with self._lock:  # a card being posted is up once the lock is free
            anchor = (await self._messages(job_id)).get(ANCHOR)
        if anchor is None:
            return await self.show(job_id, text, view)
        await self._pacer.edit(job_id, lambda: self.show(job_id, text, view))
        return anchor

    def _fallback(self, state: str) -> str:
        return f"{self.title} ({state})"

    # --- text and files -----------------------------------------------------------------

    async def _post_text(
        self, job_id: str, text: str, *, final: bool, thread: str | None = None
    ) -> None:
        """Post or edit the pieces of a (growing) text; on the final call drop extra pieces."""
        posted = await self._messages(job_id)
        channel, anchor = posted[ANCHOR]
        thread = thread or self.ref.thread or anchor
        if await self._stream_text(job_id, text, final=final, channel=channel, thread=thread):
            return
        answer_text = self.ref.extra.get("command") == "ask"  # model text: markdown blocks
        pieces = split_text(escape(text), PIECE_LIMIT if answer_text else TEXT_LIMIT)
        for index, piece in enumerate(pieces):
            kind = f"text:{index}"
            content = markdown_message(piece) if answer_text else {"text": piece}
            if kind in posted:
                if self._shown.get((job_id, kind)) != piece:
                    await self._client.chat_update(
                        channel=posted[kind][0], ts=posted[kind][1], **content
                    )
            else:
                answer = await self._client.chat_postMessage(
                    channel=channel,
                    thread_ts=thread,
                    unfurl_links=False,
                    unfurl_media=False,
                    **content,
                )
                await self._remember(job_id, kind, str(answer["channel"]), str(answer["ts"]))
            self._shown[(job_id, kind)] = piece
        if final:
            extra = sorted(k for k in posted if k.startswith("text:") and int(k[5:]) >= len(pieces))
            for kind in extra:
                await self._client.chat_delete(channel=posted[kind][0], ts=posted[kind][1])
                await self._store.forget(job_id, kind)
                posted.pop(kind, None)

    async def _stream_text(
        self, job_id: str, text: str, *, final: bool, channel: str, thread: str
    ) -> bool:
        """Stream the text where Slack allows it; False to edit plain messages instead."""
        posted = await self._messages(job_id)
        if self.ref.extra.get("command") != "ask" or any(k.startswith("text:") for k in posted):
            return False  # only answers stream; one begun as edited messages stays so
        stream = self._streams.get(job_id)
        if stream is None:
            if self.ref.workspace in self._streaming.refused:
                return False
            stream = AnswerStream(
                self._client,
                channel=channel,
                thread=thread,
                team=self.ref.workspace,
                user=self.ref.user,
                posted=posted,
                remember=lambda kind, ch, ts: self._remember(job_id, kind, ch, ts),
            )
            self._streams[job_id] = stream
        try:
            unneeded = await stream.write(escape(text), final=final)
        except StreamRefused as refusal:
            log.info(
                "slack streaming refused in %s (%s); editing instead", self.ref.workspace, refusal
            )
            self._streaming.refused.add(self.ref.workspace)
            del self._streams[job_id]
            return False
        if final:
            del self._streams[job_id]
            for where in unneeded:
                await self._client.chat_delete(channel=where[0], ts=where[1])
                kind = next(k for k, v in posted.items() if v == where and k.startswith("stream:"))
                await self._store.forget(job_id, kind)
                posted.pop(kind, None)
        return True

    async def _upload(
        self, result: Result, files: Sequence[MediaFile], channel: str, thread: str | None
    ) -> None:
        fits = [f for f in files if len(f.data) <= MAX_UPLOAD_BYTES]
        uploads = [
            {
                "file": f.data,
                "filename": f.filename,
                "title": _title(result, f),
                "alt_txt": clip(result.prompt, 1000) or None,
            }
            for f in fits
        ]
        started = time.monotonic()
        try:
            if uploads:
                await self._client.files_upload_v2(
                    file_uploads=uploads, channel=channel, thread_ts=thread
                )
        except (SlackApiError, SlackClientError) as exc:
            if not all(f.source_url for f in files):
                raise
            log.warning("job %s: upload failed (%s); posting links instead", result.job_id, exc)
            fits = []
        log.info(
            "job %s: %d file(s) uploaded in %.1fs",
            result.job_id,
            len(fits),
            time.monotonic() - started,
        )
        too_big = [f for f in files if not any(f is g for g in fits)]
        if too_big:
            await self._client.chat_postMessage(
                channel=channel, thread_ts=thread, text=_links(too_big), unfurl_links=False
            )

    # --- bookkeeping --------------------------------------------------------------------

    async def _messages(self, job_id: str) -> dict[str, tuple[str, str]]:
        if job_id not in self._posted:
            stored = await self._store.messages(job_id)
            return self._posted.setdefault(job_id, stored)  # kept if `open` came meanwhile
        return self._posted[job_id]

    async def _remember(self, job_id: str, kind: str, channel: str, ts: str) -> None:
        (await self._messages(job_id))[kind] = (channel, ts)
        await self._store.remember(job_id, kind, channel, ts)


def _shown_parts(result: Result) -> tuple[str | None, tuple[MediaFile, ...]]:
    """What to post: a short transcript inline (its .txt file is then redundant), a long one
    as files only; other text always inline."""
    if result.command != "transcribe" or not result.text:
        return result.text, result.files
    if len(escape(result.text)) > TEXT_LIMIT:
        return None, result.files
    return result.text, tuple(f for f in result.files if not f.filename.endswith(".txt"))


def _title(result: Result, file: MediaFile) -> str:
    seed = f" · seed {result.seeds[0]}" if len(result.seeds) == 1 else ""
    return f"{result.model}{seed} · {file.filename}"


def _links(files: Sequence[MediaFile], lead: str = TOO_BIG) -> str:
    lines = [lead]
    lines += [f"• <{escape(f.source_url or '')}|{escape(f.filename)}>" for f in files]
    return "\n".join(lines)
