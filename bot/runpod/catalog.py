"""The models the bot can run: endpoint, kind, parameters, price rule, output field.

The catalog ships as `bot/runpod/models.toml` (one table per model, transcribed from Runpod's model pages)
and operators extend or override it from the `[models.<id>]` tables of their config, so a new model,
a moved endpoint id or a new price needs no code change. Parameters are checked before any request
leaves the bot (`bot.runpod.params`).

The classes are frozen dataclasses, not pydantic models, so `python -m bot models` lists the
shipped catalog without importing pydantic (docs/benchmarks.md, "Start-up of the command line"):
the shipped tables are trusted (tests/cli/test_startup.py checks each against pydantic), and
only the tables an operator's config touches are validated by pydantic.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, get_args

from bot.commands import KINDS
from bot.errors import ConfigError, UnknownModel, shown

if TYPE_CHECKING:
    from pydantic import BaseModel, TypeAdapter, ValidationError

ParamType = Literal[
    "string", "integer", "number", "boolean", "url", "url_list", "messages", "object_list"
]
PriceUnit = Literal[
    "megapixel",
    "image",
    "video",
    "second",
    "5_seconds",
    "1k_characters",
    "1m_tokens",
    "audio_second",
]

# Runpod's model pages give seeds no range, so a seed parameter without `min`/`max` gets a signed
# 32-bit one (Discord's seed option allows the same). Seeds outside it are refused, never wrapped:
# the seed sent is the seed shown. A page's "-1 for random" stays the minimum.
SEED_MIN, SEED_MAX = 0, 2**31 - 1
# Chat roles of a `messages` parameter.
Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = get_args(Role)
# pydantic's config when it validates an operator's table: unknown keys are refused.
_STRICT: dict[str, Any] = {"extra": "forbid"}


@dataclass(frozen=True, kw_only=True)
class ParamSpec:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT

    type: ParamType = "string"
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    multiple_of: int | None = None
    choices: list[Any] | None = None
    # Characters for text; items for lists.
    min_length: int | None = None
    max_length: int | None = None
    # object_list: the fields of each object (e.g. a LoRA's `path` and `scale`).
    items: dict[str, ParamSpec] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if (self.items is not None) != (self.type == "object_list"):
            raise ValueError("`items` is required for type object_list and only for it")

    def allowed(self) -> str:
        """What this parameter accepts, in words a user can act on."""
        if self.choices is not None:
            return "one of " + ", ".join(str(choice) for choice in self.choices)
        low = None if self.min is None else _num(self.min)
        high = None if self.max is None else _num(self.max)
        parts = [self._noun(), *_bounds(low, high, "from {} to {}", "at least {}", "at most {}")]
        if self.multiple_of:
            parts.append(f"a multiple of {self.multiple_of}")
        unit = "characters" if self.type == "string" else "items"
        phrases = (f"{{}} to {{}} {unit}", f"at least {{}} {unit}", f"up to {{}} {unit}")
        parts += _bounds(self.min_length, self.max_length, *phrases)
        return ", ".join(parts)

    def _noun(self) -> str:
        if self.type == "object_list":
            items = (self.items or {}).items()
            fields = ", ".join(f"{name} ({spec.allowed()})" for name, spec in items)
            return f"a list of objects with {fields}" if fields else "a list of objects"
        return {
            "integer": "a whole number",
            "number": "a number",
            "boolean": "true or false",
            "url": "an http(s) URL",
            "url_list": "a list of http(s) URLs",
            "string": "text",
            "messages": "text, or a list of messages with role (one of "
            + ", ".join(ROLES)
            + ") and content (text)",
        }[self.type]


@dataclass(frozen=True, kw_only=True)
class PriceRule:
    """How Runpod bills a model: `usd` per `unit`, optionally looked up in `table`.

    `by` names the parameters whose values (joined by ",") select the unit price in `table`, e.g.
    `by = ["size", "duration"]`, `table = {"1280*720,5" = "0.50"}` (booleans as `true`/`false`).
    Token prices are per 1M: `usd` (or `table`) for output tokens and `input_usd` (or
    `input_table`, keyed like `table`, e.g. by a `model` variant) for input tokens.
    `estimate_usd` is the amount to hold when the quantity is only known afterwards (e.g. a video
    as long as a reference clip).
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT

    unit: PriceUnit
    usd: Decimal | None = None
    input_usd: Decimal | None = None
    by: list[str] = field(default_factory=list)
    table: dict[str, Decimal] = field(default_factory=dict)
    input_table: dict[str, Decimal] = field(default_factory=dict)
    estimate_usd: Decimal | None = None

    def __post_init__(self) -> None:
        if self.usd is None and not self.table:
            raise ValueError("a price needs `usd` or a `table`")
        if (self.table or self.input_table) and not self.by:
            raise ValueError("a price `table` needs `by` (the parameters that select a row)")
        if self.input_table and self.unit != "1m_tokens":
            raise ValueError("`input_table` is for token prices (unit 1m_tokens)")


