"""What a job costs, in Decimal dollars, by Runpod's billing rules.

`bound` prices a request before it runs (what the ledger holds): the most Runpod can bill for it
at its published price, from what is known before `/run` (prompt bytes and `max_tokens`, the
duration asked for, a recording's length). Where nothing bounds the bill, it is a configured
cap, marked so the member can be told. `actual` prices a finished job (what the ledger charges):
the output's own `cost` field when Runpod sent one, since that is what was billed, else the
model's rule applied to the actual output. Billing rounds up after the 10th decimal place, so
every amount here does too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation, localcontext
from typing import Any

from bot.config_fields import JobFields
from bot.errors import InvalidRequest
from bot.runpod.catalog import Model, PriceRule

BILLING_QUANTUM = Decimal("1e-10")
MEGAPIXEL = Decimal(1_000_000)
TOKENS_PER_PRICE = Decimal(1_000_000)
# Worst cases for what is only known afterwards; they size holds, never charges. A byte-level
# tokenizer makes at most one token per UTF-8 byte of the prompt; chat templates and system
# preambles add a few dozen more (gpt-oss's harmony header is about 60).
TEMPLATE_TOKENS = 128
# Speech is billed per second of audio: even slow narration says more than this a second.
SPEECH_SLOWEST_CHARS_PER_SECOND = 8

UNIT_LABELS: dict[str, str] = {
    "megapixel": "per megapixel",
    "image": "per image",
    "video": "per video",
    "second": "per second of video",
    "5_seconds": "per 5 seconds of video",
    "1k_characters": "per 1,000 characters",
    "1m_tokens": "per 1M tokens",
    "audio_second": "per second of audio",
}


def round_up(amount: Decimal) -> Decimal:
    """Runpod's billing precision: up to the next 1e-10 dollar, however large the amount."""
    with localcontext() as context:
        # Room for every digit left of the point plus the ten after it (the default 28 is not).
        context.prec = max(context.prec, amount.adjusted() + 12)
        return amount.quantize(BILLING_QUANTUM, rounding=ROUND_CEILING)


def exact_usd(amount: Decimal) -> str:
    """`$0.00524288`: every significant digit, no exponent, at least cents."""
    text = format(amount.normalize(), "f")
    if "." not in text:
        text += ".00"
    elif len(text.split(".")[1]) < 2:
        text += "0"
    return f"${text}"


def describe_price(model: Model) -> str:
    """The price in words, e.g. `$0.02 per megapixel` or `$0.25-$1.50 per video`."""
    rule = model.price
    label = UNIT_LABELS[rule.unit]
    output = _span(rule.table.values() if rule.table else [rule.usd], rule.estimate_usd)
    if rule.unit == "1m_tokens" and (rule.input_table or rule.input_usd is not None):
        inputs = _span(rule.input_table.values() or [rule.input_usd], None)
        if inputs != output:
            return f"{inputs} in / {output} out {label}"
    return f"{output} {label}"


def _span(prices: Iterable[Decimal | None], estimate_usd: Decimal | None) -> str:
    """`$0.25` or `$0.25-$1.50`; a hold above every listed price extends the range."""
    known = [price for price in prices if price is not None]
    if estimate_usd is not None:
        known.append(estimate_usd)
    low, high = min(known), max(known)
    return exact_usd(low) if low == high else f"{exact_usd(low)}-{exact_usd(high)}"


# Parameters that count billing units; a page may give no lower bound, but none can be negative.
QUANTITIES = (
    "max_tokens", "sampling_params.max_tokens", "num_images", "num_outputs", "duration",
    "width", "height",
)  # fmt: skip


@dataclass(frozen=True)
class Bound:
    """The most a request can cost; `known` is False when nothing bounds it before it runs and
    `amount` is a cap instead (the model's `estimate_usd`, else `jobs.unknown_length_hold_usd`)."""

    amount: Decimal
    known: bool = True


def estimate(model: Model, params: Mapping[str, Any]) -> Decimal:
    """What a validated request holds, as far as its parameters tell (`/cost`)."""
    return bound(model, params).amount


