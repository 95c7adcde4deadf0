"""Conversations: a reply to an `/ask` answer continues it, with the earlier turns as context.

Every `ask` job is a turn of a conversation (its own, when it starts one), stored with what
the member said (`conversation_turns`); the model's replies are read back from the jobs'
outputs, so history lives in the database, survives restarts and needs no permission to read a
channel's history. A *place* is where a reply continues a conversation (the answer's message,
a thread): adapters only detect "this message continues the conversation at place X" and ask
`next_turn` for the request to submit; price, quota and policy are the job engine's as for any
job, and the hold bounds the whole history sent (`pricing.bound` counts every message).

History is capped by `jobs.conversation_max_tokens`, counted as pricing counts a prompt's
worst case: one token per UTF-8 byte of text. The oldest turns are dropped first.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from bot.config import JobSettings
from bot.errors import InvalidRequest
from bot.jobs.states import WITH_RESULT
from bot.requests import Request, build_request, split_options
from bot.runpod.catalog import Catalog, Model
from bot.runpod.outputs import extract
from bot.storage.sql import Connection, Store

if TYPE_CHECKING:
    from bot.jobs.store import JobRecord

COMMAND = "ask"
_NEW = re.compile(r"(?<!\S)(?:--|\u2014|\u2013)new(?!\S)", re.IGNORECASE)
CLOSED = "closed:"  # a place named for a conversation: its next turn starts a new one


@dataclass(frozen=True)
class Thread:
    """Which conversation a job is a turn of (None: it starts one), where replies continue it,
    and what the member said (the history shows this, not the text sent with the history)."""

    conversation: str | None
    place: str | None
    said: str


@dataclass(frozen=True)
class NextTurn:
    request: Request
    thread: Thread


@dataclass(frozen=True)
class Turn:
    said: str
    reply: str

    @property
    def size(self) -> int:
        return _bytes(self.said) + _bytes(self.reply)


class Conversations:
    def __init__(self, db: Store, catalog: Catalog, jobs: JobSettings) -> None:
        self._db = db
        self._catalog = catalog
        self._jobs = jobs

    def recording(self, job: JobRecord, thread: Thread) -> Callable[[Connection], None]:
        """Make `job` a turn of `thread`'s conversation: an operation for the submitting
        transaction, so no turn is half-kept."""
        job_id, platform, workspace = job.id, job.member.platform, job.member.workspace
        conversation = thread.conversation or job_id
        now = time.time()

        def write(raw: Connection) -> None:
            raw.execute(
                "INSERT INTO conversation_turns (job_id, conversation, said, created_at)"
                " VALUES (?, ?, ?, ?)",
                (job_id, conversation, thread.said, now),
            )
            if thread.place:  # a fresh conversation (`--new`) takes the place over
                raw.execute(
                    "INSERT INTO conversation_places (platform, workspace, place, conversation)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (platform, workspace, place)"
                    " DO UPDATE SET conversation = excluded.conversation",
                    (platform, workspace, thread.place, conversation),
                )

        return write

    async def add_place(self, platform: str, workspace: str, place: str, job_id: str) -> None:
        """Replies at `place` now continue the conversation job `job_id` is a turn of."""
        conversation = await self.of_job(platform, workspace, job_id)
        if conversation is None:
            return
        await self._db.run(
            lambda raw: raw.execute(
                "INSERT INTO conversation_places (platform, workspace, place, conversation)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (platform, workspace, place) DO NOTHING",
                (platform, workspace, place, conversation),
            )
        )

    async def close(self, platform: str, workspace: str, job_id: str) -> str:
        """Start fresh: the next turn of job `job_id`'s conversation, wherever it is taken,
        starts a new one (as `--new` does). Returns what to tell the member who asked."""
        conversation = await self.of_job(platform, workspace, job_id)
        if conversation is None:
            raise InvalidRequest("That answer is not part of a conversation here.")
        await self.add_place(platform, workspace, CLOSED + conversation, job_id)
        return (
            "The next reply to this conversation starts a new one: the same model,"
            " without the earlier turns."
        )

    async def at(self, platform: str, workspace: str, place: str) -> str | None:
        """The conversation a reply at `place` continues, if any."""
        return await self._conversation(
            "SELECT conversation FROM conversation_places"
            " WHERE platform = ? AND workspace = ? AND place = ?",
            (platform, workspace, place),
        )

    async def of_job(self, platform: str, workspace: str, job_id: str) -> str | None:
        """The conversation job `job_id` is a turn of, if it is one of this community's."""
        return await self._conversation(
            "SELECT t.conversation FROM conversation_turns t JOIN jobs j ON j.id = t.job_id"
            " WHERE t.job_id = ? AND j.platform = ? AND j.workspace = ?",
            (job_id, platform, workspace),
        )

    async def _conversation(self, sql: str, params: tuple[str, ...]) -> str | None:
        row = await self._db.fetchone(sql, params)
        return None if row is None else str(row[0])

    async def next_turn(
        self,
        conversation: str,
        text: str,
        *,
        place: str | None = None,
        media: Sequence[str] = (),
    ) -> NextTurn:
        """The request for a reply `text` in `conversation`: the same model, the earlier turns
        as context; `--new` (or Start fresh, `close`) starts a new conversation instead.
        InvalidRequest for bad input."""
        fresh = _NEW.search(text) is not None or await self._closed(conversation)
        prompt, options = split_options(_NEW.sub(" ", text))
        last, turns = await self._history(conversation)
        default = last.model if last else self._jobs.default_models[COMMAND]
        if last and not fresh and "model" not in options and "m" not in options:
            options = {**settings_of(self._catalog.get(last.model), last.input), **options}
        build = partial(
            build_request,
            COMMAND,
            self._catalog,
            prompt=prompt,
            options=options,
            default_model=default,
        )
        request = build()
        if media:
            _reads_images(self._catalog.get(request.model))
            request = build(media=media)
        said = request.prompt
        if fresh:
            return NextTurn(request, Thread(None, place, said))
        model = self._catalog.get(request.model)
        kept = capped(turns, _bytes(said), self._jobs.conversation_max_tokens)
        input = with_history(model, request.input, kept, said)
        checked = model.validate_params(input)
        return NextTurn(
            Request(COMMAND, model.id, checked, request.count, request.media),
            Thread(conversation, place, said),
        )

    async def _closed(self, conversation: str) -> bool:
        row = await self._db.fetchone(
            "SELECT 1 FROM jobs j JOIN conversation_places p ON p.platform = j.platform"
            " AND p.workspace = j.workspace AND p.place = ? WHERE j.id = ?",
            (CLOSED + conversation, conversation),
        )
        return row is not None

    async def _history(self, conversation: str) -> tuple[Last | None, list[Turn]]:
        """The conversation's last turn (its model and settings carry on) and its answered
        turns, oldest first."""
        rows = await self._db.fetchall(
            "SELECT t.said, j.model, j.state, j.copies, j.request FROM conversation_turns t"
            " JOIN jobs j ON j.id = t.job_id WHERE t.conversation = ?"
            " ORDER BY t.turn",
            (conversation,),
        )
        last: Last | None = None
        turns: list[Turn] = []
        for said, model, state, copies, request in rows:
            last = Last(str(model), json.loads(request).get("input") or {})
            if state not in WITH_RESULT:
                continue
            reply = _reply(self._catalog.get(str(model)), json.loads(copies))
            if reply:
                turns.append(Turn(str(said), reply))
        return last, turns


