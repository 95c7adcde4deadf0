"""The job commands: /imagine, /edit, /video, /transcribe, /ask, /speak, and /cost for each.

Each command is built by a factory so `/cost <command>` offers exactly the same options and
differs only in what runs: a job, or an estimate. Options become the core's friendly option
names (`ar`, `steps`, `no`...) and `build_request` does all validation.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

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
# What the options several commands share are described as, once.
SHARED_HELP = {
    "seed": "Seed for a repeatable result",
    "negative_prompt": "What to leave out",
}
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
Prompt = Range[str, 1, 4000]
Seed = Range[int, 0, MAX_SEED]
Count = Range[int, 1, 4]
NegativePrompt = Range[str, 1, 2000]


def media_url(attachment: discord.Attachment | None, accept: tuple[str, ...], what: str) -> str:
    """The URL the endpoint downloads an attachment from; refuses the wrong kind of file."""
    if attachment is None:
        raise InvalidRequest(f"Attach {what}.")
    content_type = (attachment.content_type or "").split(";")[0]
    if content_type and not content_type.startswith(accept):
        raise InvalidRequest(f"{attachment.filename} is {content_type}; attach {what} instead.")
    return attachment.url


def job_commands(run: Runner, models: ModelCompleter) -> list[JobCommand]:
    return [
        imagine(run, models),
        edit(run, models),
        video(run, models),
        transcribe(run, models),
        ask(run, models),
        speak(run, models),
    ]


def cost_group(run: Runner, models: ModelCompleter) -> app_commands.Group:
    """`/cost <command> ...`: the same options as the command, an estimate instead of a job."""
    group = app_commands.Group(name="cost", description="What a command would cost (runs nothing)")
    for command in job_commands(run, models):
        group.add_command(command)
    return group


def job_command(
    name: str, description: str, models: ModelCompleter, *, model: str, **described: str
) -> Callable[[Callable[..., Coroutine[Any, Any, None]]], JobCommand]:
    """What every job command declares alike: the model menu, `model`'s and the shared help."""

    def make(callback: Callable[..., Coroutine[Any, Any, None]]) -> JobCommand:
        params = inspect.signature(callback).parameters
        shared = {key: text for key, text in SHARED_HELP.items() if key in params}
        help_ = {**described, "model": f"{model} (default: the server's)", **shared}
        callback = app_commands.describe(**help_)(callback)
        if "aspect_ratio" in params:
            callback = app_commands.choices(aspect_ratio=ASPECT_RATIOS)(callback)
        callback = app_commands.autocomplete(model=models(name))(callback)
        return app_commands.command(name=name, description=description)(callback)

    return make


def imagine(run: Runner, models: ModelCompleter) -> JobCommand:
    @job_command(
        "imagine",
        "Generate images from a prompt",
        models,
        model="Image model",
        prompt="What to draw",
        aspect_ratio="Shape of the image",
        size="Exact size, e.g. 1024x768 (instead of an aspect ratio)",
        steps="Inference steps: more is slower and often finer",
        guidance="How closely to follow the prompt",
        count="How many images (1-4)",
    )
    async def command(
        interaction: discord.Interaction,
        prompt: Prompt,
        model: str | None = None,
        aspect_ratio: str | None = None,
        size: str | None = None,
        steps: Range[int, 1, 150] | None = None,
        guidance: Range[float, 0.0, 30.0] | None = None,
        seed: Seed | None = None,
        negative_prompt: NegativePrompt | None = None,
        count: Count | None = None,
    ) -> None:
        options = {
            "model": model,
            "ar": aspect_ratio,
            "size": size,
            "steps": steps,
            "guidance": guidance,
            "seed": seed,
            "no": negative_prompt,
            "count": count,
        }
        await run(interaction, Ask("imagine", prompt, options))

    return command