def _known_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    return kind


class _KnownKind:
    """`Model.kind`'s check as pydantic runs it on an operator's table: an error at `kind`."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(_known_kind, handler(source))


@dataclass(frozen=True, kw_only=True)
class Model:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT

    id: str
    name: str
    endpoint: str
    kind: Annotated[str, _KnownKind()]  # one of the kinds of `bot.commands.COMMANDS`
    price: PriceRule
    output: str
    params: dict[str, ParamSpec]
    aliases: list[str] = field(default_factory=list)
    description: str = ""
    nsfw: bool = False
    # Text models: the model name on the OpenAI-compatible route (streaming).
    openai_model: str | None = None

    def __post_init__(self) -> None:
        _known_kind(self.kind)
        bounded = {name: _bounded_seed(name, spec) for name, spec in self.params.items()}
        object.__setattr__(self, "params", bounded)  # frozen: the one change, at construction

    @property
    def seed_param(self) -> ParamSpec | None:
        """The top-level `seed`: one per copy of a job, so each result can be reproduced."""
        return self.params.get("seed")

    @property
    def prompt_param(self) -> str | None:
        """Where the user's text goes: `prompt`, or a chat model's `messages` (text accepted)."""
        if "prompt" in self.params:
            return "prompt"
        return next((name for name, spec in self.params.items() if spec.type == "messages"), None)

    @property
    def media_inputs(self) -> list[str]:
        """Parameters that take a URL of a file (image to edit, audio to transcribe...)."""
        return [name for name, spec in self.params.items() if spec.type in ("url", "url_list")]

    @functools.cached_property
    def _schema(self) -> type[BaseModel]:
        from bot.runpod.params import schema_for  # pydantic: only when parameters are checked

        return schema_for(self)

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The input to send: defaults filled in, every value checked; else InvalidRequest.

        A dotted parameter name (`sampling_params.max_tokens`) is a field of a nested object in
        the input; it is accepted dotted or nested, and returned nested, so a checked input
        checks again unchanged.
        """
        from bot.runpod.plain_params import plainly_checked

        plain = plainly_checked(self, params)
        if plain is not None:
            return plain
        from bot.runpod.params import checked_input  # pydantic: judges and words the rest

        return checked_input(self, self._schema, params)


def _bounded_seed(name: str, spec: ParamSpec) -> ParamSpec:
    """An integer `seed` (or `sampling_params.seed`) with the default range where it has none."""
    if name.rsplit(".", 1)[-1] != "seed" or spec.type != "integer":
        return spec
    low = SEED_MIN if spec.min is None else spec.min
    high = SEED_MAX if spec.max is None else spec.max
    return replace(spec, min=low, max=high)


