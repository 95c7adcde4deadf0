"""The sections a quote reads, read without pydantic (bot/config_fields.py), never disagree with it.

Whatever table `read_section` takes, pydantic's section takes too, with the same values of the
same types; what it is unsure of, pydantic judges (and words the error, tests/cli/test_startup.py).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from bot.config import JobSettings, PolicySettings, QuotaSettings
from bot.config_fields import Fields, JobFields, PolicyFields, QuotaFields, read_section

SECTIONS: list[tuple[type[Fields], type[BaseModel]]] = [
    (JobFields, JobSettings),
    (PolicyFields, PolicySettings),
    (QuotaFields, QuotaSettings),
]
NAMES = {JobFields: "jobs", PolicyFields: "policy", QuotaFields: "quotas"}
EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"

NUMBERS = st.one_of(
    st.integers(-2, 200_001),
    st.floats(-2, 200_001),
    st.sampled_from([0, 1, 0.0, 0.5, 1e-7, 100_000, 100_000.0, 100_000.5, -0.0, float("inf")]),
    st.sampled_from(["0.50", "1", "007", "-1", " 1", "1e3", "100000", "100001", "0.0000001"]),
)
TEXT = st.one_of(st.text(max_size=6), st.sampled_from(["UTC", "Europe/Paris", "Mars/Base", ""]))
JUNK = st.one_of(st.booleans(), NUMBERS, TEXT, st.lists(st.integers(), max_size=2))
PLAIN: dict[Any, st.SearchStrategy[Any]] = {
    Decimal: NUMBERS,
    float: NUMBERS,
    int: NUMBERS,
    bool: st.booleans(),
    str: TEXT,
}


def _values(kind: Any) -> st.SearchStrategy[Any]:
    """TOML values for a field of `kind`: mostly of its own type, in and out of its bounds."""
    origin, args = get_origin(kind), get_args(kind)
    if origin is Annotated or origin in (Union, UnionType):
        return _values(next(arg for arg in args if arg is not type(None)))
    if origin is list:
        return st.lists(_values(args[0]), max_size=3)
    if origin in (dict, Mapping):
        keys = st.sampled_from(["imagine", "123", "Patron"])
        return st.dictionaries(keys, _values(args[1]), max_size=2)
    if isinstance(kind, type) and issubclass(kind, Fields):
        return tables(kind)
    return st.one_of(PLAIN[kind], JUNK)


def tables(fields: type[Fields]) -> st.SearchStrategy[dict[str, Any]]:
    """Tables of `fields`' keys, now and then with a value of another kind or a key it lacks."""
    hints = get_type_hints(fields, include_extras=True)
    own = st.fixed_dictionaries({}, optional={name: _values(kind) for name, kind in hints.items()})
    odd = st.dictionaries(st.sampled_from([*hints, "unknown"]), JUNK, max_size=1)
    return st.tuples(own, st.one_of(st.just({}), odd)).map(lambda pair: {**pair[0], **pair[1]})


def _data(value: Any, given: Any) -> Any:
    """What a section made of the `given` part of a table: nested sections by the keys given."""
    if isinstance(given, dict) and isinstance(value, BaseModel | Fields):
        return {key: _data(getattr(value, key), item) for key, item in given.items()}
    if isinstance(given, dict) and isinstance(value, dict):
        return {key: _data(value[key], item) for key, item in given.items()}
    return repr(value)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SECTIONS).flatmap(lambda pair: st.tuples(st.just(pair), tables(pair[0]))))
def test_what_it_reads_pydantic_reads_the_same(
    case: tuple[tuple[type[Fields], type[BaseModel]], dict[str, Any]],
) -> None:
    (fields, model), table = case
    plain = read_section(fields, table)
    if plain is None:
        return
    try:
        checked = model(**table)
    except ValidationError as exc:
        raise AssertionError(f"read without pydantic, refused by it: {exc}") from None
    assert _data(plain, table) == _data(checked, table)


@pytest.mark.parametrize(("fields", "model"), SECTIONS)
def test_the_example_config_is_read_without_pydantic(
    fields: type[Fields], model: type[BaseModel]
) -> None:
    table = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))[NAMES[fields]]
    plain = read_section(fields, table)
    assert plain is not None
    assert _data(plain, table) == _data(model(**table), table)
