"""Fitting text into Discord messages: 2,000 characters each, code fences kept intact.

A reply split in the middle of a ``` block would render the rest of the conversation as code,
so a chunk that ends inside a fence closes it, and the next chunk reopens it with the same
language tag. Splits prefer paragraph ends, then line ends, then spaces.
"""

from __future__ import annotations

MESSAGE_LIMIT = 2000
_FENCE = "```"
_MAX_OPENER = 24  # a reopened fence keeps at most this much of its opening line


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Chunks of at most `limit` characters whose code fences are balanced, in order."""
    if limit < 100:
        raise ValueError("limit too small to hold fences and text")
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    fence: str | None = None  # the opening line of the fence we are inside, e.g. "```python"

    def close_chunk() -> None:
        nonlocal current, size
        body = "\n".join(current) + (f"\n{_FENCE}" if fence is not None else "")
        if "".join(line for line in current if not line.strip().startswith(_FENCE)).strip():
            chunks.append(body)
        current = [fence] if fence is not None else []
        size = len(fence) if fence is not None else 0

    for line in text.split("\n"):
        after = _next_fence(fence, line)
        reserve = len(_FENCE) + 1 if after is not None else 0
        for piece in _pieces(line, limit - _MAX_OPENER - len(_FENCE) - 8):
            added = len(piece) + (1 if current else 0)
            if current and size + added + reserve > limit:
                close_chunk()
                added = len(piece) + (1 if current else 0)
            current.append(piece)
            size += added
        fence = after
    close_chunk()
    return chunks


def _next_fence(fence: str | None, line: str) -> str | None:
    """The fence state after `line`: its opening line while inside a fence, else None."""
    stripped = line.strip()
    if not stripped.startswith(_FENCE):
        return fence
    if fence is None:
        return stripped.split()[0][:_MAX_OPENER]
    return None if stripped.rstrip("`") == "" else fence


def _pieces(line: str, room: int) -> list[str]:
    """A line cut into pieces that fit `room`, preferring to cut at spaces."""
    room = max(room, 20)
    pieces = []
    while len(line) > room:
        cut = line.rfind(" ", room // 2, room)
        cut = cut if cut > 0 else room
        pieces.append(line[:cut])
        line = line[cut:].lstrip(" ") if line[cut : cut + 1] == " " else line[cut:]
    pieces.append(line)
    return pieces


def shorten(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis when it had to be cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def code_block(text: str) -> str:
    """Text shown verbatim; a ``` inside it is broken up so it cannot end the block early."""
    safe = text.replace(_FENCE, "`\u200b``")
    return f"{_FENCE}\n{safe}\n{_FENCE}"
