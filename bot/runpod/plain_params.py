"""The parameter check without pydantic, for the inputs it certainly accepts.

`python -m bot cost` may take less time in all than importing pydantic does (docs/benchmarks.md,
"Start-up of the command line"), and most inputs are plain: values of their parameter's own type,
within its bounds. `plainly_checked` gives what `bot.runpod.params` gives for those, from the
same `ParamSpec`s; for any other input it answers None, and pydantic judges it and words what is
wrong (tests/runpod/test_plain_params.py compares the two).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.runpod.catalog import Model, ParamSpec

# An http(s) URL with a host and no user name or password: whatever is in a URL the user gives
# is sent to Runpod, stored with the job and shown with the result, so credentials are refused.
URL = r"^https?://[^/?#@\s:][^/?#@\s]*(?:[/?#]\S*)?$"
# Python types of the parameter types a plain value has.
_PLAIN: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "url": (str,),
    "integer": (int,),
    "number": (float, int),
    "boolean": (bool,),
}


class _Unsure(Exception):
    """pydantic has to judge this input."""


def plainly_checked(model: Model, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The input `bot.runpod.params.checked_input` would return, or None when unsure."""
    params = flatten(params, model.params)
    if not set(params) <= set(model.params):
        return None
    checked: dict[str, Any] = {}
    try:
        for name, spec in model.params.items():
            if name in params:
                checked[name] = _value(spec, params[name])
            elif spec.required:
                return None
            elif spec.default is not None:
                checked[name] = _default(spec)
    except _Unsure:
        return None
    return nest(checked)


def _value(spec: ParamSpec, value: Any) -> Any:
    if spec.choices is not None:
        if not any(type(c) is type(value) and c == value for c in spec.choices) or _bounded(spec):
            raise _Unsure
        return value
    if spec.type == "messages" and type(value) is str:
        return _sized(spec, [{"role": "user", "content": value}])
    if spec.type == "url_list" and type(value) is list:
        return _sized(spec, [_url(item) for item in value])
    if spec.type not in _PLAIN or type(value) not in _PLAIN[spec.type]:
        raise _Unsure
    if spec.type == "url":
        _url(value)
    if spec.type in ("string", "url"):
        return _sized(spec, value)
    return _number(spec, value)


def _bounded(spec: ParamSpec) -> bool:
    limits = (spec.min, spec.max, spec.multiple_of, spec.min_length, spec.max_length)
    return any(limit is not None for limit in limits)


def _url(value: Any) -> str:
    """Python's `\\s` is wider than pydantic's (Rust's) in ASCII: none it lets pass is refused."""
    if type(value) is not str or not value.isascii() or not re.fullmatch(URL, value):
        raise _Unsure
    return value


def _sized(spec: ParamSpec, value: str | list[Any]) -> Any:
    if spec.min is not None or spec.max is not None or spec.multiple_of is not None:
        raise _Unsure
    if spec.min_length is not None and len(value) < spec.min_length:
        raise _Unsure
    if spec.max_length is not None and len(value) > spec.max_length:
        raise _Unsure
    return value


def _number(spec: ParamSpec, value: float) -> float:
    if spec.min_length is not None or spec.max_length is not None:
        raise _Unsure
    if spec.type == "number":
        value = _finite(value)
        if spec.multiple_of is not None:
            raise _Unsure
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        raise _Unsure
    if spec.multiple_of and value % spec.multiple_of:
        raise _Unsure
    return value


def _finite(value: float) -> float:
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        raise _Unsure from None
    if not math.isfinite(number):
        raise _Unsure
    return number


def _default(spec: ParamSpec) -> Any:
    """A default as it is (pydantic does not check defaults); one not of its parameter's own
    type (an int for a number too) is for pydantic to dump, with a warning."""
    plain = _PLAIN.get(spec.type, ())[:1]
    own = {type(c) for c in spec.choices} if spec.choices is not None else set(plain)
    if type(spec.default) not in own:
        raise _Unsure
    return spec.default


def flatten(params: Mapping[str, Any], specs: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """Nested objects of `params` as dotted names, where the specs name their fields so."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        prefix = f"{key}."
        if key not in specs and isinstance(value, Mapping) and prefix in _heads(specs):
            flat.update({prefix + sub: item for sub, item in value.items()})
        else:
            flat[key] = value
    return flat


def _heads(specs: Mapping[str, ParamSpec]) -> set[str]:
    return {name.split(".", 1)[0] + "." for name in specs if "." in name}


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        head, dot, rest = key.partition(".")
        if dot:
            nested.setdefault(head, {})[rest] = value
        else:
            nested[key] = value
    return nested
