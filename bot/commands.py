"""The job commands, one row each: what a command runs and what its result is.

Every module that needs to know what `/edit` or a `transcription` model means reads this
table (the parser, the catalog's kinds, downloads, both platforms' menus, buttons and
renderers, the terminal), so adding a kind of model is one row here plus a renderer per
platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Output = Literal["image", "video", "audio", "text"]


@dataclass(frozen=True)
class Command:
    name: str  # the slash command, without the slash
    kinds: tuple[str, ...]  # the model kinds it runs (`Model.kind`)
    label: str  # what its models do, for menus and model lists
    takes_media: bool  # the member gives files (or links to them) as input
    variations: bool  # its result offers Variations: the same request with new seeds
    output: Output  # what a result is: a file of this type, or text

    @property
    def media_type(self) -> str:
        """The MIME type prefix its result files must have ("image/"); "" for text."""
        return "" if self.output == "text" else f"{self.output}/"


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("imagine", ("image",), "image generation", False, True, "image"),
        Command("edit", ("image_edit",), "image editing", True, True, "image"),
        Command("video", ("video",), "video generation", True, False, "video"),
        Command("transcribe", ("transcription",), "audio transcription", True, False, "text"),
        Command("ask", ("text",), "text generation", False, False, "text"),
        Command("speak", ("speech",), "text-to-speech", False, False, "audio"),
    )
}
KINDS: tuple[str, ...] = tuple(kind for c in COMMANDS.values() for kind in c.kinds)


def command_of_kind(kind: str) -> Command:
    """The command that runs models of `kind` (every kind has exactly one)."""
    for command in COMMANDS.values():
        if kind in command.kinds:
            return command
    raise KeyError(f"no command runs {kind} models")