def _bounds(low: object, high: object, both: str, low_only: str, high_only: str) -> list[str]:
    """The phrase for a range that may be open at either end (none when it is open at both)."""
    if low is not None and high is not None:
        return [both.format(low, high)]
    if low is not None:
        return [low_only.format(low)]
    if high is not None:
        return [high_only.format(high)]
    return []


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class Catalog:
    """All models, found by id, alias or endpoint id."""

    def __init__(self, models: list[Model]) -> None:
        self._models = {model.id: model for model in models}
        self._names: dict[str, Model] = {}
        for model in models:
            for name in (model.id, model.endpoint, *model.aliases):
                self._names[name.lower()] = model

    def __iter__(self) -> Iterator[Model]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def get(self, name: str) -> Model:
        model = self._names.get(name.strip().lower())
        if model is None:
            raise UnknownModel(
                f"unknown model {shown(name)}; try one of: {', '.join(sorted(self._models))}"
            )
        return model

    def of_kind(self, *kinds: str) -> list[Model]:
        return [model for model in self if model.kind in kinds]


def load_catalog(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Catalog:
    """The shipped catalog with the operator's `[models.<id>]` tables merged over it."""
    shipped = tomllib.loads(
        resources.files("bot.runpod").joinpath("models.toml").read_text("utf-8")
    )
    tables: dict[str, dict[str, Any]] = {
        model_id: dict(table) for model_id, table in shipped["models"].items()
    }
    for model_id, override in (overrides or {}).items():
        merged = tables.setdefault(model_id, {})
        for key, value in override.items():
            if key == "params" and isinstance(value, Mapping):
                merged["params"] = {**merged.get("params", {}), **value}
            else:
                merged[key] = value
    touched = overrides or {}
    return Catalog(
        [
            (_validated if model_id in touched else _shipped)(model_id, table)
            for model_id, table in tables.items()
        ]
    )


def _shipped(model_id: str, table: Mapping[str, Any]) -> Model:
    """A table of `models.toml`, typed as pydantic would type it (prices Decimal, bounds float)
    and checked by the classes' own rules: pydantic is slow to import, and a test reads every
    table both ways."""
    try:
        checked = {"price": _price(table["price"]), "params": _specs(table["params"])}
        return Model(**{**table, **checked, "id": model_id})
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"models.{model_id}: {exc}") from None


def _price(table: Mapping[str, Any]) -> PriceRule:
    usd = {
        key: Decimal(str(table[key]))
        for key in ("usd", "input_usd", "estimate_usd")
        if key in table
    }
    rows = {
        key: {row: Decimal(str(v)) for row, v in table[key].items()}
        for key in ("table", "input_table")
        if key in table
    }
    return PriceRule(**{**table, **usd, **rows})


def _specs(tables: Mapping[str, Mapping[str, Any]]) -> dict[str, ParamSpec]:
    specs = {}
    for name, table in tables.items():
        bounds = {key: float(table[key]) for key in ("min", "max") if key in table}
        items = {"items": _specs(table["items"])} if "items" in table else {}
        specs[name] = ParamSpec(**{**table, **bounds, **items})
    return specs


def _validated(model_id: str, table: Mapping[str, Any]) -> Model:
    """A table the operator's config touched, checked by pydantic (lax, as every setting is)."""
    from pydantic import ValidationError  # only when the config adds to the catalog

    try:
        return _adapter().validate_python(dict(id=model_id, **table))
    except ValidationError as exc:
        raise ConfigError(f"models.{model_id}: {_as_for_settings(exc)}") from None
    except TypeError as exc:
        raise ConfigError(f"models.{model_id}: {exc}") from None


def _as_for_settings(exc: ValidationError) -> ValidationError:
    """pydantic calls an unknown key of a dataclass an "Unexpected keyword argument"; say it as
    for every other setting (and as before the classes were dataclasses): "Extra inputs are not
    permitted", at the key's place."""
    from pydantic import ValidationError

    details: list[Any] = [
        {
            "type": "extra_forbidden"
            if err["type"] == "unexpected_keyword_argument"
            else err["type"],
            "loc": err["loc"],
            "input": err["input"],
            **({"ctx": err["ctx"]} if "ctx" in err else {}),
        }
        for err in exc.errors()
    ]
    return ValidationError.from_exception_data(exc.title, details)


@functools.cache
def _adapter() -> TypeAdapter[Model]:
    from pydantic import TypeAdapter

    return TypeAdapter(Model)
