"""Block Kit for the messages a job shows: its progress, its result card, its end, a confirmation.

Every string taken from a user or a model goes through `text.escape`; the only mention we ever
write is the requester's own `<@U...>`. Each message also gets a plain `text` fallback (Slack
shows it in notifications and warns when blocks come without one).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from adapters.slack.text import clip, escape
from bot.delivery import Confirmation, Failure, Result
from bot.ledger import format_usd

Block = dict[str, Any]

REROLL = "job_reroll"
VARIATIONS = "job_variations"
CANCEL = "job_cancel"
SHOW = "job_show"
CONFIRM = "job_confirm"
DECLINE = "job_decline"
FRESH = "job_fresh"  # an answer's conversation: its next turn starts a new one
ACTIONS = (REROLL, VARIATIONS, CANCEL, SHOW, CONFIRM, DECLINE, FRESH)

PROMPT_SHOWN = 500  # characters of a prompt echoed in a headline (escaped, well under 3,000)
EMOJI = {
    "imagine": "🎨",
    "edit": "🖌️",
    "video": "🎬",
    "transcribe": "📝",
    "ask": "💬",
    "speak": "🔊",
}
NOUN = {
    "imagine": "an image",
    "edit": "an image edit",
    "video": "a video",
    "transcribe": "a transcription",
    "ask": "an answer",
    "speak": "speech",
}


def headline(extra: Mapping[str, str], user: str) -> str:
    """`🎨 <@U1> asked for: a cat`, from what a job's ChannelRef remembers of its request."""
    command = extra.get("command", "imagine")
    prompt = escape(clip(extra.get("prompt", ""), PROMPT_SHOWN))
    origin = extra.get("origin", "command")
    if origin == "reroll":
        return f"🎲 <@{user}> rerolled: {prompt}" if prompt else f"🎲 <@{user}> rerolled"
    if origin == "variations":
        return f"🔀 <@{user}> asked for variations of: {prompt}"
    emoji = EMOJI.get(command, "✨")
    if not prompt:
        return f"{emoji} <@{user}> asked for {NOUN.get(command, 'a job')}"
    return f"{emoji} <@{user}> asked for: {prompt}"


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def button(label: str, action_id: str, value: str, style: str | None = None) -> Block:
    element: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": label, "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    return element


def actions(*buttons: Block) -> Block:
    return {"type": "actions", "block_id": "job_actions", "elements": list(buttons)}


def progress(title: str, line: str, job_id: str) -> list[Block]:
    return [
        section(title),
        context(f"⏳ {escape(line)}"),
        actions(button("Cancel", CANCEL, job_id, "danger")),
    ]


def result(title: str, done: Result, *, variations: bool) -> list[Block]:
    blocks = [section(title), context(summary(done))]
    for note in done.notes:
        blocks.append(context(f"⚠️ {clip(escape(note), 1000)}"))
    buttons = [button("🎲 Reroll", REROLL, done.job_id)]
    if variations:
        buttons.append(button("🔀 Variations", VARIATIONS, done.job_id))
    buttons.append(button("Show request", SHOW, done.job_id))
    if done.kind == "text":
        buttons.append(button("✨ Start fresh", FRESH, done.job_id))
    blocks.append(actions(*buttons))
    return blocks


def summary(done: Result) -> str:
    """`*FLUX.1 Schnell* · seed 7 · $0.0006 · $0.99 left today`."""
    parts = [f"*{escape(done.model)}*"]
    if done.seeds:
        label = "seed" if len(done.seeds) == 1 else "seeds"
        parts.append(f"{label} {', '.join(str(s) for s in done.seeds)}")
    parts.append("cached, free" if done.cached else cost(done.cost))
    if done.remaining:
        parts.append(escape(done.remaining))
    return " · ".join(parts)


def cost(amount: Decimal) -> str:
    return "free" if amount == 0 else format_usd(amount)


def ended(title: str, failure: Failure) -> list[Block]:
    cancelled = failure.message.lower().startswith("cancel")
    line = "🚫 Cancelled." if cancelled else "❌ This job did not finish."
    line += (
        f" Charged {format_usd(failure.charged)}." if failure.charged else " Nothing was charged."
    )
    blocks = [section(title), context(line)]
    if failure.retryable and not cancelled:
        blocks.append(actions(button("🎲 Try again", REROLL, failure.job_id)))
    return blocks


def confirmation(request: Confirmation) -> list[Block]:
    question = (
        f"💸 This will cost about *{format_usd(request.estimate)}*, more than the"
        f" {format_usd(request.threshold)} that needs a yes first:\n{clip(escape(request.summary), 1500)}"
    )
    return [
        section(question),
        actions(
            button("Run it", CONFIRM, request.job_id, "primary"),
            button("Cancel", DECLINE, request.job_id),
        ),
    ]