def bound(
    model: Model,
    params: Mapping[str, Any],
    jobs: JobFields | None = None,
    *,
    audio_seconds: float | None = None,
) -> Bound:
    """The most Runpod can bill for a validated request at its published price: what to hold.

    `audio_seconds` is the length of the recording a transcription sends, when it was read.
    """
    jobs = jobs or JobFields()
    for name in QUANTITIES:
        value = _value(params, name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise InvalidRequest(f"{name} must not be negative (got {value})")
    rule = model.price
    cap = Bound(round_up(jobs.unknown_length_hold_usd), known=False)
    if rule.estimate_usd is not None:
        return Bound(round_up(rule.estimate_usd), known=False)
    if rule.unit == "1m_tokens":
        max_tokens = _value(params, "max_tokens")
        if max_tokens is None:
            max_tokens = _value(params, "sampling_params.max_tokens")
        if max_tokens is None:
            return cap
        return Bound(_tokens(rule, params, prompt_token_bound(params), int(max_tokens)))
    if rule.unit == "1k_characters" and model.kind == "transcription":
        if audio_seconds is None:
            return cap
        characters = math.ceil(audio_seconds * jobs.transcript_chars_per_second)
        return Bound(round_up(_unit_price(rule, params) * characters / 1000))
    return Bound(round_up(_unit_price(rule, params) * _quantity(model, params)))


def prompt_token_bound(params: Mapping[str, Any]) -> int:
    """At most one token per UTF-8 byte of the text sent, plus the chat template's own."""
    return len(_text(params).encode("utf-8")) + TEMPLATE_TOKENS


def actual(
    model: Model, params: Mapping[str, Any], output: Any, *, audio_seconds: float | None = None
) -> Decimal:
    """The price of a finished job: Runpod's own `cost` when present, else the rule applied
    to the output (`audio_seconds`: how long the audio a speech model made lasts, when read)."""
    billed = reported_cost(output)
    if billed is not None:
        return round_up(billed)
    rule = model.price
    if rule.unit == "audio_second" and audio_seconds is not None:
        return round_up(_unit_price(rule, params) * max(1, math.ceil(audio_seconds)))
    body = output[0] if isinstance(output, list) and output else output
    if rule.unit == "1m_tokens" and isinstance(body, Mapping):
        usage = body.get("usage") or {}
        tokens_in = int(usage.get("input", usage.get("prompt_tokens", 0)) or 0)
        tokens_out = int(usage.get("output", usage.get("completion_tokens", 0)) or 0)
        return _tokens(rule, params, tokens_in, tokens_out)
    if model.kind == "transcription" and isinstance(body, Mapping):
        characters = len(str(body.get(model.output) or ""))
        return round_up(_unit_price(rule, params) * characters / 1000)
    return estimate(model, params)


def reported_cost(output: Any) -> Decimal | None:
    """The `cost` field Runpod puts in an output (a dict, or the first item of a list)."""
    body = output[0] if isinstance(output, list) and output else output
    if not isinstance(body, Mapping) or body.get("cost") is None:
        return None
    try:
        cost = Decimal(str(body["cost"]))
    except (InvalidOperation, ValueError):
        return None
    return cost if cost.is_finite() and cost >= 0 else None


def _tokens(rule: PriceRule, params: Mapping[str, Any], tokens_in: int, tokens_out: int) -> Decimal:
    out_price = _unit_price(rule, params)
    if rule.input_table:
        in_price = _lookup(rule, rule.input_table, params)
    else:
        in_price = rule.input_usd if rule.input_usd is not None else out_price
    return round_up((in_price * tokens_in + out_price * tokens_out) / TOKENS_PER_PRICE)


def _unit_price(rule: PriceRule, params: Mapping[str, Any]) -> Decimal:
    if not rule.table:
        assert rule.usd is not None
        return rule.usd
    return _lookup(rule, rule.table, params)


def _lookup(rule: PriceRule, table: Mapping[str, Decimal], params: Mapping[str, Any]) -> Decimal:
    key = ",".join(_key_part(_value(params, name)) for name in rule.by)
    try:
        return table[key]
    except KeyError:
        shown = ", ".join(f"{name}={_key_part(_value(params, name))}" for name in rule.by)
        choices = "; ".join(sorted(table))
        raise InvalidRequest(f"no price for {shown}; priced combinations: {choices}") from None


def _key_part(value: Any) -> str:
    """A parameter value as it appears in a price table key: booleans as JSON writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _value(params: Mapping[str, Any], name: str) -> Any:
    """A parameter of a checked input, where a dotted name is a field of a nested object."""
    if name in params:
        return params[name]
    head, dot, rest = name.partition(".")
    inner = params.get(head)
    return _value(inner, rest) if dot and isinstance(inner, Mapping) else None


def _text(params: Mapping[str, Any]) -> str:
    """The text a request sends: its prompt, or the content of its chat messages."""
    messages = params.get("messages")
    if isinstance(messages, list):
        return "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, Mapping))
    return str(params.get("prompt") or params.get("text") or "")


def _quantity(model: Model, params: Mapping[str, Any]) -> Decimal:
    """How many billing units a request produces, from its parameters."""
    unit = model.price.unit
    count = Decimal(int(params.get("num_images") or params.get("num_outputs") or 1))
    if unit == "megapixel":
        width, height = image_size(params)
        return Decimal(width * height) / MEGAPIXEL * count
    if unit == "image":
        return count
    if unit == "second":
        return Decimal(int(params.get("duration") or 5))
    if unit == "5_seconds":
        return Decimal(math.ceil(int(params.get("duration") or 5) / 5))
    if unit == "1k_characters":
        return Decimal(len(_text(params))) / 1000
    if unit == "audio_second":
        characters = len(_text(params))
        return Decimal(max(1, math.ceil(characters / SPEECH_SLOWEST_CHARS_PER_SECOND)))
    return Decimal(1)


def image_size(params: Mapping[str, Any]) -> tuple[int, int]:
    """Output size from `width`/`height` or a `size` like `1024*768` / `1024x768`."""
    if params.get("width") and params.get("height"):
        return int(params["width"]), int(params["height"])
    size = str(params.get("size") or "")
    for sep in ("*", "x", "X"):
        if sep in size:
            left, _, right = size.partition(sep)
            if left.strip().isdigit() and right.strip().isdigit():
                return int(left), int(right)
    return 1024, 1024
