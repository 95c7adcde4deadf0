"""Prices in Decimal dollars, to Runpod's last billed digit.

The expected figures are copied by hand from each model page's pricing table or cost section (and
the seed's four worked examples), not computed from the catalog, so a mistyped price fails here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bot.config import JobSettings
from bot.errors import InvalidRequest
from bot.runpod import pricing
from bot.runpod.catalog import load_catalog
from tests.runpod.test_catalog import valid_params

CATALOG = load_catalog()
D = Decimal


def estimate(model_id: str, **params: Any) -> Decimal:
    """The hold for a request of `model_id`: required parameters filled in, then validated."""
    model = CATALOG.get(model_id)
    return pricing.estimate(model, model.validate_params({**valid_params(model), **params}))


def actual(model_id: str, output: Any, **params: Any) -> Decimal:
    model = CATALOG.get(model_id)
    return pricing.actual(model, model.validate_params({**valid_params(model), **params}), output)


# --- the seed's worked examples -------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "side", "expected"),
    [
        ("flux-dev", 512, D("0.00524288")),
        ("flux-dev", 1024, D("0.02097152")),
        ("flux-schnell", 512, D("0.0006291456")),
        ("flux-schnell", 1024, D("0.0025165824")),
    ],
)
def test_seed_figures_exactly(model_id: str, side: int, expected: Decimal) -> None:
    amount = estimate(model_id, width=side, height=side)
    assert amount == expected
    assert pricing.exact_usd(amount) == f"${expected}"


# --- rounding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (D("0.0000000001"), D("0.0000000001")),  # exactly on the 10th decimal: unchanged
        (D("0.1234567890"), D("0.1234567890")),
        (D("0.00000000001"), D("0.0000000001")),  # one beyond: up to the next 1e-10
        (D("0.00000000010000000001"), D("0.0000000002")),
        (D("1.23456789011"), D("1.2345678902")),
        (D("0.00524288"), D("0.00524288")),
        (D("0"), D("0")),
        (D("0E-20"), D("0")),
        (D("1000000000000000000000000000000.00000000001"), D("1000000000000000000000000000000.0000000001")),
        (D("99999999999999999999.99999999999"), D("100000000000000000000.0000000000")),
    ],
)  # fmt: skip
def test_round_up(amount: Decimal, expected: Decimal) -> None:
    rounded = pricing.round_up(amount)
    assert rounded == expected
    assert rounded.as_tuple().exponent == -10


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (D("0.0052428800"), "$0.00524288"),
        (D("0E-10"), "$0.00"),
        (D("0.5"), "$0.50"),
        (D("2"), "$2.00"),
        (D("1E+1"), "$10.00"),
        (D("0.0000000001"), "$0.0000000001"),
    ],
)
def test_exact_usd(amount: Decimal, text: str) -> None:
    assert pricing.exact_usd(amount) == text


# --- every page's price table, before the run -----------------------------------------------

PAGE_PRICES: list[tuple[str, dict[str, Any], str]] = [
    # per megapixel (the pages' tables round these; the rule is exact)
    ("flux-dev", {"width": 1536, "height": 1536}, "0.04718592"),
    ("flux-schnell", {"width": 1536, "height": 1536}, "0.0056623104"),
    # per image
    ("flux-kontext-dev", {}, "0.025"),
    ("nano-banana-edit", {}, "0.038"),
    ("nano-banana-2-edit", {"resolution": "1k"}, "0.0875"),
    ("nano-banana-2-edit", {"resolution": "2k"}, "0.13"),
    ("nano-banana-2-edit", {"resolution": "4k"}, "0.175"),
    ("nano-banana-pro-edit", {"resolution": "1k"}, "0.14"),
    ("nano-banana-pro-edit", {"resolution": "2k"}, "0.14"),
    ("nano-banana-pro-edit", {"resolution": "4k"}, "0.24"),
    ("p-image-edit", {}, "0.01"),
    ("p-image-t2i", {}, "0.005"),
    ("qwen-image", {}, "0.02"),
    ("qwen-image-lora", {}, "0.025"),
    ("qwen-image-edit", {}, "0.02"),
    ("qwen-image-edit-2511", {}, "0.02"),
    ("qwen-image-edit-2511-lora", {}, "0.025"),
    ("seedream-4-t2i", {}, "0.027"),
    ("seedream-4-edit", {}, "0.027"),
    ("wan-2-6-t2i", {}, "0.03"),
    ("z-image-turbo", {}, "0.005"),
    # per video, by resolution and/or duration
    ("infinitetalk", {"size": "480p"}, "0.25"),
    ("infinitetalk", {"size": "720p"}, "0.50"),
    ("sora-2", {"duration": 4}, "0.40"),
    ("sora-2", {"duration": 8}, "0.80"),
    ("sora-2", {"duration": 12}, "1.20"),
    ("sora-2-pro", {"size": "720p", "duration": 4}, "1.20"),
    ("sora-2-pro", {"size": "720p", "duration": 8}, "2.40"),
    ("sora-2-pro", {"size": "720p", "duration": 12}, "3.60"),
    ("sora-2-pro", {"size": "1080p", "duration": 4}, "2.00"),
    ("sora-2-pro", {"size": "1080p", "duration": 8}, "4.00"),
    ("sora-2-pro", {"size": "1080p", "duration": 12}, "6.00"),
    ("wan-2-2-i2v", {"duration": 5}, "0.30"),
    ("wan-2-2-i2v", {"duration": 8}, "0.48"),
    ("wan-2-2-i2v", {"duration": 10}, "0.60"),
    ("wan-2-2-i2v", {"duration": 15}, "0.90"),
    ("wan-2-2-i2v-lora", {"duration": 5}, "0.35"),
    ("wan-2-2-i2v-lora", {"duration": 8}, "0.56"),
    ("wan-2-5", {"size": "832*480", "duration": 5}, "0.25"),
    ("wan-2-5", {"size": "480*832", "duration": 10}, "0.50"),
    ("wan-2-5", {"size": "1280*720", "duration": 5}, "0.50"),
    ("wan-2-5", {"size": "720*1280", "duration": 10}, "1.00"),
    ("wan-2-5", {"size": "1920*1080", "duration": 5}, "0.75"),
    ("wan-2-5", {"size": "1920*1080", "duration": 10}, "1.50"),
    ("wan-2-6-t2v", {"size": "1280*720", "duration": 5}, "0.50"),
    ("wan-2-6-t2v", {"size": "1280*720", "duration": 10}, "1.00"),
    ("wan-2-6-t2v", {"size": "720*1280", "duration": 15}, "1.50"),
    ("wan-2-6-t2v", {"size": "1920*1080", "duration": 5}, "0.75"),
    ("wan-2-6-t2v", {"size": "1080*1920", "duration": 10}, "1.50"),
    ("wan-2-6-t2v", {"size": "1920*1080", "duration": 15}, "2.25"),
    # per second of video, some by resolution (and draft mode)
    ("kling-video-o1-r2v", {"duration": 3}, "0.336"),
    ("kling-video-o1-r2v", {"duration": 5}, "0.56"),
    ("kling-video-o1-r2v", {"duration": 10}, "1.12"),
    ("p-video", {"resolution": "720p", "duration": 5}, "0.10"),
    ("p-video", {"resolution": "720p", "duration": 10}, "0.20"),
    ("p-video", {"resolution": "1080p", "duration": 5}, "0.20"),
    ("p-video", {"resolution": "1080p", "duration": 10}, "0.40"),
    ("p-video", {"resolution": "720p", "duration": 1, "draft": True}, "0.005"),
    ("p-video", {"resolution": "1080p", "duration": 1, "draft": True}, "0.01"),
    ("seedance-1-5-pro", {"resolution": "720p", "duration": 5}, "0.26"),
    ("seedance-1-5-pro", {"resolution": "480p", "duration": 5}, "0.12"),
    ("vidu-q3-i2v", {"duration": 5}, "0.75"),
    ("vidu-q3-i2v", {"duration": 10}, "1.50"),
    ("vidu-q3-i2v", {"duration": 16}, "2.40"),
    ("vidu-q3-t2v", {"duration": 5}, "0.75"),
    ("vidu-q3-t2v", {"duration": 10}, "1.50"),
    ("vidu-q3-t2v", {"duration": 16}, "2.40"),
    ("wan-2-6-i2v", {"size": "1280*720", "duration": 5}, "0.50"),
    ("wan-2-6-i2v", {"size": "1280*720", "duration": 10}, "1.00"),
    ("wan-2-6-i2v", {"size": "1280*720", "duration": 15}, "1.50"),
    ("wan-2-6-i2v", {"size": "1920*1080", "duration": 5}, "0.75"),
    ("wan-2-6-i2v", {"size": "1920*1080", "duration": 10}, "1.50"),
    ("wan-2-6-i2v", {"size": "1920*1080", "duration": 15}, "2.25"),
    # per 5 seconds of video
    ("kling-v2-1", {"duration": 5}, "0.45"),
    ("kling-v2-1", {"duration": 10}, "0.90"),
    ("wan-2-1-i2v", {"duration": 5}, "0.30"),
    ("wan-2-1-i2v", {"duration": 10}, "0.60"),
    ("wan-2-1-i2v", {"duration": 15}, "0.90"),
    # billed on the reference clip's length, known afterwards: hold the page's highest price
    ("kling-v2-6-motion-control", {}, "0.63"),
    # per 1,000 characters of speech
    ("minimax-speech", {"prompt": "x" * 500}, "0.025"),
    ("minimax-speech", {"prompt": "x" * 1000}, "0.05"),
    ("minimax-speech", {"prompt": "x" * 10000}, "0.50"),
    # per second of audio: at most 8 characters a second, so 150 characters hold 19 s
    ("chatterbox-turbo", {"prompt": "x" * 150}, "0.019"),
    # transcription: no recording length known, so the cap (jobs.unknown_length_hold_usd)
    ("whisper-v3-large", {}, "0.50"),
]


@pytest.mark.parametrize(
    ("model_id", "params", "expected"),
    PAGE_PRICES,
    ids=[f"{m}-{'-'.join(map(str, p.values()))}" for m, p, _ in PAGE_PRICES],
)
def test_page_price_tables(model_id: str, params: dict[str, Any], expected: str) -> None:
    assert estimate(model_id, **params) == D(expected)


def test_price_without_a_table_row_is_refused_by_name() -> None:
    sora = CATALOG.get("sora-2")
    with pytest.raises(
        InvalidRequest, match=r"no price for duration=5; priced combinations: 12; 4; 8"
    ):
        pricing.estimate(sora, {"prompt": "x", "duration": 5})


# --- after the run ---------------------------------------------------------------------------

TOKEN_PRICES: list[tuple[str, dict[str, Any], int, int, str]] = [
    ("qwen3-32b", {}, 400, 600, "0.01"),
    ("qwen3-32b", {}, 0, 10_000, "0.10"),
    ("qwen3-32b", {}, 50_000, 50_000, "1.00"),
    ("qwen3-32b", {}, 1_000_000, 0, "10.00"),
    ("cogito-671b", {}, 0, 1_000, "0.0005"),
    ("cogito-671b", {}, 20, 980, "0.0005"),
    ("cogito-671b", {}, 1_000_000, 0, "0.50"),
    ("gpt-oss-120b", {}, 15, 985, "0.01"),
    ("gpt-oss-120b", {}, 0, 1_000_000, "10.00"),
    ("granite-4", {}, 1_000, 0, "0.01"),
    ("granite-4", {}, 40_000, 60_000, "1.00"),
    ("moonshot-kimi", {"model": "kimi-k2.6"}, 1_000, 0, "0.00095"),
    ("moonshot-kimi", {"model": "kimi-k2.6"}, 0, 1_000, "0.004"),
    ("moonshot-kimi", {"model": "kimi-k2.7-code"}, 100_000, 0, "0.095"),
    ("moonshot-kimi", {"model": "kimi-k2.7-code"}, 0, 100_000, "0.40"),
    ("moonshot-kimi", {"model": "kimi-k3"}, 1_000, 0, "0.003"),
    ("moonshot-kimi", {"model": "kimi-k3"}, 0, 1_000, "0.015"),
    ("moonshot-kimi", {"model": "kimi-k3"}, 1_000_000, 1_000_000, "18.00"),
    ("moonshot-kimi", {}, 1_000_000, 1_000_000, "4.95"),  # the default variant, K2.6
]


@pytest.mark.parametrize(
    ("model_id", "params", "tokens_in", "tokens_out", "expected"), TOKEN_PRICES
)
def test_token_prices_from_usage(
    model_id: str, params: dict[str, Any], tokens_in: int, tokens_out: int, expected: str
) -> None:
    native = [
        {"choices": [{"tokens": ["hi"]}], "usage": {"input": tokens_in, "output": tokens_out}}
    ]
    openai = {"usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out}}
    assert actual(model_id, native, **params) == D(expected)
    assert actual(model_id, openai, **params) == D(expected)


def test_token_estimate_holds_the_prompt_and_max_tokens() -> None:
    # 400 bytes + 128 template tokens in at most, up to 512 out, at $10 per 1M.
    assert estimate("qwen3-32b", prompt="x" * 400) == D("0.0104")
    # A token per UTF-8 byte: 200 "é" are 400 bytes.
    assert estimate("qwen3-32b", prompt="é" * 200) == D("0.0104")
    # Granite's max_tokens is nested under sampling_params.
    assert estimate("granite-4", messages="x" * 400, **{"sampling_params.max_tokens": 900}) == D(
        "0.01428"
    )
    # Kimi K3: 4,128 tokens in at $3, 2,048 out at $15.
    assert estimate("moonshot-kimi", messages="x" * 4000, model="kimi-k3") == D("0.043104")


def test_a_token_bound_covers_what_runpod_bills_for_the_longest_reply() -> None:
    """However the prompt tokenizes, a reply of `max_tokens` cannot bill above the hold."""
    held = estimate("qwen3-32b", prompt="a fox " * 100, max_tokens=2000)
    model = CATALOG.get("qwen3-32b")
    usage = {"usage": {"input": 600, "output": 2000}}  # one token per byte, the worst case
    assert pricing.actual(model, {}, [usage]) <= held
    assert estimate("qwen3-32b", prompt="hi", max_tokens=999_999_999_999) >= D("9999999.99")


@pytest.mark.parametrize(
    ("model_id", "params", "expected"),
    [
        ("vidu-q3-t2v", {"duration": 16}, "2.40"),  # 16 s x $0.15
        ("seedance-1-5-pro", {"duration": 12, "resolution": "720p"}, "0.624"),  # 12 s x $0.052
        ("kling-v2-1", {"duration": 10}, "0.90"),  # two 5 s blocks x $0.45
        ("chatterbox-turbo", {"prompt": "x" * 800}, "0.10"),  # at most 100 s x $0.001
        ("minimax-speech", {"prompt": "x" * 800}, "0.04"),  # 800 characters x $0.05 / 1,000
    ],
)
def test_video_and_speech_hold_duration_times_rate(
    model_id: str, params: dict[str, Any], expected: str
) -> None:
    model = CATALOG.get(model_id)
    checked = model.validate_params({**valid_params(model), **params})
    assert pricing.bound(model, checked) == pricing.Bound(D(expected))


def test_a_transcription_holds_its_worst_case_transcript() -> None:
    whisper = CATALOG.get("whisper-v3-large")
    checked = whisper.validate_params({"audio": "https://example.com/a.wav"})
    jobs = JobSettings(transcript_chars_per_second=40, unknown_length_hold_usd=D("0.75"))
    # 60 s x 40 characters x $0.05 / 1,000
    assert pricing.bound(whisper, checked, jobs, audio_seconds=60) == pricing.Bound(D("0.12"))
    assert pricing.bound(whisper, checked, jobs) == pricing.Bound(D("0.75"), known=False)
    motion = CATALOG.get("kling-v2-6-motion-control")  # billed by a reference video's length
    assert pricing.bound(motion, motion.validate_params(valid_params(motion))).known is False


@pytest.mark.parametrize(
    ("characters", "expected"), [(500, "0.025"), (1000, "0.05"), (10_000, "0.50")]
)
def test_transcription_is_billed_per_1000_characters_transcribed(
    characters: int, expected: str
) -> None:
    assert actual("whisper-v3-large", {"transcription": "a" * characters}) == D(expected)


@pytest.mark.parametrize(
    ("model_id", "output", "params", "expected"),
    [
        ("flux-dev", {"image_url": "u", "cost": 0.02097152}, {"width": 512, "height": 512}, "0.02097152"),
        ("whisper-v3-large", {"transcription": "a" * 1000, "cost": 0.0065}, {}, "0.0065"),
        ("qwen3-32b", [{"cost": 0.0001, "usage": {"input": 10, "output": 10**6}}], {}, "0.0001"),
        ("kling-v2-6-motion-control", {"video_url": "u", "cost": 0.42}, {}, "0.42"),
        ("sora-2", {"video_url": "u", "cost": "1.2"}, {"duration": 12}, "1.2"),
        ("flux-dev", {"image_url": "u", "cost": 1e-11}, {}, "0.0000000001"),
        ("p-image-t2i", {"image_url": "u", "cost": 0}, {}, "0"),
    ],
)  # fmt: skip
def test_actual_prefers_the_outputs_cost(
    model_id: str, output: Any, params: dict[str, Any], expected: str
) -> None:
    assert actual(model_id, output, **params) == D(expected)


@pytest.mark.parametrize("cost", [None, "abc", -1, float("nan"), float("inf"), [1]])
def test_unusable_cost_falls_back_to_the_rule(cost: Any) -> None:
    output = {"image_url": "u", "cost": cost}
    assert actual("flux-dev", output, width=512, height=512) == D("0.00524288")


def test_actual_without_cost_uses_the_rule_on_the_request() -> None:
    assert actual("wan-2-5", {"video_url": "u"}, size="1920*1080", duration=10) == D("1.50")
    assert actual("kling-v2-6-motion-control", {"video_url": "u"}) == D("0.63")
    assert pricing.reported_cost("not a dict") is None
    assert pricing.reported_cost([]) is None


def test_every_model_has_a_page_price_case() -> None:
    covered = {row[0] for row in PAGE_PRICES} | {row[0] for row in TOKEN_PRICES}
    assert covered == {model.id for model in CATALOG}


# --- the price in words ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "text"),
    [
        ("flux-dev", "$0.02 per megapixel"),
        ("flux-schnell", "$0.0024 per megapixel"),
        ("p-image-t2i", "$0.005 per image"),
        ("nano-banana-pro-edit", "$0.14-$0.24 per image"),
        ("sora-2", "$0.40-$1.20 per video"),
        ("wan-2-5", "$0.25-$1.50 per video"),
        ("kling-v2-6-motion-control", "$0.21-$0.63 per video"),
        ("vidu-q3-t2v", "$0.15 per second of video"),
        ("p-video", "$0.005-$0.04 per second of video"),
        ("kling-v2-1", "$0.45 per 5 seconds of video"),
        ("whisper-v3-large", "$0.05 per 1,000 characters"),
        ("minimax-speech", "$0.05 per 1,000 characters"),
        ("qwen3-32b", "$10.00 per 1M tokens"),
        ("cogito-671b", "$0.50 per 1M tokens"),
        ("moonshot-kimi", "$0.95-$3.00 in / $4.00-$15.00 out per 1M tokens"),
        ("chatterbox-turbo", "$0.001 per second of audio"),
    ],
)
def test_describe(model_id: str, text: str) -> None:
    assert pricing.describe_price(CATALOG.get(model_id)) == text


def test_describe_split_token_prices() -> None:
    catalog = load_catalog(
        {"qwen3-32b": {"price": {"unit": "1m_tokens", "usd": "2", "input_usd": "0.5"}}}
    )
    assert pricing.describe_price(catalog.get("qwen3-32b")) == "$0.50 in / $2.00 out per 1M tokens"


@pytest.mark.parametrize(
    ("params", "size"),
    [
        ({"width": 512, "height": 768}, (512, 768)),
        ({"size": "1280*720"}, (1280, 720)),
        ({"size": "1024x768"}, (1024, 768)),
        ({"size": "720p"}, (1024, 1024)),
        ({}, (1024, 1024)),
    ],
)
def test_image_size(params: dict[str, Any], size: tuple[int, int]) -> None:
    assert pricing.image_size(params) == size
