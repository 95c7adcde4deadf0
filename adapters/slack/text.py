"""Slack's text format, both ways: user input to plain text, and our output that can ping no one.

Slack sends user text with `&`, `<`, `>` as HTML entities and mentions/links as `<...>` markup
(`<@U123|bob>`, `<!here>`, `<!subteam^S1|@team>`, `<https://x|x>`). A prompt is what the user
*sees*, so markup becomes its visible form (`@bob`, `@here`, the URL) and entities are decoded.
Everything we echo goes through `escape`, which turns `<`, `>` and `&` back into entities: a
prompt can then show `<!channel>` but never *be* one, so only the requester (whom we mention
ourselves) is ever pinged.
"""

from __future__ import annotations

import re

_MARKUP = re.compile(r"<([^<>\n]*)>")
_LINK = re.compile(r"https?://[^\s<>|]+")
_ENTITY_TAIL = re.compile(r"&[a-z]{0,4}$")
FENCE = "```"


def escape(text: str) -> str:
    """Make any text safe to show in Slack: no mentions, links or markup, just the characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def from_slack(text: str) -> str:
    """Slack-formatted user text -> the plain text the user saw when they typed it."""
    return unescape(_MARKUP.sub(_visible, text))


def _visible(match: re.Match[str]) -> str:
    target, _, label = match.group(1).partition("|")
    if target.startswith("@"):
        return "@" + (label or target[1:])
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!subteam^"):
        return label or "@" + target.removeprefix("!subteam^")
    if target.startswith("!date^"):
        return label
    if target.startswith("!"):
        return "@" + target[1:]
    if target.startswith("mailto:"):
        return label or target.removeprefix("mailto:")
    return target or label


def take_links(text: str) -> tuple[str, list[str]]:
    """Split `http(s)://` links out of plain text: (the text without them, the links)."""
    links = _LINK.findall(text)
    return " ".join(_LINK.sub(" ", text).split()), links


def strip_mentions_of(text: str, user_id: str) -> str:
    """Drop `<@BOT>` (and `<@BOT|name>`) from a mention's raw text."""
    return re.sub(rf"<@{re.escape(user_id)}(\|[^>]*)?>", " ", text).strip()


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def code_block(text: str, limit: int) -> str:
    """Escaped text in a code block, cut to fit `limit` characters in all."""
    body = escape(text)
    room = limit - 2 * len(FENCE) - 2
    if len(body) > room:
        body = _safe_cut(body, room - 1) + "…"
    return f"{FENCE}\n{body}\n{FENCE}"


def split_text(text: str, limit: int) -> list[str]:
    """Already-escaped text in pieces of at most `limit` characters, for one message each.

    Cuts at a paragraph, else a line, else a space; never inside an entity (`&amp;`), and a code
    block cut in two is closed at the end of one piece and reopened in the next.
    """
    if limit < 20:
        raise ValueError("limit too small to split into readable pieces")
    pieces: list[str] = []
    rest = text
    reopen = False
    while rest:
        prefix = FENCE + "\n" if reopen else ""
        room = limit - len(prefix) - len(FENCE) - 1
        if len(prefix) + len(rest) <= limit:
            pieces.append(prefix + rest)
            break
        cut = _cut_point(rest, room)
        piece, rest = prefix + rest[:cut].rstrip(), rest[cut:].lstrip("\n ")
        reopen = piece.count(FENCE) % 2 == 1
        pieces.append(piece + "\n" + FENCE if reopen else piece)
    return [p for p in pieces if p.strip()]


def _cut_point(text: str, room: int) -> int:
    window = text[:room]
    for separator in ("\n\n", "\n", " "):
        at = window.rfind(separator)
        if at > room // 2:
            return at + len(separator)
    return len(_safe_cut(text, room))


def _safe_cut(text: str, room: int) -> str:
    head = text[:room]
    tail = _ENTITY_TAIL.search(head)
    return head[: tail.start()] if tail and tail.start() > 0 else head
