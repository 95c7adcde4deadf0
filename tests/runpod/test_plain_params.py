"""The parameter check without pydantic (bot/runpod/plain_params.py) never disagrees with pydantic.

Whatever input it accepts, pydantic accepts too and makes the same input to send, value for value
and type for type; what it is unsure of, pydantic judges. Generated from the shipped catalog, so
a model added to `models.toml` is covered the moment it is added.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import InvalidRequest
from bot.runpod.catalog import Model, ParamSpec, load_catalog
from bot.runpod.params import checked_input
from bot.runpod.plain_params import plainly_checked

MODELS = list(load_catalog())
URLS = st.sampled_from(
    [
        "https://example.com/a.png",
        "http://x",
        "https://user:pw@example.com/a.png",
        "https://example.com/a b",
        "https://example.com/\n",
        "https://example.com/\x1c",
        "ftp://example.com/a",
        "https://ex\u00e4mple.com/",
    ]
)
SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(2**33), 2**33),
    st.sampled_from([0, 1, -1, 4, 64, 512, 1024, 1536, 2147483647, 2147483648]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.5, 1.0, 7.5, 10.0, 10.5]),
    st.text(max_size=12),
    URLS,
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.none())


def _near(spec: ParamSpec) -> st.SearchStrategy[Any]:
    """Values of the parameter's own kind, in and just outside its bounds."""
    if spec.choices is not None:
        return st.sampled_from(spec.choices)
    low = -10 if spec.min is None else int(spec.min) - 2
    high = 10**6 if spec.max is None else int(spec.max) + 2
    step = spec.multiple_of or 1
    kinds: dict[str, st.SearchStrategy[Any]] = {
        "integer": st.integers(low // step, high // step).map(lambda n: n * step),
        "number": st.one_of(st.floats(low, high), st.integers(low, high)),
        "boolean": st.booleans(),
        "string": st.text(max_size=12),
        "messages": st.text(max_size=12),
        "url": URLS,
        "url_list": st.lists(URLS, max_size=3),
        "object_list": st.lists(st.dictionaries(st.text(max_size=5), SCALARS, max_size=2)),
    }
    return kinds[spec.type]


@st.composite
def inputs(draw: st.DrawFn) -> tuple[Model, dict[str, Any]]:
    model = draw(st.sampled_from(MODELS))
    names = st.sampled_from([*model.params, "no_such_param"])
    params = draw(st.dictionaries(names, VALUES, max_size=2))
    for name, spec in model.params.items():
        if spec.required or draw(st.integers(0, 3)) == 0:
            params[name] = draw(_near(spec))
    return model, params


def _by_pydantic(model: Model, params: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return checked_input(model, model._schema, params)
    except InvalidRequest:
        return None


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(inputs())
def test_what_it_accepts_pydantic_accepts_as_it_is(case: tuple[Model, dict[str, Any]]) -> None:
    model, params = case
    plain = plainly_checked(model, params)
    if plain is not None:
        assert repr(plain) == repr(_by_pydantic(model, params))


def test_flux_schnell_s_usual_input_is_checked_without_pydantic() -> None:
    model = next(model for model in MODELS if model.id == "flux-schnell")
    params = {"prompt": "a cat", "width": 512, "guidance": 3, "image_format": "png"}
    assert plainly_checked(model, params) == _by_pydantic(model, params)
    assert plainly_checked(model, {"prompt": "a cat", "width": 500}) is None  # not a multiple of 64
