"""The job commands: /imagine, /edit, /video, /transcribe, /ask, /speak, and /cost for each.

Each command is a row of `JOB_COMMANDS`: its options, each with its Discord type, help and the
core's friendly name (`ar`, `steps`, `no`...), so an option several commands share is written
once, and `/cost <command>` offers exactly the same options, differing only in what runs: a job,
or an estimate. `build_request` does all validation.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

import discord
from discord import app_commands
from discord.app_commands import Choice, Range

from bot.errors import InvalidRequest

MAX_SEED = 2**31 - 1
ASPECT_RATIOS = [
    Choice(name="1:1 square", value="1:1"),
    Choice(name="16:9 landscape", value="16:9"),
    Choice(name="9:16 portrait", value="9:16"),
    Choice(name="4:3", value="4:3"),
    Choice(name="3:4", value="3:4"),
    Choice(name="3:2", value="3:2"),
    Choice(name="2:3", value="2:3"),
    Choice(name="21:9 cinema", value="21:9"),
]
TRANSCRIPT_OUTPUTS = [
    Choice(name="text", value="text"),
    Choice(name="subtitles (.srt)", value="srt"),
]
IMAGE_TYPES = ("image/",)
AUDIO_TYPES = ("audio/", "video/")  # a video's sound track transcribes too


@dataclass(frozen=True)
class Ask:
    """A job command as typed: the command, the prompt, options, input files and presentation."""

    command: str
    prompt: str
    options: Mapping[str, Any]
    media: tuple[str, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)  # kept in ChannelRef.extra

    def given(self) -> dict[str, Any]:
        return {key: value for key, value in self.options.items() if value is not None}


Runner = Callable[[discord.Interaction, Ask], Awaitable[None]]
Completer = Callable[[discord.Interaction, str], Coroutine[Any, Any, list[Choice[str]]]]
ModelCompleter = Callable[[str], Completer]
JobCommand = app_commands.Command[Any, ..., Any]


@dataclass(frozen=True)
class Option:
    """One option of a job command. `type` is what discord.py reads the option's kind, range and
    requiredness from; `core` is the core's name for it, `None` for the prompt and input files,
    which `Ask` carries apart."""

    type: Any
    help: str
    core: str | None
    choices: list[Choice[str]] | None = None
    image: bool = False  # an attached image sent along as media


@dataclass(frozen=True)
class Spec:
    """A job command: its name, description and options in the order Discord shows them."""

    name: str
    description: str
    prompt: str  # which option is the prompt ("" for none)
    options: Mapping[str, Option]
    # How the given options become an Ask, where the generic way does not fit.
    prepare: Callable[[Spec, Mapping[str, Any]], Ask] | None = None


def media_url(attachment: discord.Attachment | None, accept: tuple[str, ...], what: str) -> str:
    """The URL the endpoint downloads an attachment from; refuses the wrong kind of file."""
    if attachment is None:
        raise InvalidRequest(f"Attach {what}.")
    content_type = (attachment.content_type or "").split(";")[0]
    if content_type and not content_type.startswith(accept):
        raise InvalidRequest(f"{attachment.filename} is {content_type}; attach {what} instead.")
    return attachment.url


def ask_of(spec: Spec, given: Mapping[str, Any]) -> Ask:
    """The generic way: core options by their core names, attached images as the media."""
    options = {opt.core: given[name] for name, opt in spec.options.items() if opt.core}
    media = tuple(
        media_url(given[name], IMAGE_TYPES, "an image")
        for name, opt in spec.options.items()
        if opt.image and given[name] is not None
    )
    return Ask(spec.name, given[spec.prompt], options, media)


def transcribe_ask(spec: Spec, given: Mapping[str, Any]) -> Ask:
    """A recording as an attachment or as a link (not both); subtitles or text."""
    audio, url = given["audio"], given["url"]
    if audio is not None and url:
        raise InvalidRequest("Give the recording as an attachment or as a URL, not both.")
    if audio is not None:
        media = (media_url(audio, AUDIO_TYPES, "an audio file"),)
    elif url:
        media = (url.strip(),)
    else:
        raise InvalidRequest("Attach the recording (`audio`) or give its `url`.")
    extra = {"output": given["output"] or "text"}
    return Ask(spec.name, "", {"model": given["model"]}, media, extra)


def model(kind: str) -> Option:
    return Option(str | None, f"{kind} model (default: the server's)", "model")


def shape(of: str) -> Option:
    return Option(str | None, f"Shape of {of}", "ar", ASPECT_RATIOS)


def count(of: str) -> Option:
    return Option(Range[int, 1, 4] | None, f"How many {of} (1-4)", "count")


def image(help_: str, *, required: bool = False) -> Option:
    kind = discord.Attachment if required else discord.Attachment | None
    return Option(kind, help_, None, image=True)


def prompt(help_: str, longest: int = 4000) -> Option:
    return Option(Range[str, 1, longest], help_, None)


SEED = Option(Range[int, 0, MAX_SEED] | None, "Seed for a repeatable result", "seed")
NEGATIVE_PROMPT = Option(Range[str, 1, 2000] | None, "What to leave out", "no")
IMAGINE = Spec(
    "imagine",
    "Generate images from a prompt",
    "prompt",
    {
        "prompt": prompt("What to draw"),
        "model": model("Image"),
        "aspect_ratio": shape("the image"),
        "size": Option(
            str | None, "Exact size, e.g. 1024x768 (instead of an aspect ratio)", "size"
        ),
        "steps": Option(
            Range[int, 1, 150] | None, "Inference steps: more is slower and often finer", "steps"
        ),
        "guidance": Option(
            Range[float, 0.0, 30.0] | None, "How closely to follow the prompt", "guidance"
        ),
        "seed": SEED,
        "negative_prompt": NEGATIVE_PROMPT,
        "count": count("images"),
    },
)
EDIT = Spec(
    "edit",
    "Edit an image with instructions",
    "prompt",
    {
        "prompt": prompt("What to change"),
        "image": image("The image to edit", required=True),
        "model": model("Image editing"),
        "image2": image("A second image, for models that combine images"),
        "aspect_ratio": shape("the result, where the model offers it"),
        "seed": SEED,
        "count": count("results"),
    },
)
VIDEO = Spec(
    "video",
    "Generate a video from a prompt (and an image)",
    "prompt",
    {
        "prompt": prompt("What happens in the video"),
        "model": model("Video"),
        "image": image("Starting image, for image-to-video models"),
        "duration": Option(
            Range[int, 1, 60] | None,
            "Length in seconds, where the model offers a choice",
            "duration",
        ),
        "aspect_ratio": shape("the video, where the model offers it"),
        "seed": SEED,
        "negative_prompt": NEGATIVE_PROMPT,
    },
)
TRANSCRIBE = Spec(
    "transcribe",
    "Turn speech into text",
    "",
    {
        "audio": Option(discord.Attachment | None, "The recording (audio or video file)", None),
        "url": Option(str | None, "Or a link to the recording", None),
        "model": model("Transcription"),
        "output": Option(
            str | None, "Plain text, or subtitles with timestamps", None, TRANSCRIPT_OUTPUTS
        ),
    },
    transcribe_ask,
)
ASK = Spec(
    "ask",
    "Ask a text model",
    "prompt",
    {
        "prompt": prompt("Your question or instructions", 6000),
        "model": model("Text"),
        "max_tokens": Option(Range[int, 1, 32768] | None, "Longest reply, in tokens", "max_tokens"),
    },
)
SPEAK = Spec(
    "speak",
    "Read text aloud with a speech model",
    "text",
    {
        "text": prompt("What to say"),
        "model": model("Speech"),
        "voice": Option(
            Range[str, 1, 200] | None, "Voice name, where the model offers voices", "voice"
        ),
    },
)
JOB_COMMANDS = (IMAGINE, EDIT, VIDEO, TRANSCRIBE, ASK, SPEAK)


def job_command(spec: Spec, run: Runner, models: ModelCompleter) -> JobCommand:
    """The discord.py command for `spec`: its signature is made from the options, so discord.py
    registers and parses them as if they had been written out as parameters."""
    prepare = spec.prepare or ask_of

    async def command(interaction: discord.Interaction, **given: Any) -> None:
        await run(interaction, prepare(spec, given))

    first = inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [first, *(_parameter(name, opt) for name, opt in spec.options.items())]
    )
    described = app_commands.describe(**{name: opt.help for name, opt in spec.options.items()})
    choices = {name: opt.choices for name, opt in spec.options.items() if opt.choices}
    callback = app_commands.autocomplete(model=models(spec.name))(
        app_commands.choices(**choices)(described(command))
    )
    return app_commands.command(name=spec.name, description=spec.description)(callback)


def _parameter(name: str, option: Option) -> inspect.Parameter:
    optional = type(None) in get_args(option.type)
    return inspect.Parameter(
        name,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        annotation=option.type,
        default=None if optional else inspect.Parameter.empty,
    )


def job_commands(run: Runner, models: ModelCompleter) -> list[JobCommand]:
    return [job_command(spec, run, models) for spec in JOB_COMMANDS]


def cost_group(run: Runner, models: ModelCompleter) -> app_commands.Group:
    """`/cost <command> ...`: the same options as the command, an estimate instead of a job."""
    group = app_commands.Group(name="cost", description="What a command would cost (runs nothing)")
    for command in job_commands(run, models):
        group.add_command(command)
    return group
