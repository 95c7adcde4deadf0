"""The shipped catalog: every model loads, every bad parameter is refused by name, overrides work.

Most cases are generated from the catalog itself, so a model added to `bot/runpod/models.toml` is covered
the moment it is added; a few are written out by hand to pin the exact wording a user sees.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.commands import KINDS
from bot.errors import ConfigError, InvalidRequest
from bot.runpod import pricing
from bot.runpod.catalog import Model, ParamSpec, load_catalog

CATALOG = load_catalog()
MODELS = list(CATALOG)
URL = "https://example.com/input.png"

# One id per page of runpod-docs/public-endpoints/models/ (Whisper keeps its seed id).
PAGE_IDS = {
    "chatterbox-turbo", "cogito-671b", "flux-dev", "flux-kontext-dev", "flux-schnell",
    "gpt-oss-120b", "granite-4", "infinitetalk", "kling-v2-1", "kling-v2-6-motion-control",
    "kling-video-o1-r2v", "minimax-speech", "moonshot-kimi", "nano-banana-2-edit",
    "nano-banana-edit", "nano-banana-pro-edit", "p-image-edit", "p-image-t2i", "p-video",
    "qwen-image-edit-2511-lora", "qwen-image-edit-2511", "qwen-image-edit", "qwen-image-lora",
    "qwen-image", "qwen3-32b", "seedance-1-5-pro", "seedream-4-edit", "seedream-4-t2i",
    "sora-2-pro", "sora-2", "vidu-q3-i2v", "vidu-q3-t2v", "wan-2-1-i2v", "wan-2-2-i2v-lora",
    "wan-2-2-i2v", "wan-2-5", "wan-2-6-i2v", "wan-2-6-t2i", "wan-2-6-t2v", "whisper-v3-large",
    "z-image-turbo",
}  # fmt: skip
OUTPUT_FIELDS = {
    "image": "image_url",
    "image_edit": "image_url",
    "video": "video_url",
    "speech": "audio_url",
    "text": "choices",
    "transcription": "transcription",
}


def valid_value(spec: ParamSpec) -> Any:
    """A value the spec accepts."""
    if spec.choices is not None:
        return spec.choices[0]
    if spec.type == "url":
        return URL
    if spec.type == "url_list":
        return [URL] * max(1, spec.min_length or 0)
    if spec.type == "messages":
        return [{"role": "user", "content": "hello"}]
    if spec.type == "object_list":
        return [{name: valid_value(item) for name, item in (spec.items or {}).items()}]
    if spec.type in ("integer", "number"):
        return spec.default if spec.default is not None else int(spec.min or 0)
    if spec.type == "boolean":
        return True
    return "a lighthouse at dusk"


def valid_params(model: Model) -> dict[str, Any]:
    """The smallest valid request: every required parameter, nothing else."""
    return {name: valid_value(spec) for name, spec in model.params.items() if spec.required}


def invalid_values(spec: ParamSpec) -> Iterator[tuple[str, Any]]:
    """(what is wrong, value) for each limit the spec sets, and one value of the wrong type."""
    if spec.choices is not None:
        if all(isinstance(choice, int) for choice in spec.choices):
            yield "not a choice", max(spec.choices) + 1
        else:
            yield "not a choice", "not-an-option"
    if spec.min is not None:
        yield "below min", spec.min - 1
    if spec.max is not None:
        yield "above max", spec.max + 1
    if spec.multiple_of:
        yield "not a multiple", int(spec.min or 0) + spec.multiple_of + 1
    if spec.max_length is not None and spec.type == "url_list":
        yield "too many", [URL] * (spec.max_length + 1)
    elif spec.max_length is not None:
        yield "too long", "x" * (spec.max_length + 1)
    if spec.min_length:
        yield "too short", [URL] * (spec.min_length - 1)
    yield (
        "wrong type",
        {
            "string": 12345,
            "integer": "many",
            "number": "lots",
            "boolean": "maybe",
            "url": "not a url",
            "url_list": ["ftp://not-http.example.com/x"],
            "messages": 42,
            "object_list": "not objects",
        }[spec.type],
    )


def _cases() -> Iterator[Any]:
    for model in MODELS:
        for name, spec in model.params.items():
            for problem, value in invalid_values(spec):
                yield pytest.param(model, name, value, id=f"{model.id}-{name}-{problem}")


def _required() -> Iterator[Any]:
    for model in MODELS:
        for name, spec in model.params.items():
            if spec.required:
                yield pytest.param(model, name, id=f"{model.id}-{name}")


# --- every model loads and is complete --------------------------------------------------------


def test_every_model_page_is_in_the_catalog() -> None:
    assert {model.id for model in MODELS} == PAGE_IDS
    assert len(CATALOG) == 41


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.id)
def test_model_is_complete_and_prices_its_smallest_request(model: Model) -> None:
    assert model.kind in KINDS
    assert model.output == OUTPUT_FIELDS[model.kind]
    assert model.endpoint and model.name and model.description and model.aliases
    assert model.nsfw is False  # no page says a model is adult-capable
    checked = model.validate_params(valid_params(model))
    assert model.validate_params(checked) == checked  # a checked input checks again unchanged
    assert pricing.estimate(model, checked) > 0
    assert pricing.describe_price(model).endswith(pricing.UNIT_LABELS[model.price.unit])


@pytest.mark.parametrize("model", [m for m in MODELS if m.price.by], ids=lambda m: m.id)
def test_price_tables_cover_every_allowed_combination(model: Model) -> None:
    """Every value the schema allows for a `by` parameter has a price: no request is unpriceable."""
    rule = model.price
    assert all(len(key.split(",")) == len(rule.by) for key in [*rule.table, *rule.input_table])
    options = [_options(model.params[name]) for name in rule.by]
    for combo in itertools.product(*options):
        params = {**valid_params(model), **dict(zip(rule.by, combo, strict=True))}
        assert pricing.estimate(model, model.validate_params(params)) > 0


def _options(spec: ParamSpec) -> list[Any]:
    if spec.type == "boolean":
        return [False, True]
    assert spec.choices is not None, "a price that depends on a parameter needs its choices"
    return spec.choices


def test_text_models_name_their_openai_route() -> None:
    routes = {model.id: model.openai_model for model in CATALOG.of_kind("text")}
    assert routes == {
        "qwen3-32b": "Qwen/Qwen3-32B-AWQ",
        "cogito-671b": "cogito-671b-v2-1-fp8-dynamic",
        "gpt-oss-120b": "gpt-oss-120b",
        "moonshot-kimi": "kimi-k2.6",
        "granite-4": None,  # its page documents no OpenAI-compatible route
    }


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "name"), list(_required()))
def test_missing_required_parameter_is_named(model: Model, name: str) -> None:
    params = valid_params(model)
    del params[name]
    with pytest.raises(InvalidRequest, match=f"{name} is required"):
        model.validate_params(params)


@pytest.mark.parametrize(("model", "name", "value"), list(_cases()))
def test_invalid_value_names_the_parameter_and_what_it_allows(
    model: Model, name: str, value: Any
) -> None:
    params = {**valid_params(model), name: value}
    with pytest.raises(InvalidRequest) as caught:
        model.validate_params(params)
    assert f"{name} must be {model.params[name].allowed()}" in caught.value.message


@pytest.mark.parametrize(
    ("model_id", "params", "message"),
    [
        (
            "flux-dev",
            {"prompt": "x", "width": 500},
            "Flux Dev: width must be a whole number, from 256 to 1536, a multiple of 64 (got 500)",
        ),
        ("flux-schnell", {"prompt": "x", "num_inference_steps": 9}, "from 1 to 8 (got 9)"),
        ("sora-2", {"prompt": "x", "image": URL, "duration": 5}, "duration must be one of 4, 8, 12"),
        ("wan-2-5", {"prompt": "x", "image": URL, "size": "1024*1024"}, "size must be one of 832*480"),
        ("qwen3-32b", {"prompt": "x", "temperature": 1.5}, "temperature must be a number, from 0 to 1"),
        ("p-image-edit", {"prompt": "x", "images": []}, "images must be a list of http(s) URLs, 1 to 5 items"),
        ("nano-banana-edit", {"prompt": "x", "images": [URL] * 5}, "up to 4 items"),
        ("p-video", {"prompt": "x", "fps": 30}, "fps must be one of 24, 48 (got 30)"),
        ("wan-2-5", {"prompt": "x", "image": "file:///etc/passwd"}, "image must be an http(s) URL"),
        ("granite-4", {"messages": "hi", "sampling_params.top_p": 2}, "sampling_params.top_p must be a number, from 0 to 1"),
        ("moonshot-kimi", {"messages": "hi", "model": "kimi-k9"}, "model must be one of kimi-k2.6, kimi-k2.7-code, kimi-k3"),
        ("moonshot-kimi", {"messages": [{"role": "robot", "content": "hi"}]}, "role (one of system, user, assistant)"),
        ("qwen-image-lora", {"prompt": "x", "loras": [{"path": "a.safetensors"}]}, "loras must be a list of objects with path (text, up to 2000 characters), scale (a number)"),
        ("kling-v2-6-motion-control", {"image": URL, "video": URL}, "character_orientation is required"),
    ],
)  # fmt: skip
def test_hand_written_rejections(model_id: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        CATALOG.get(model_id).validate_params(params)
    assert message in caught.value.message


def test_unknown_parameter_is_named_with_what_the_model_takes() -> None:
    with pytest.raises(InvalidRequest) as caught:
        CATALOG.get("flux-dev").validate_params({"prompt": "x", "aspect": "16:9"})
    assert "flux-dev has no parameter 'aspect'" in caught.value.message
    assert "width, height" in caught.value.message


def test_defaults_are_filled_in() -> None:
    checked = CATALOG.get("flux-schnell").validate_params({"prompt": "a cat"})
    assert checked == {
        "prompt": "a cat",
        "width": 1024,
        "height": 1024,
        "num_inference_steps": 4,
        "guidance": 7.5,
        "seed": -1,
        "image_format": "jpeg",
    }


def test_dotted_parameters_are_sent_nested_and_text_becomes_a_user_message() -> None:
    granite = CATALOG.get("granite")
    assert granite.prompt_param == "messages"
    checked = granite.validate_params({"messages": "What is Runpod?", "sampling_params.seed": 7})
    assert checked == {
        "messages": [{"role": "user", "content": "What is Runpod?"}],
        "sampling_params": {"max_tokens": 512, "temperature": 0.7, "seed": 7, "top_k": -1, "top_p": 1.0},
    }  # fmt: skip
    nested = {"messages": "hi", "sampling_params": {"max_tokens": 9}}
    assert granite.validate_params(nested)["sampling_params"]["max_tokens"] == 9


def test_url_lists_and_object_lists_pass_through() -> None:
    lora = {"path": "https://example.com/style.safetensors", "scale": 0.8}
    checked = CATALOG.get("qwen-image-edit-2511-lora").validate_params(
        {"prompt": "x", "images": [URL, URL], "loras": [lora]}
    )
    assert checked["images"] == [URL, URL]
    assert checked["loras"] == [lora]


# --- names ------------------------------------------------------------------------------------


def test_every_name_finds_exactly_one_model() -> None:
    owner: dict[str, str] = {}
    for model in MODELS:
        for name in {model.id, model.endpoint, *model.aliases}:
            assert owner.setdefault(name.lower(), model.id) == model.id, (
                f"{name!r} names both {owner[name.lower()]} and {model.id}"
            )
    for name, model_id in owner.items():
        assert CATALOG.get(name).id == model_id


@pytest.mark.parametrize(
    ("name", "model_id"),
    [
        ("flux", "flux-dev"),
        ("schnell", "flux-schnell"),
        ("whisper", "whisper-v3-large"),
        ("qwen3-32b-awq", "qwen3-32b"),
        ("wan", "wan-2-5"),
        ("kimi", "moonshot-kimi"),
        ("sora", "sora-2"),
        ("sora-pro", "sora-2-pro"),
        ("black-forest-labs-flux-1-kontext-dev", "flux-kontext-dev"),
        (" Nano-Banana-Pro ", "nano-banana-pro-edit"),
    ],
)
def test_models_are_found_by_alias_or_endpoint(name: str, model_id: str) -> None:
    assert CATALOG.get(name).id == model_id


def test_unknown_model_lists_the_ids() -> None:
    with pytest.raises(InvalidRequest, match="unknown model 'dall-e'; try one of: chatterbox"):
        CATALOG.get("dall-e")


# --- operator overrides -----------------------------------------------------------------------


def test_override_changes_endpoint_and_price() -> None:
    catalog = load_catalog(
        {"flux-dev": {"endpoint": "my-flux", "price": {"unit": "image", "usd": "0.01"}}}
    )
    model = catalog.get("my-flux")
    assert model.id == "flux-dev"
    assert model.params == CATALOG.get("flux-dev").params
    assert pricing.estimate(model, model.validate_params({"prompt": "x"})) == Decimal("0.01")
    assert pricing.describe_price(model) == "$0.01 per image"


def test_override_adds_a_parameter_and_keeps_the_others() -> None:
    catalog = load_catalog({"flux-dev": {"params": {"lora": {"type": "string"}}}})
    assert set(catalog.get("flux-dev").params) == {*CATALOG.get("flux-dev").params, "lora"}


def test_new_model_from_config() -> None:
    catalog = load_catalog(
        {
            "my-whisper": {
                "name": "Our Whisper",
                "endpoint": "abc123xyz",
                "kind": "transcription",
                "output": "transcription",
                "price": {"unit": "1k_characters", "usd": "0.04"},
                "params": {"audio": {"type": "url", "required": True}},
            }
        }
    )
    model = catalog.get("abc123xyz")
    assert (model.id, len(catalog)) == ("my-whisper", len(CATALOG) + 1)
    assert model.validate_params({"audio": URL}) == {"audio": URL}


@pytest.mark.parametrize(
    "override",
    [
        {"flux-dev": {"price": {"unit": "per-banana", "usd": "1"}}},
        {"flux-dev": {"kind": "hologram"}},
        {"flux-dev": {"price": {"unit": "video", "table": {"5": "1"}}}},
        {"flux-dev": {"params": {"width": {"type": "integer", "minimum": 1}}}},
        {"flux-dev": {"colour": "blue"}},
        {"flux-dev": {"params": {"loras": {"type": "object_list"}}}},
    ],
)
def test_invalid_override_raises_config_error_naming_the_model(override: Any) -> None:
    with pytest.raises(ConfigError, match=r"models\.flux-dev"):
        load_catalog(override)


def test_incomplete_new_model_raises_config_error() -> None:
    with pytest.raises(ConfigError, match=r"models\.half-done"):
        load_catalog({"half-done": {"endpoint": "xyz"}})


# --- the command line -------------------------------------------------------------------------


def _bot(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "RUNPOD_"))}
    env["BOT_CONFIG"] = str(tmp_path / "absent.toml")
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_models_lists_every_model_with_its_price_unit(tmp_path: Path) -> None:
    result = _bot(tmp_path, "models")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert set(lines) == PAGE_IDS
    for model in MODELS:
        assert pricing.describe_price(model) in lines[model.id]
        assert pricing.UNIT_LABELS[model.price.unit] in lines[model.id]


def test_cli_cost_prints_the_seed_figure(tmp_path: Path) -> None:
    result = _bot(tmp_path, "cost", "flux-dev", "width=512", "height=512")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["$0.00524288", "Flux Dev: $0.02 per megapixel"]


@pytest.mark.parametrize(
    ("model", "side", "figure"),
    [
        ("flux-dev", 1024, "$0.02097152"),
        ("flux-schnell", 512, "$0.0006291456"),
        ("flux-schnell", 1024, "$0.0025165824"),
    ],
)
def test_cli_cost_prints_the_other_seed_figures(
    model: str, side: int, figure: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """In-process, to keep the suite fast; the subprocess test above covers the real entry point."""
    from bot.cli.main import main  # here, so a broken CLI module fails only the CLI tests

    for name in [k for k in os.environ if k.startswith(("BOT_", "RUNPOD_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BOT_CONFIG", str(tmp_path / "absent.toml"))
    assert main(["cost", model, f"width={side}", f"height={side}"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == figure


def test_cli_cost_with_an_invalid_parameter_exits_2_with_the_reason(tmp_path: Path) -> None:
    result = _bot(tmp_path, "cost", "flux-dev", "width=500")
    assert result.returncode == 2
    assert "width must be a whole number, from 256 to 1536, a multiple of 64" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
