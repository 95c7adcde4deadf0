"""Platform-neutral requests, and the one option parser both platforms share.

Discord hands us typed options; Slack and mentions hand us text like
`a cat on the moon --model flux-dev --ar 16:9 --seed 7 --no trees --count 2`. Both end in
`build_request`, which resolves the model, maps friendly options (`--ar`, `--size`, `--steps`)
onto the model's own parameters and validates them, so what reaches the job engine is exactly
what will be sent. Every problem is an `InvalidRequest` that names the option and shows the form.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bot.commands import COMMANDS
from bot.errors import InvalidRequest, clip, shown
from bot.runpod.catalog import Catalog, Model

MAX_COUNT = 4
MAX_PROMPT_CHARS = 10_000
# Dashes that phones and chat clients substitute for "--" as people type.
_DASHES = re.compile(r"(?<!\S)(?:\u2014|\u2013|\u2012|\u2015|\u2212)(?=[A-Za-z])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Unicode categories that show nothing: controls, format characters (zero-width, BOM, soft
# hyphen...) and separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})

# Friendly option -> what it means. Options naming a model parameter directly also work.
OPTION_HELP: dict[str, str] = {
    "--model NAME": "which model (see /models)",
    "--ar W:H": "aspect ratio, e.g. 16:9",
    "--size WxH": "exact size, e.g. 1024x768",
    "--steps N": "inference steps",
    "--guidance X": "prompt guidance",
    "--seed N": "seed for a repeatable result",
    "--no TEXT": "what to leave out (negative prompt)",
    "--count N": f"how many to make, 1-{MAX_COUNT}",
    "--duration S": "video length in seconds",
    "--max-tokens N": "longest reply, in tokens",
}
_ALIASES: dict[str, str] = {
    "m": "model",
    "aspect": "ar",
    "aspect-ratio": "ar",
    "n": "count",
    "negative": "no",
    "neg": "no",
    "steps": "num_inference_steps",
    "cfg": "guidance",
    "max-tokens": "max_tokens",
    "tokens": "max_tokens",
}
_MULTIWORD = {"no", "negative_prompt", "stop"}


@dataclass(frozen=True)
class Request:
    """What to run: the command asked, the model, the exact input to send, and how many copies."""

    command: str  # a key of `bot.commands.COMMANDS`
    model: str
    input: Mapping[str, Any]
    count: int = 1
    media: tuple[str, ...] = field(default=())

    @property
    def prompt(self) -> str:
        return prompt_of(self.input)

    @property
    def seed(self) -> int | None:
        seed = self.input.get("seed")
        return int(seed) if isinstance(seed, int) and seed >= 0 else None

    def with_input(self, **changes: Any) -> Request:
        return replace(self, input={**self.input, **changes})


def prompt_of(input: Mapping[str, Any]) -> str:
    """The user's text in a model input: `prompt`, or the last chat message of `messages`."""
    messages = input.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[-1], Mapping):
        return str(messages[-1].get("content", ""))
    return str(input.get("prompt", ""))


def parse_text(
    command: str,
    text: str,
    catalog: Catalog,
    *,
    default_model: str,
    media: Sequence[str] = (),
) -> Request:
    """`a cat --ar 16:9 --seed 7` -> a validated request, or InvalidRequest. Never anything else."""
    prompt, options = split_options(text)
    return build_request(
        command, catalog, prompt=prompt, options=options, default_model=default_model, media=media
    )


def split_options(text: str) -> tuple[str, dict[str, str]]:
    """Separate the prompt from `--name value` options (values of `--no` may be several words)."""
    text = _CONTROL.sub(" ", _DASHES.sub("--", text))
    words = text.split()
    prompt: list[str] = []
    options: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if not (word.startswith("--") and len(word) > 2 and word[2].isalpha()):
            prompt.append(word)
            i += 1
            continue
        name = word[2:].lower()
        name = _ALIASES.get(name, name)
        if name in options:
            raise InvalidRequest(f"--{clip(name)} is given twice; give it once")
        i += 1
        value: list[str] = []
        while i < len(words) and not _is_option(words[i]):
            value.append(words[i])
            i += 1
            if name not in _MULTIWORD:
                break
        if not value:
            raise InvalidRequest(f"--{clip(name)} needs a value, e.g. {_example(name)}")
        options[name] = " ".join(value)
    return " ".join(prompt), options


def _is_option(word: str) -> bool:
    return word.startswith("--") and len(word) > 2 and word[2].isalpha()


def build_request(
    command: str,
    catalog: Catalog,
    *,
    prompt: str,
    options: Mapping[str, Any],
    default_model: str,
    media: Sequence[str] = (),
) -> Request:
    """Typed options (Discord) or parsed ones (text) -> a validated request."""
    if command not in COMMANDS:
        raise InvalidRequest(f"unknown command {shown(command)}; commands: {', '.join(COMMANDS)}")
    kinds = COMMANDS[command].kinds
    options = {_ALIASES.get(k, k).replace("-", "_"): v for k, v in options.items()}
    model = catalog.get(str(options.pop("model", None) or default_model))
    if model.kind not in kinds:
        choices = ", ".join(m.id for m in catalog.of_kind(*kinds))
        raise InvalidRequest(f"{model.id} is not a model for /{command}; use one of: {choices}")
    count = _count(options.pop("count", 1))
    params = _model_params(model, prompt, options, media)
    checked = model.validate_params(params)
    _check_seed_room(model, checked, count)
    return Request(command, model.id, checked, count, tuple(media))


def _count(value: Any) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a typed float('inf')
        raise InvalidRequest(f"--count must be a whole number from 1 to {MAX_COUNT}") from None
    if not 1 <= count <= MAX_COUNT:
        raise InvalidRequest(f"--count must be from 1 to {MAX_COUNT} (got {count})")
    return count


