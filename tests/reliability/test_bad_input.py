"""Bad input at every parser and command entry point: a clear refusal, never anything else.

Whatever a user types (text or typed options), attaches, or passes on the command line, the core
answers with a request it can send or a `BotError` whose message names the problem and fits in
one chat message. What it accepts is strict JSON (no NaN), with media URLs that are http(s) and
carry no credentials. The Downloader, the one place the bot fetches a URL itself (Runpod's
outputs), only ever returns the kind of file the model makes, or an `OutputError`.

`HYPOTHESIS_PROFILE=full` runs 10,000 cases per property (see conftest.py); the default runs 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import unicodedata
import uuid
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.control import event as hypothesis_event
from pydantic import ValidationError

from bot.app import Core
from bot.cli.basic import parse_key_values
from bot.cli.main import main
from bot.commands import COMMANDS
from bot.config import JobSettings, QuotaLimits
from bot.errors import BotError, InvalidRequest
from bot.ledger.quota import MAX_ADMIN_USD, Identity
from bot.requests import MAX_PROMPT_CHARS, OPTION_HELP, Request, build_request, parse_text
from bot.runpod import pricing
from bot.runpod.catalog import Model, ParamSpec, load_catalog
from bot.runpod.outputs import MEDIA_KINDS, Downloader, OutputError
from tests.fakes import media
from tests.identities import HERE
from tests.reliability.conftest import FUZZ

CATALOG = load_catalog()
MODELS = sorted(CATALOG, key=lambda m: m.id)
DEFAULTS = JobSettings().default_models  # the model each command uses when none is named
CHAT_MESSAGE_LIMIT = 2000  # Discord's; a refusal must fit in one message
NO_CONFIG = str(Path(__file__).with_name("no-such-config.toml"))

# --- what users send -------------------------------------------------------------------------

MODEL_NAMES = sorted({n for m in MODELS for n in (m.id, m.endpoint, *m.aliases)})
OPTION_NAMES = sorted(
    {form.split()[0] for form in OPTION_HELP}
    | {"--" + p.rsplit(".", 1)[-1] for m in MODELS for p in m.params}
    | {"--m", "--n", "--neg", "--cfg", "--aspect", "--tokens", "--x"}
)
URLS = [
    "https://files.example.com/talk.mp3",
    "https://cdn.discordapp.com/attachments/1/2/fox.png?ex=65&is=66&hm=abc",
    "https://user:hunter2@files.example.com/talk.mp3",
    "https://token@files.example.com/fox.png",
    "http://127.0.0.1:8080/x.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/x.wav",
    "ftp://files.example.com/a.mp3",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "data:image/png;base64,iVBORw0KGgo=",
    "https://",
    "https://exa mple.com/a.png",
    "not a url",
    "<https://files.example.com/talk.mp3>",
]
NASTY = [
    "16:9", "0:0", "1:0", "99999:1", "1024x768", "99999x99999", "0x0", "720p",
    "-1", "-2", "-9999999999", "0", "7", "2147483645", "2147483647", "2147483648", "4294967296",
    "9" * 40, "1e309", "-1e309", "1e-400",
    "NaN", "nan", "inf", "-inf", "Infinity", "0.5", "-0", "true", "yes", "off",
    "<@123456789012345678>", "<@!123>", "<@&987>", "<#555>", "@everyone", "@here",
    "<!channel>", "<!here>", "<@U123ABC|bob>", "```", "||spoiler||",
    "\x00", "\x07", "\x1b[31m", "\r\n", "\t", "\u202e", "\ufeff", "\u200b", "\u2014ar", "\u2013seed",
    "🦊", "𝔣𝔬𝔵", "ﷺ", "Z̤͔ͧ̑̓", "%s%n", "{0}", "'; DROP TABLE jobs;--", "../../etc/passwd",
]  # fmt: skip
long_word = st.integers(1, 3000).map(lambda n: "y" * n)  # longer than a chat message
word = st.one_of(
    st.tuples(st.sampled_from(OPTION_NAMES), st.sampled_from(NASTY) | long_word).map(" ".join),
    long_word.map(lambda w: "--" + w),
    st.sampled_from(OPTION_NAMES),
    st.sampled_from(MODEL_NAMES),
    st.sampled_from(NASTY),
    st.sampled_from(URLS),
    st.text(max_size=12),
    st.integers().map(str),
    st.floats().map(str),
    long_word,
)
words = st.lists(word, max_size=16).map(" ".join)
text = st.one_of(
    st.text(max_size=300),
    words,
    words,
    st.one_of(
        st.integers(0, 30).map(lambda n: "a " * (MAX_PROMPT_CHARS // 2 - 15 + n)),  # the limit
        st.integers(100_000, 1_000_000).map(lambda n: "x" * n),  # (not st.just: its repr)
    ),
)
media_urls = st.lists(st.one_of(st.sampled_from(URLS), st.text(max_size=40)), max_size=3).map(tuple)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),
    st.text(max_size=40),
    st.sampled_from(NASTY + URLS),
)
json_value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def spec_value(spec: ParamSpec) -> st.SearchStrategy[Any]:
    """Values near what a parameter allows, so that acceptance is exercised too."""
    near: list[st.SearchStrategy[Any]] = [json_value]
    if spec.choices:
        near.append(st.sampled_from(spec.choices))
    if spec.type in ("integer", "number"):
        low = int(spec.min) - 2 if spec.min is not None else -(10**30)
        high = int(spec.max) + 2 if spec.max is not None else 10**30
        near.append(st.integers(low, high))
        floats = st.floats(float(low), float(high))
        near.append(floats | st.sampled_from([math.nan, math.inf, -math.inf]))
    if spec.type in ("url", "url_list"):
        near.append(st.sampled_from(URLS))
        near.append(st.lists(st.sampled_from(URLS), max_size=3))
    if spec.type == "messages":
        role = st.sampled_from(["system", "user", "assistant", "tool", ""])
        message = st.fixed_dictionaries({"role": role, "content": st.text(max_size=20)})
        near.append(st.lists(message, max_size=3))
    if spec.default is not None:
        near.append(st.just(spec.default))
    return st.one_of(near)


def event(name: str) -> None:
    """Counted in `--hypothesis-show-statistics` (accepted vs refused, and by what)."""
    if currently_in_test_context():
        hypothesis_event(name)


# --- what must hold --------------------------------------------------------------------------


def assert_clear(exc: BaseException, names: tuple[str, ...] = ()) -> None:
    """A refusal: a BotError whose message fits a chat message and (if given) names the culprit."""
    assert isinstance(exc, BotError), f"{type(exc).__name__} escaped: {exc!r}"
    event(f"refused ({type(exc).__name__})")
    message = exc.message
    assert message.strip(), "an empty refusal"
    assert "Traceback" not in message and "pydantic" not in message.lower()
    assert len(message) <= CHAT_MESSAGE_LIMIT, f"a {len(message)}-character refusal"
    if names:
        assert any(name in message for name in names), message


# What a refusal of a request may name: an option, a parameter, or what was wrong with it.
SUBJECTS = (
    "--", "prompt", "file", "model", "command",
    *sorted({p.rsplit(".", 1)[-1] for m in MODELS for p in m.params}),
)  # fmt: skip


def assert_sendable(model: Model, params: Mapping[str, Any]) -> None:
    """What the core accepted can be sent: strict JSON, safe URLs, a finite price."""
    event("accepted")
    json.dumps(params, allow_nan=False)  # raises on NaN/inf: Runpod would get invalid JSON
    for name in model.media_inputs:
        value = params.get(name)
        for url in value if isinstance(value, list) else [value] if value else []:
            parts = urlsplit(url)
            assert parts.scheme in ("http", "https") and parts.hostname, url
            assert parts.username is None and parts.password is None, url
    try:
        amount = pricing.estimate(model, params)
    except BotError as refused:
        assert_clear(refused)
    else:
        assert isinstance(amount, Decimal) and amount.is_finite() and amount >= 0


def check_request(request: Request) -> None:
    model = CATALOG.get(request.model)
    assert 1 <= request.count <= 4
    assert len(request.prompt) <= MAX_PROMPT_CHARS
    assert not request.prompt or any(
        unicodedata.category(c) not in ("Cc", "Cf", "Zs", "Zl", "Zp") for c in request.prompt
    ), f"a prompt with nothing visible: {request.prompt[:20]!r}"
    seed, spec = request.input.get("seed"), model.params.get("seed")
    if spec is not None and isinstance(seed, int) and seed >= 0:
        # Copies take seed, seed+1...: each is sent as is, so each must be in range.
        assert spec.max is not None and seed + request.count - 1 <= spec.max, (seed, request.count)
    assert_sendable(model, request.input)
    assert model.validate_params(request.input) == request.input  # checks again unchanged


# --- the option parser -----------------------------------------------------------------------


@FUZZ
@given(command=st.sampled_from(sorted(COMMANDS)), text=text, media=media_urls)
def test_any_text_gives_a_sendable_request_or_a_clear_refusal(
    command: str, text: str, media: tuple[str, ...]
) -> None:
    try:
        request = parse_text(command, text, CATALOG, default_model=DEFAULTS[command], media=media)
    except Exception as refused:
        assert_clear(refused, SUBJECTS)
    else:
        check_request(request)
        assert not any(c in request.prompt for c in "\x00\x07\x1b\r\n"), request.prompt[:80]


typed_value = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.booleans(),
    st.text(max_size=40),
    st.sampled_from(NASTY + URLS + MODEL_NAMES),
    st.integers(1, 3000).map(lambda n: "y" * n),
    st.none(),
)
option_name = st.one_of(
    st.sampled_from([o.removeprefix("--") for o in OPTION_NAMES]),
    st.sampled_from(["model", "count", "seed", "ar", "size", "no"]),
    st.text(max_size=12),
    st.integers(1, 3000).map(lambda n: "z" * n),
)


@FUZZ
@given(
    command=st.sampled_from(sorted(COMMANDS)),
    prompt=text,
    options=st.dictionaries(option_name, typed_value, max_size=6),
    media=media_urls,
)
def test_any_typed_options_give_a_sendable_request_or_a_clear_refusal(
    command: str, prompt: str, options: dict[str, Any], media: tuple[str, ...]
) -> None:
    """Discord hands over typed options: ints of any size, floats including NaN, text."""
    try:
        request = build_request(
            command,
            CATALOG,
            prompt=prompt,
            options=options,
            default_model=DEFAULTS[command],
            media=media,
        )
    except Exception as refused:
        assert_clear(refused, SUBJECTS)
    else:
        check_request(request)


def valid_base(model: Model) -> dict[str, Any]:
    """Required parameters filled in validly, so that single bad values are what gets tested."""
    samples = {"url": "https://files.example.com/in.png", "messages": "hi", "string": "a fox"}
    base: dict[str, Any] = {}
    for name, spec in model.params.items():
        if not spec.required:
            continue
        if spec.choices:
            base[name] = spec.choices[0]
        elif spec.type == "url_list":
            base[name] = [samples["url"]] * max(1, spec.min_length or 1)
        elif spec.type in ("integer", "number"):
            base[name] = spec.min if spec.min is not None else 1
        else:
            base[name] = samples.get(spec.type, "a fox")
    return base


BASES = {model.id: valid_base(model) for model in MODELS}


def test_the_valid_bases_are_valid() -> None:
    broken = {}
    for model in MODELS:
        try:
            model.validate_params(BASES[model.id])
        except InvalidRequest as refused:
            broken[model.id] = refused.message
    assert not broken


@FUZZ
@given(data=st.data(), model=st.sampled_from(MODELS))
def test_every_model_checks_any_parameters(data: st.DataObject, model: Model) -> None:
    names = st.one_of(st.sampled_from(sorted(model.params)), st.text(max_size=10))
    keys = data.draw(st.lists(names, max_size=3, unique=True))
    start = data.draw(st.sampled_from([BASES[model.id], {}]))
    params = {**start, **{key: data.draw(spec_value(model.params[key])) if key in model.params
                          else data.draw(json_value) for key in keys}}  # fmt: skip
    try:
        checked = model.validate_params(params)
    except Exception as refused:
        # the message names a parameter given, or the required one missing
        assert_clear(refused, (*params, *model.params))
    else:
        assert_sendable(model, checked)
        assert model.validate_params(checked) == checked


NUMBERS = [(m, name) for m in MODELS for name, spec in m.params.items() if spec.type == "number"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "inf", "1e309"])
def test_no_number_parameter_accepts_nan_or_infinity(value: object) -> None:
    """NaN is not JSON: sent on, Runpod would refuse the whole body (or worse, guess)."""
    accepted = []
    for model, name in NUMBERS:
        try:
            model.validate_params({**BASES[model.id], name: value})
        except InvalidRequest as refused:
            assert_clear(refused, (name,))
        else:
            accepted.append(f"{model.id}.{name}")
    assert not accepted
    with pytest.raises(InvalidRequest, match="top_p must be a number"):
        parse_text("ask", f"hi --top_p {value}", CATALOG, default_model="qwen3-32b")


@pytest.mark.parametrize("count", [math.inf, -math.inf, math.nan, 2.5, "2", None])
def test_a_typed_count_that_is_not_a_whole_number_is_refused(count: object) -> None:
    """Found by the full run: a typed float('inf') count raised OverflowError."""
    try:
        request = build_request(
            "imagine", CATALOG, prompt="a fox", options={"count": count}, default_model="flux-dev"
        )
    except InvalidRequest as refused:
        assert "--count" in refused.message
    else:
        assert request.count == int(count or 1)  # type: ignore[call-overload]


@pytest.mark.parametrize("option", ["--max-tokens -3", "--max-tokens -99999999999999999999"])
def test_a_negative_quantity_is_refused_before_it_can_price_below_zero(option: str) -> None:
    """Found by the full run: max_tokens has no lower bound on the model pages."""
    request = parse_text("ask", f"hi {option}", CATALOG, default_model="qwen3-32b")
    with pytest.raises(InvalidRequest, match="max_tokens must not be negative"):
        pricing.estimate(CATALOG.get(request.model), request.input)


# --- media the user names, media the bot fetches ---------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter2@files.example.com/talk.mp3",
        "https://token@files.example.com/talk.mp3",
        "https://:secret@files.example.com/talk.mp3",
    ],
)
def test_a_file_url_with_credentials_is_refused_before_anything_is_sent(url: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_text("transcribe", "", CATALOG, default_model=DEFAULTS["transcribe"], media=(url,))
    assert "audio" in refused.value.message and "credentials" in refused.value.message
    assert "hunter2" not in refused.value.message and "secret" not in refused.value.message


@pytest.mark.parametrize(
    "url", ["ftp://files.example.com/a.mp3", "file:///etc/passwd", "talk.mp3", "javascript:x"]
)
def test_a_file_that_is_not_an_http_url_is_refused_for_transcription(url: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_text("transcribe", "", CATALOG, default_model=DEFAULTS["transcribe"], media=(url,))
    assert "audio must be an http(s) URL" in refused.value.message


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.discordapp.com/attachments/1/2/talk.mp3?ex=65&is=66&hm=abc",
        "http://127.0.0.1:8080/talk.mp3",  # Runpod fetches it, not the bot: passed on as given
        "http://10.0.0.5/talk.mp3",
    ],
)
def test_other_user_urls_reach_runpod_untouched(url: str) -> None:
    request = parse_text(
        "transcribe", "", CATALOG, default_model=DEFAULTS["transcribe"], media=(url,)
    )
    assert request.input["audio"] == url


def fetch(
    url: str, kind: str, *, status: int = 200, content_type: str = "", body: bytes = b""
) -> Any:
    """Downloader.fetch against an in-process transport; returns the file or the exception."""
    asked: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url)
        headers = [(b"Content-Type", content_type.encode("latin-1"))] if content_type else []
        return httpx.Response(status, headers=headers, content=body)

    async def go() -> Any:
        transport = httpx.MockTransport(answer)
        async with httpx.AsyncClient(transport=transport) as http:
            # In-process transport, made-up hosts: nothing to resolve or protect here.
            downloader = Downloader(
                http, max_bytes=1 << 20, timeout_s=5, backoff_s=0, allow_private_urls=True
            )
            try:
                return await downloader.fetch(url, kind=kind, name="r")
            except Exception as exc:
                return exc

    outcome = asyncio.run(go())
    assert all(u.scheme in ("http", "https") for u in asked), asked
    return outcome


PNG = media.png(8, 8)
WAV = media.wav(0.1)


@pytest.mark.parametrize(
    ("kind", "content_type", "body"),
    [
        ("speech", "image/png", PNG),
        ("speech", "audio/wav", PNG),  # the bytes say PNG whatever the header claims
        ("speech", "text/html", b"<html>expired</html>"),
        ("speech", "application/octet-stream", b"\x00" * 64),
        ("image", "audio/wav", WAV),
        ("video", "image/png", PNG),
    ],
)
def test_the_downloader_refuses_a_result_of_the_wrong_kind(
    kind: str, content_type: str, body: bytes
) -> None:
    outcome = fetch("https://media.example.com/0.bin", kind, content_type=content_type, body=body)
    assert isinstance(outcome, OutputError), outcome
    assert f"not {MEDIA_KINDS[kind].rstrip('/')}" in outcome.message


@FUZZ
@given(
    url=st.one_of(
        st.sampled_from(URLS),
        st.text(max_size=40).map(lambda t: "https://" + t),
        st.text(max_size=40),
    ),
    kind=st.sampled_from(sorted(MEDIA_KINDS)),
    status=st.sampled_from([200, 200, 200, 204, 301, 403, 404, 410, 429, 500, 503]),
    content_type=st.one_of(
        st.sampled_from(["", "image/png", "audio/wav", "video/mp4", "text/html", "audio/mpeg"]),
        st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=20),  # as on a wire
    ),
    body=st.one_of(st.sampled_from([PNG, WAV, b"ID3" + b"\x00" * 20, b""]), st.binary()),
)
def test_the_downloader_returns_the_expected_kind_or_an_output_error(
    url: str, kind: str, status: int, content_type: str, body: bytes
) -> None:
    outcome = fetch(url, kind, status=status, content_type=content_type, body=body)
    if isinstance(outcome, BaseException):
        assert_clear(outcome)
        assert isinstance(outcome, OutputError)
    else:
        assert outcome.content_type.startswith(MEDIA_KINDS[kind]) and outcome.data == body


# --- amounts an admin gives -------------------------------------------------------------------

amounts = st.one_of(
    st.decimals(min_value=0, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=MAX_ADMIN_USD * 2, places=10),
    st.sampled_from([MAX_ADMIN_USD, MAX_ADMIN_USD + Decimal("1e-10"), Decimal("1e12")]),
)


@settings(
    FUZZ,  # one core for all examples; each example writes to a scope of its own
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(amount=amounts)
async def test_any_limit_or_grant_is_stored_or_refused_clearly(core: Core, amount: Decimal) -> None:
    """What the CLI, Slack and Discord parsers pass on (finite, not negative) reaches the ledger.

    Limits are refused above the maximum as early as `QuotaLimits` (as in the config file)."""
    member = Identity("discord", "g1", uuid.uuid4().hex)
    try:
        limits = QuotaLimits(daily_usd=amount)
    except ValidationError as refused:  # what `python -m bot check` says of a config file
        assert amount > MAX_ADMIN_USD and "the largest amount the bot accepts" in str(refused)
    else:
        await core.ledger.set_limits(member.user_key, limits)
    try:
        await core.ledger.grant(member.user_key, amount, "fuzz")
    except Exception as refused:
        assert_clear(refused, ("Amounts above", "more than $0"))
        assert amount > MAX_ADMIN_USD or amount == 0
    usage = await core.ledger.usage(member)
    limit = usage.user[0].limit
    assert limit is not None and limit <= 2 * MAX_ADMIN_USD + 1  # set and granted, or default


# --- the command line ------------------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["--config", NO_CONFIG, *argv])
        except SystemExit as exit:  # argparse's own usage errors
            code = exit.code if isinstance(exit.code, int) else 2
    return code, out.getvalue(), err.getvalue()


@FUZZ
@given(items=st.lists(st.text(max_size=30), max_size=5))
def test_parse_key_values_gives_values_or_names_the_bad_item(items: list[str]) -> None:
    try:
        parsed = parse_key_values(items)
    except Exception as refused:
        assert_clear(refused, ("key=value",))
    else:
        assert len(parsed) <= len(items)


key_value = st.one_of(
    st.text(max_size=30),
    st.tuples(
        st.one_of(
            st.sampled_from(sorted({p for m in MODELS for p in m.params})), st.text(max_size=8)
        ),
        st.one_of(st.sampled_from(NASTY + URLS), st.text(max_size=12), st.integers().map(str)),
    ).map("=".join),
)


@FUZZ
@given(
    model=st.one_of(st.sampled_from(MODEL_NAMES), st.text(max_size=20)),
    items=st.lists(key_value, max_size=5),
)
def test_cost_on_the_command_line_prints_a_price_or_exits_2(model: str, items: list[str]) -> None:
    code, out, err = run_cli("cost", model, *items)
    assert "Traceback" not in out + err
    if code == 0:
        assert out.startswith("$")
    else:
        assert code == 2 and err.strip(), (model, items)


# --- job ids from buttons and commands ----------------------------------------------------------


@settings(
    FUZZ,  # one core for all examples: they only read
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(job_id=st.one_of(st.text(max_size=30), st.sampled_from(NASTY)), body=json_value)
async def test_unknown_job_ids_and_webhook_bodies_are_refused_cleanly(
    core: Core, job_id: str, body: Any
) -> None:
    for attempt in (
        core.jobs.cancel(job_id, HERE, user="alice"),
        core.jobs.confirm(job_id, HERE, user="alice"),
        core.jobs.show_request(job_id, HERE),
        core.jobs.rerun_request(job_id, HERE, mode="reroll"),
    ):
        with pytest.raises(InvalidRequest) as refused:
            await attempt
        assert_clear(refused.value, ("not known",))
    assert await core.jobs.on_webhook(job_id, 0, "token", body) is False
