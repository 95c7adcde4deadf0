"""The port between the core and a chat platform: what the job engine tells the user, and how.

The core never imports a platform library. It calls a `Delivery` the adapter gave it. Each job
stores its `ChannelRef` (platform-neutral: where to answer and whom), so after a restart, when the
interaction that started a job is long gone, the adapter's `DeliveryFactory` can rebuild a
Delivery from the stored reference and finish the job there.

Every call names the job; `deliver` may be called again for the same job after a crash between
the upload and the bookkeeping, so adapters should use `Result.job_id` as an idempotency key
where the platform offers one (Discord message nonces).

`deliver` takes a `Route`: when the platform refuses the usual place for a paid result, the core
tries the next ones (see `bot.jobs.courier`), so each adapter maps every route to what its platform
can do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol


class Route(StrEnum):
    """Where a result is posted, best first."""

    EDIT = "edit"  # the job's own message (the interaction's response, the Slack card)
    MESSAGE = "message"  # a new message in the job's channel or thread
    DIRECT = "direct"  # to the requester alone: a direct message
    LINK = "link"  # a short text in the channel with links (`MediaFile.source_url`), no uploads


# `ChannelRef.extra[NSFW_CHANNEL] == "1"`: the job was asked for in an age-restricted channel
# (the web page lists no such result).
NSFW_CHANNEL = "nsfw"


@dataclass(frozen=True)
class ChannelRef:
    """Where a job answers: platform, workspace, channel, thread and the requesting user.

    `extra` carries what the adapter needs beyond that (an interaction token and when it was
    issued, a Slack response_url); nothing secret to the bot, but short-lived.
    """

    platform: str
    workspace: str
    channel: str
    user: str
    thread: str | None = None
    message: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "platform": self.platform,
                "workspace": self.workspace,
                "channel": self.channel,
                "user": self.user,
                "thread": self.thread,
                "message": self.message,
                "extra": dict(self.extra),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ChannelRef:
        data = json.loads(text)
        return cls(**{**data, "extra": data.get("extra") or {}})


@dataclass(frozen=True)
class Progress:
    """Where a job stands, for a progress line the adapter renders (throttled by the core)."""

    job_id: str
    model: str
    state: str  # queued | submitting | IN_QUEUE | IN_PROGRESS | downloading | delivering
    elapsed_s: float
    position: int | None = None  # place in this user's queue while waiting for a slot
    partial_text: str | None = None  # text models: everything generated so far
    started_at: float | None = None  # epoch seconds, for clocks the platform updates itself

    def describe(self) -> str:
        words = {
            "queued": "waiting for a free slot",
            "submitting": "sending to Runpod",
            "IN_QUEUE": "queued at Runpod",
            "IN_PROGRESS": "generating",
            "RUNNING": "generating",
            "downloading": "fetching the result",
            "delivering": "uploading",
        }.get(self.state, self.state.lower())
        where = f" (#{self.position} in your queue)" if self.position else ""
        return f"{self.model}: {words}{where}, {self.elapsed_s:.0f}s"


@dataclass(frozen=True)
class Confirmation:
    """An expensive job waiting for the requester to confirm (or cancel) it."""

    job_id: str
    model: str
    estimate: Decimal
    threshold: Decimal
    summary: str


@dataclass(frozen=True)
class MediaFile:
    filename: str
    content_type: str
    data: bytes
    width: int | None = None
    height: int | None = None
    # Where Runpod serves it (valid 7 days): a link to post when the file is too big to upload.
    source_url: str | None = None


@dataclass(frozen=True)
class Result:
    """A finished job: the files and/or text to post, and what it cost."""

    job_id: str
    command: str
    model: str  # display name
    model_id: str
    prompt: str
    kind: str  # the model's kind: what a renderer shows (`bot.commands`)
    files: tuple[MediaFile, ...] = ()
    text: str | None = None
    seeds: tuple[int, ...] = ()
    cost: Decimal = Decimal(0)
    remaining: str = ""  # e.g. "$0.97 left today"
    elapsed_s: float = 0.0
    cached: bool = False
    notes: tuple[str, ...] = ()  # e.g. "1 of 4 images failed (not charged)"
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    """A job that ended without a result; `charged` says whether anything was charged."""

    job_id: str
    message: str
    charged: Decimal = Decimal(0)
    retryable: bool = False


class Delivery(Protocol):
    async def progress(self, update: Progress) -> None: ...

    async def confirm(self, request: Confirmation) -> None: ...

    async def deliver(self, result: Result, route: Route = Route.EDIT) -> None: ...

    async def fail(self, failure: Failure) -> None: ...

    async def warn(self, job_id: str, message: str) -> None: ...


DeliveryFactory = Callable[[ChannelRef], Delivery]