def edit(run: Runner, models: ModelCompleter) -> JobCommand:
    @job_command(
        "edit",
        "Edit an image with instructions",
        models,
        model="Image editing model",
        prompt="What to change",
        image="The image to edit",
        image2="A second image, for models that combine images",
        aspect_ratio="Shape of the result, where the model offers it",
        count="How many results (1-4)",
    )
    async def command(
        interaction: discord.Interaction,
        prompt: Prompt,
        image: discord.Attachment,
        model: str | None = None,
        image2: discord.Attachment | None = None,
        aspect_ratio: str | None = None,
        seed: Seed | None = None,
        count: Count | None = None,
    ) -> None:
        media = [media_url(image, IMAGE_TYPES, "an image")]
        if image2 is not None:
            media.append(media_url(image2, IMAGE_TYPES, "an image"))
        options = {"model": model, "ar": aspect_ratio, "seed": seed, "count": count}
        await run(interaction, Ask("edit", prompt, options, tuple(media)))

    return command


def video(run: Runner, models: ModelCompleter) -> JobCommand:
    @job_command(
        "video",
        "Generate a video from a prompt (and an image)",
        models,
        model="Video model",
        prompt="What happens in the video",
        image="Starting image, for image-to-video models",
        duration="Length in seconds, where the model offers a choice",
        aspect_ratio="Shape of the video, where the model offers it",
    )
    async def command(
        interaction: discord.Interaction,
        prompt: Prompt,
        model: str | None = None,
        image: discord.Attachment | None = None,
        duration: Range[int, 1, 60] | None = None,
        aspect_ratio: str | None = None,
        seed: Seed | None = None,
        negative_prompt: NegativePrompt | None = None,
    ) -> None:
        media = (media_url(image, IMAGE_TYPES, "an image"),) if image is not None else ()
        options = {
            "model": model,
            "duration": duration,
            "ar": aspect_ratio,
            "seed": seed,
            "no": negative_prompt,
        }
        await run(interaction, Ask("video", prompt, options, media))

    return command


def transcribe(run: Runner, models: ModelCompleter) -> JobCommand:
    @job_command(
        "transcribe",
        "Turn speech into text",
        models,
        model="Transcription model",
        audio="The recording (audio or video file)",
        url="Or a link to the recording",
        output="Plain text, or subtitles with timestamps",
    )
    @app_commands.choices(output=TRANSCRIPT_OUTPUTS)
    async def command(
        interaction: discord.Interaction,
        audio: discord.Attachment | None = None,
        url: str | None = None,
        model: str | None = None,
        output: str | None = None,
    ) -> None:
        if audio is not None and url:
            raise InvalidRequest("Give the recording as an attachment or as a URL, not both.")
        if audio is not None:
            media = (media_url(audio, AUDIO_TYPES, "an audio file"),)
        elif url:
            media = (url.strip(),)
        else:
            raise InvalidRequest("Attach the recording (`audio`) or give its `url`.")
        extra = {"output": output or "text"}
        await run(interaction, Ask("transcribe", "", {"model": model}, media, extra))

    return command


def ask(run: Runner, models: ModelCompleter) -> JobCommand:
    @job_command(
        "ask",
        "Ask a text model",
        models,
        model="Text model",
        prompt="Your question or instructions",
        max_tokens="Longest reply, in tokens",
    )
    async def command(
        interaction: discord.Interaction,
        prompt: Range[str, 1, 6000],
        model: str | None = None,
        max_tokens: Range[int, 1, 32768] | None = None,
    ) -> None:
        options = {"model": model, "max_tokens": max_tokens}
        await run(interaction, Ask("ask", prompt, options))

    return command


def speak(run: Runner, models: ModelCompleter) -> JobCommand:
    @job_command(
        "speak",
        "Read text aloud with a speech model",
        models,
        model="Speech model",
        text="What to say",
        voice="Voice name, where the model offers voices",
    )
    async def command(
        interaction: discord.Interaction,
        text: Prompt,
        model: str | None = None,
        voice: Range[str, 1, 200] | None = None,
    ) -> None:
        await run(interaction, Ask("speak", text, {"model": model, "voice": voice}))

    return command