@dataclass(frozen=True)
class Last:
    model: str
    input: dict[str, Any]


def settings_of(model: Model, input: Mapping[str, Any]) -> dict[str, Any]:
    """A turn's settings as options for the next one (`max_tokens`, a model variant...): every
    parameter but the text and files, by its full (dotted) name. A parameter called `model`
    (an endpoint's variant) is left out: `--model` names the catalog's model."""
    skipped = {model.prompt_param, "model", *model.media_inputs}
    found: dict[str, Any] = {}
    for name in model.params:
        if name in skipped:
            continue
        value: Any = input
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None:
            found[name] = value
    return found


def capped(turns: Sequence[Turn], room_taken: int, max_tokens: int) -> list[Turn]:
    """The newest turns whose text fits `max_tokens` with the new message; oldest dropped."""
    kept: list[Turn] = []
    used = room_taken
    for turn in reversed(turns):
        used += turn.size
        if used > max_tokens:
            break
        kept.append(turn)
    return kept[::-1]


def with_history(
    model: Model, input: dict[str, Any] | Any, turns: Sequence[Turn], said: str
) -> dict[str, Any]:
    """The model input with the history: chat `messages`, or for a prompt-only model a
    transcript as its prompt."""
    input = dict(input)
    if model.prompt_param is None:
        return input
    if model.params[model.prompt_param].type == "messages":
        messages: list[dict[str, str]] = []
        for turn in turns:
            messages.append({"role": "user", "content": turn.said})
            messages.append({"role": "assistant", "content": turn.reply})
        messages.append({"role": "user", "content": said})
        input[model.prompt_param] = messages
        return input
    lines = [f"User: {t.said}\nAssistant: {t.reply}" for t in turns]
    input[model.prompt_param] = "\n".join([*lines, f"User: {said}"]) if turns else said
    return input


def _reads_images(model: Model) -> None:
    """No catalog chat model takes images today: say so plainly rather than "takes no file"."""
    if not model.media_inputs:
        raise InvalidRequest(
            f"{model.name} reads text only, so it cannot see the attached image."
            " Send your message without it."
        )


def _reply(model: Model, copies: list[dict[str, Any]]) -> str:
    for copy in copies:
        if copy.get("status") == "COMPLETED":
            return extract(model, copy.get("output")).text or ""
    return ""


def _bytes(text: str) -> int:
    return len(text.encode("utf-8"))
