"""Components V2 as the fake Discord checks them (docs: "Component Reference", "Using Message
Components"): a message with flag IS_COMPONENTS_V2 (1 << 15) is laid out by its components
alone, so it may carry no `content` or `embeds`; its top level holds layout and content
components (container 17, action row 1, section 9, text display 10, media gallery 12, file 13,
separator 14), a container holds the same but no container, a media gallery 1-10 items, and an
`attachment://name` media URL must name a file of the message. At most 40 components in all
and 4,000 characters of text display."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

IS_COMPONENTS_V2 = 1 << 15
ACTION_ROW, SECTION, TEXT_DISPLAY, MEDIA_GALLERY, FILE, SEPARATOR = 1, 9, 10, 12, 13, 14
CONTAINER = 17
TOP_LEVEL = {ACTION_ROW, SECTION, TEXT_DISPLAY, MEDIA_GALLERY, FILE, SEPARATOR, CONTAINER}
IN_CONTAINER = TOP_LEVEL - {CONTAINER}
MAX_COMPONENTS = 40
MAX_TEXT = 4000
GALLERY_ITEMS = range(1, 11)


def v2_problems(body: Mapping[str, Any], filenames: set[str]) -> dict[str, str]:
    """What Discord would refuse in a V2 message `body` (form field -> reason), if anything."""
    problems: dict[str, str] = {}
    if body.get("content"):
        problems["content"] = "Cannot be used with IS_COMPONENTS_V2."
    if body.get("embeds"):
        problems["embeds"] = "Cannot be used with IS_COMPONENTS_V2."
    rows = list(body.get("components") or [])
    bad = [c.get("type") for c in rows if c.get("type") not in TOP_LEVEL]
    bad += [c.get("type") for c in _children(rows, CONTAINER) if c.get("type") not in IN_CONTAINER]
    if bad:
        problems["components"] = f"Component types {bad} are not allowed there."
    everything = list(walk(rows))
    if len(everything) > MAX_COMPONENTS:
        problems["components"] = f"At most {MAX_COMPONENTS} components."
    if sum(len(c.get("content") or "") for c in everything if c["type"] == TEXT_DISPLAY) > MAX_TEXT:
        problems["components"] = f"At most {MAX_TEXT} characters of text display."
    for gallery in (c for c in everything if c["type"] == MEDIA_GALLERY):
        urls = [item["media"]["url"] for item in gallery.get("items") or []]
        if len(urls) not in GALLERY_ITEMS:
            problems["components"] = "A media gallery holds 1 to 10 items."
        missing = [u for u in urls if u.startswith("attachment://") and u[13:] not in filenames]
        if missing:
            problems["components"] = f"{missing} name no attachment of the message."
    return problems


def walk(components: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every component, nested ones too, in display order."""
    for component in components:
        yield component
        yield from walk(component.get("components") or [])


def _children(components: Sequence[Mapping[str, Any]], kind: int) -> list[Mapping[str, Any]]:
    return [child for c in components if c.get("type") == kind for child in c["components"]]


def texts(components: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(c["content"]) for c in walk(components) if c.get("type") == TEXT_DISPLAY]


def gallery(components: Sequence[Mapping[str, Any]]) -> list[str]:
    """The media URLs of every media gallery, in order."""
    found = (c for c in walk(components) if c.get("type") == MEDIA_GALLERY)
    return [item["media"]["url"] for c in found for item in c.get("items") or []]
