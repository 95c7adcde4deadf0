"""What an admitted request becomes: its job row, one seed per copy, and the amount it holds.

The hold is the most Runpod can bill for the request (`pricing.bound`); where that depends on
something only known after the run, it is a cap and the member is told so (`hold_note`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import secrets
import time
import uuid
from decimal import Decimal

from bot.config import JobSettings
from bot.delivery import MediaFile
from bot.jobs.invocation import Invocation
from bot.jobs.states import JobState
from bot.jobs.store import JobRecord, new_copies
from bot.requests import Request
from bot.runpod import pricing, recording
from bot.runpod.catalog import SEED_MAX, Model


async def hold_for(
    model: Model, request: Request, kept: dict[str, MediaFile], settings: JobSettings
) -> tuple[Decimal, str | None]:
    """The amount to hold for every copy, and the note to show when it is a cap, not a bound."""
    seconds = await _recording_seconds(model, kept)
    bound = pricing.bound(model, request.input, settings, audio_seconds=seconds)
    estimate = bound.amount * request.count
    return estimate, None if bound.known else _capped(model, estimate)


def new_job(
    invocation: Invocation,
    model: Model,
    *,
    kept: dict[str, MediaFile],
    estimate: Decimal,
    hold_note: str | None,
    webhooks: bool,
    cache_key: str | None,
) -> JobRecord:
    """The `held` row of a new job (not stored yet)."""
    identity, request = invocation.identity, invocation.request
    return JobRecord(
        id=uuid.uuid4().hex[:12],
        identity=(identity.platform, identity.workspace, identity.user),
        channel=invocation.channel,
        command=request.command,
        model=model.id,
        request={
            "input": dict(request.input),
            "count": request.count,
            "media": list(request.media),
            **({"hold_note": hold_note} if hold_note else {}),
            **({"kept_inputs": {url: f.filename for url, f in kept.items()}} if kept else {}),
        },
        state=JobState.HELD,
        estimate=estimate,
        created_at=time.time(),
        copies=new_copies(request.count, _seeds(model, request)),
        webhook_token=secrets.token_urlsafe(24) if webhooks else None,
        cache_key=cache_key,
    )


def cache_key(model: Model, request: Request) -> str | None:
    """What identifies a result the cache may give again: one copy with a chosen seed."""
    if request.seed is None or request.count != 1:
        return None
    text = json.dumps({"model": model.id, "input": request.input}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def summary(model: Model, request: Request) -> str:
    """One line naming the job, for the confirmation prompt."""
    copies = f"{request.count} x " if request.count > 1 else ""
    prompt = request.prompt if len(request.prompt) <= 80 else request.prompt[:77] + "..."
    return f"{copies}{model.name}: {prompt}" if prompt else f"{copies}{model.name}"


async def _recording_seconds(model: Model, kept: dict[str, MediaFile]) -> float | None:
    """The length of the recording a transcription sends; None if it cannot be read.

    Read from the kept input (fetched with the same caps as results): a file too big,
    unreachable or in a format `recording` cannot read leaves the length unknown, and the
    hold a cap.
    """
    if model.kind != "transcription" or not kept:
        return None
    recording_file = next(iter(kept.values()))
    return await asyncio.to_thread(recording.seconds_of, recording_file.data)


def _seeds(model: Model, request: Request) -> list[int | None]:
    """One seed per copy, so every result can be reproduced; random unless the user chose one.

    A chosen seed's copies take the next seeds up; `build_request` has checked they fit.
    """
    spec = model.seed_param
    if spec is None:
        return [None] * request.count
    base = request.seed
    if base is None:
        low = max(int(spec.min or 0), 0)
        high = SEED_MAX if spec.max is None else int(spec.max)
        return [random.randint(low, high) for _ in range(request.count)]
    return [base + i for i in range(request.count)]


def _capped(model: Model, amount: Decimal) -> str:
    """What to tell a member whose job holds a cap, not a bound: Runpod may bill more."""
    why = (
        "the recording's length could not be read"
        if model.kind == "transcription"
        else "its length is known only after it runs"
    )
    return f"Held up to {pricing.exact_usd(amount)} because {why}."
