"""The option parser: friendly options map onto each model's parameters; bad input gets a clear
InvalidRequest and nothing else, whatever the text."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import COMMANDS
from bot.config import JobSettings
from bot.errors import InvalidRequest
from bot.requests import (
    Request,
    parse_text,
    split_options,
)
from bot.runpod.catalog import load_catalog

CATALOG = load_catalog()
DEFAULTS = JobSettings().default_models  # the model each command uses when none is named


def parse(text: str, command: str = "imagine", media: tuple[str, ...] = ()) -> object:
    return parse_text(command, text, CATALOG, default_model=DEFAULTS[command], media=media)


def test_the_documented_example_parses_to_the_model_input() -> None:
    request = parse(
        "a cat on the moon --model flux-dev --ar 16:9 --steps 28 --seed 7 --no trees --count 2"
    )
    assert isinstance(request, Request) and request.command == "imagine"
    assert request.model == "flux-dev" and request.count == 2
    assert request.input["prompt"] == "a cat on the moon"
    assert request.input["negative_prompt"] == "trees"
    assert (request.input["width"], request.input["height"]) == (1344, 768)
    assert request.input["num_inference_steps"] == 28 and request.input["seed"] == 7


def test_size_and_phone_dashes() -> None:
    request = parse("a cat \u2014size 1024x768 \u2013seed 3")
    assert isinstance(request, Request) and request.command == "imagine"
    assert (request.input["width"], request.input["height"], request.input["seed"]) == (
        1024,
        768,
        3,
    )


def test_negative_prompt_takes_several_words_until_the_next_option() -> None:
    request = parse("a forest --no people and cars --seed 1")
    assert isinstance(request, Request) and request.command == "imagine"
    assert request.input["negative_prompt"] == "people and cars" and request.input["seed"] == 1


def test_model_parameters_work_as_options_and_nested_names_resolve() -> None:
    request = parse("hello --max-tokens 40 --temperature 0.2", command="ask")
    assert (
        isinstance(request, Request)
        and request.command == "ask"
        and request.input["max_tokens"] == 40
    )
    granite = parse("hello --model granite-4 --max-tokens 40", command="ask")
    assert isinstance(granite, Request) and granite.command == "ask"
    assert granite.input["sampling_params"]["max_tokens"] == 40 and granite.prompt == "hello"


def test_video_takes_the_attachment_as_its_image() -> None:
    request = parse(
        "the fox runs --duration 10", command="video", media=("https://x.example/fox.png",)
    )
    assert isinstance(request, Request) and request.command == "video"
    assert request.input["image"] == "https://x.example/fox.png" and request.input["duration"] == 10


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a cat --foo 3", "unknown option --foo"),
        ("a cat --seed", "--seed needs a value"),
        ("a cat --seed abc", "seed must be a whole number"),
        ("a cat --count 9", "--count must be from 1 to 4"),
        ("a cat --ar 0:1", "--ar must look like 16:9"),
        ("a cat --ar 20:1", "too extreme"),
        ("a cat --size big", "--size must look like 1024x768"),
        ("a cat --model qwen3-32b", "not a model for /imagine"),
        ("a cat --model nope", "unknown model 'nope'"),
        ("a cat --seed 1 --seed 2", "--seed is given twice"),
        ("a cat --size 100x100", "width must be"),
        ("", "prompt is required"),
    ],
)
def test_bad_options_get_a_message_naming_them(text: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as bad:
        parse(text)
    assert says in bad.value.message


def test_split_options_leaves_ordinary_dashes_in_the_prompt() -> None:
    prompt, options = split_options("a well-known -- thing --seed 4")
    assert prompt == "a well-known -- thing" and options == {"seed": "4"}


words = st.sampled_from(
    ["--model", "--ar", "--size", "--seed", "--no", "--count", "--steps", "--guidance", "--x",
     "16:9", "1024x768", "-1", "7", "999999999999999999999", "flux-dev", "qwen3-32b", "\u2014ar",
     "a", "cat", "\x00", "<@123>", "@everyone", "", "0:0", "NaN", "inf", "1e309"]
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    command=st.sampled_from(sorted(COMMANDS)),
    text=st.one_of(st.text(max_size=200), st.lists(words, max_size=12).map(" ".join)),
)
def test_any_text_gives_a_request_or_a_clear_error(command: str, text: str) -> None:
    media = ("https://files.example.com/in.png",) if COMMANDS[command].takes_media else ()
    try:
        parse(text, command, media)
    except InvalidRequest as refused:
        # What the member reads: a refusal that fits one chat message (Discord's 2000 characters).
        assert refused.message.strip() and len(refused.message) <= 2000