def _check_seed_room(model: Model, input: Mapping[str, Any], count: int) -> None:
    """Copies take seeds seed, seed+1...: the last must be in range too, never wrap around."""
    spec, seed = model.seed_param, input.get("seed")
    if spec is None or spec.max is None or type(seed) is not int or seed < 0:
        return
    last = seed + count - 1
    if last > spec.max:
        raise InvalidRequest(
            f"--count {count} needs seeds {seed} to {last}, but seed must be {spec.allowed()};"
            f" use a seed of at most {int(spec.max) - count + 1}"
        )


def _clean_prompt(text: str) -> str:
    """Control characters become spaces; a prompt with nothing visible is no prompt at all."""
    text = _CONTROL.sub(" ", text).strip()
    return text if any(unicodedata.category(c) not in _INVISIBLE for c in text) else ""


def _model_params(
    model: Model, prompt: str, options: dict[str, Any], media: Sequence[str]
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    prompt = _clean_prompt(prompt)
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidRequest(
            f"the prompt is {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}"
        )
    if prompt:
        if model.prompt_param is None:
            raise InvalidRequest(f"{model.name} takes no prompt")
        params[model.prompt_param] = prompt
    if "ar" in options:
        params.update(_aspect_ratio(model, str(options.pop("ar"))))
    if "size" in options:
        size = str(options.pop("size"))
        tier = "size" in model.params and not _is_wxh(size)  # e.g. "720p"
        params.update({"size": size} if tier else _size(model, size))
    if "no" in options:
        params["negative_prompt"] = options.pop("no")
    params.update(_media_params(model, media))
    for option, value in options.items():
        name = _param_name(model, option)
        if name is None:
            raise InvalidRequest(
                f"unknown option --{clip(option)} for {model.id}. Options: "
                + ", ".join(OPTION_HELP)
                + f"; or any {model.id} parameter: "
                + ", ".join(f"--{p.rsplit('.', 1)[-1]}" for p in model.params if p != "prompt")
            )
        params[name] = _typed(value, model.params[name].type)
    return params


def _param_name(model: Model, option: str) -> str | None:
    """`max_tokens` names `max_tokens`, or a nested `sampling_params.max_tokens`."""
    if option in model.params:
        return option
    nested = [name for name in model.params if name.rsplit(".", 1)[-1] == option]
    return nested[0] if len(nested) == 1 else None


def _media_params(model: Model, media: Sequence[str]) -> dict[str, Any]:
    inputs = model.media_inputs
    if not media:
        return {}
    if not inputs:
        raise InvalidRequest(
            f"{model.name} takes no file; remove the attachment or pick another model"
        )
    name = inputs[0]
    if model.params[name].type == "url_list":
        return {name: list(media)}
    if len(media) > 1:
        raise InvalidRequest(f"{model.name} takes one file; {len(media)} were given")
    return {name: media[0]}


def _typed(value: Any, kind: str) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return text  # validation names the parameter and what it allows
    if kind == "boolean" and text.lower() in ("true", "false", "yes", "no", "on", "off"):
        return text.lower() in ("true", "yes", "on")
    return text


def _ratio(text: str) -> float:
    match = re.fullmatch(r"\s*(\d{1,4})\s*[:/x]\s*(\d{1,4})\s*", text)
    if not match or int(match[1]) == 0 or int(match[2]) == 0:
        raise InvalidRequest(f"--ar must look like 16:9 (got {shown(text)})")
    ratio = int(match[1]) / int(match[2])
    if not 0.2 <= ratio <= 5:
        raise InvalidRequest(f"--ar {text} is too extreme; use a ratio between 1:5 and 5:1")
    return ratio


def _aspect_ratio(model: Model, text: str) -> dict[str, Any]:
    ratio = _ratio(text)
    if "aspect_ratio" in model.params:
        return {"aspect_ratio": text.strip().replace("/", ":").replace("x", ":")}
    if "width" in model.params and "height" in model.params:
        spec = model.params["width"]
        step = spec.multiple_of or 64
        low, high = int(spec.min or 256), int(spec.max or 1536)
        area = 1024 * 1024
        width = _snap(math.sqrt(area * ratio), step, low, high)
        height = _snap(math.sqrt(area / ratio), step, low, high)
        return {"width": width, "height": height}
    if "size" in model.params and model.params["size"].choices:
        best = min(model.params["size"].choices, key=lambda c: abs(_size_ratio(str(c)) - ratio))
        return {"size": best}
    raise InvalidRequest(f"{model.name} has no aspect ratio setting; remove --ar")


def _snap(value: float, step: int, low: int, high: int) -> int:
    return int(min(high, max(low, round(value / step) * step)))


def _size_ratio(choice: str) -> float:
    match = re.fullmatch(r"(\d+)[*x](\d+)", choice)
    return int(match[1]) / int(match[2]) if match else float("inf")


def _is_wxh(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"\s*\d+\s*[x*X]\s*\d+\s*", value) is not None


def _size(model: Model, text: str) -> dict[str, Any]:
    match = re.fullmatch(r"\s*(\d{1,5})\s*[x*X]\s*(\d{1,5})\s*", text)
    if not match:
        raise InvalidRequest(f"--size must look like 1024x768 (got {shown(text)})")
    width, height = int(match[1]), int(match[2])
    if "width" in model.params and "height" in model.params:
        return {"width": width, "height": height}
    if "size" in model.params:
        return {"size": f"{width}*{height}"}
    raise InvalidRequest(f"{model.name} has no size setting; remove --size")


def _example(name: str) -> str:
    for form in OPTION_HELP:
        if form.split()[0] == f"--{name}":
            return form
    return f"--{clip(name)} VALUE"
