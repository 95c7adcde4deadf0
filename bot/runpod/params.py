"""Checking a member's parameters against a model's specs, before any request leaves the bot.

A pydantic model is built from each model's `ParamSpec`s (`bot.runpod.catalog`); every
rejection names the parameter and what it allows, in words a member can act on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
)

from bot.errors import InvalidRequest, clip, shown
from bot.runpod.catalog import Role
from bot.runpod.plain_params import URL, flatten, nest

if TYPE_CHECKING:
    from bot.runpod.catalog import Model, ParamSpec


def checked_input(
    model: Model, schema: type[BaseModel], params: Mapping[str, Any]
) -> dict[str, Any]:
    """`Model.validate_params`: the input to send, checked by `schema`; else InvalidRequest."""
    params = flatten(params, model.params)
    unknown = sorted(set(params) - set(model.params))
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise InvalidRequest(
            f"{model.id} has no parameter {', '.join(map(shown, unknown[:5]))}{more}; "
            f"it takes: {', '.join(model.params)}"
        )
    try:
        checked = schema.model_validate(params)
    except ValidationError as exc:
        raise InvalidRequest(_explain(model, exc)) from None
    return nest(checked.model_dump(by_alias=True, exclude_none=True))


_USERINFO = re.compile(r"(?<=//)[^/?#@\s]*@")
_PY_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "url": str,
    "url_list": list[Annotated[str, StringConstraints(pattern=URL)]],
}


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str


def _text_as_message(value: Any) -> Any:
    return [{"role": "user", "content": value}] if isinstance(value, str) else value


def _annotation(name: str, spec: ParamSpec) -> Any:
    if spec.choices is not None:
        return Literal[tuple(spec.choices)]
    if spec.type == "messages":
        return Annotated[list[_Message], BeforeValidator(_text_as_message)]
    if spec.type == "object_list":
        item = _object_schema(f"Item_{name}", spec.items or {})
        return list[item]  # type: ignore[valid-type]
    return _PY_TYPES[spec.type]


def _field(name: str, spec: ParamSpec) -> tuple[Any, Any]:
    annotation = _annotation(name, spec)
    constraints: dict[str, Any] = {}
    if spec.min is not None:
        constraints["ge"] = spec.min
    if spec.max is not None:
        constraints["le"] = spec.max
    if spec.multiple_of:
        constraints["multiple_of"] = spec.multiple_of
    if spec.min_length is not None:
        constraints["min_length"] = spec.min_length
    if spec.max_length is not None:
        constraints["max_length"] = spec.max_length
    if spec.type == "url":
        constraints["pattern"] = URL
    if spec.type == "number":
        constraints["allow_inf_nan"] = False  # NaN is not JSON: Runpod would refuse the body
    default = ... if spec.required else spec.default
    if not spec.required and spec.default is None:
        annotation = annotation | None
    # Field names are generated: parameter names may be dotted or shadow BaseModel attributes.
    return annotation, Field(default, alias=name, **constraints)


def _object_schema(title: str, specs: Mapping[str, ParamSpec]) -> type[BaseModel]:
    fields = {f"p{i}": _field(name, spec) for i, (name, spec) in enumerate(specs.items())}
    return create_model(  # type: ignore[call-overload, no-any-return]
        title,
        __config__=ConfigDict(extra="forbid", strict=False, coerce_numbers_to_str=False),
        **fields,
    )


def schema_for(model: Model) -> type[BaseModel]:
    """The pydantic model that checks `model`'s parameters (built once per model)."""
    return _object_schema(f"Params_{model.id}", model.params)


def _explain(model: Model, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "input"
        spec = model.params.get(name)
        if err["type"] == "missing" and len(err["loc"]) == 1:
            problems.append(f"{name} is required")
        elif spec and spec.type in ("url", "url_list") and _USERINFO.search(str(err["input"])):
            problems.append(f"{name} must be a URL without credentials (they would go to Runpod)")
        elif spec is not None:
            problems.append(f"{name} must be {spec.allowed()} (got {_shown(err.get('input'))})")
        else:
            problems.append(f"{name}: {err['msg']}")
    return f"{model.name}: " + "; ".join(dict.fromkeys(problems))


def _shown(value: Any) -> str:
    return clip(_USERINFO.sub("***@", repr(value)))
