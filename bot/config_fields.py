"""The fields of the sections a quote reads (`[jobs]`, `[policy]`, `[quotas]`), as plain classes.

Their defaults and limits are defined here once: the pydantic sections of bot/config_sections.py
inherit them, and `read_section` reads a table into them without pydantic, which takes longer to
import than `python -m bot cost` may take in all (docs/benchmarks.md, "Start-up of the command
line"). `read_section` accepts only what pydantic certainly accepts as it does, and answers None
for anything else, so that pydantic judges it and words what is wrong.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# The largest limit or grant an admin can give (in the config, the CLI or chat): far above any
# chat budget, and small enough that amounts in units (and sums of many of them) stay within
# SQLite's 64-bit integers.
MAX_ADMIN_USD = Decimal(100_000)


@dataclass(frozen=True)
class Limit:
    """A number's bounds, as pydantic's `Field(ge=..., gt=..., le=...)` sets them."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        bounds = {"ge": self.ge, "gt": self.gt, "le": self.le}
        return {**handler(source), **{k: v for k, v in bounds.items() if v is not None}}

    def holds(self, value: Decimal | float) -> bool:
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
        )


@dataclass(frozen=True)
class Check:
    """A check pydantic runs after the type's own (an error words the ValueError it raises)."""

    check: Callable[[Any], Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(self.check, handler(source))


def _at_most_admin_maximum(amount: Decimal) -> Decimal:
    if amount > MAX_ADMIN_USD:
        raise ValueError(
            f"must be at most ${MAX_ADMIN_USD:,.2f} (the largest amount the bot accepts)"
        )
    return amount


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


# A spend limit, or a hold, as the config gives it.
AdminUsd = Annotated[Decimal, Limit(ge=0), Check(_at_most_admin_maximum)]


class Fields:
    """A section's fields; the class attributes are the defaults of those the file leaves out.

    A default list or dict is shared, never changed: pydantic copies it for each section it
    makes, and a quote only reads it (hence the `noqa: RUF012`).
    """

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


class JobFields(Fields):
    # Ask the user to confirm before running anything estimated above this.
    confirm_above_usd: Annotated[Decimal, Limit(ge=0)] = Decimal("0.50")
    max_per_user: Annotated[int, Limit(ge=1)] = 2
    max_global: Annotated[int, Limit(ge=1)] = 20
    timeout_s: Annotated[float, Limit(gt=0)] = 1800.0
    progress_interval_s: Annotated[float, Limit(ge=0)] = 2.0
    max_download_mb: Annotated[float, Limit(gt=0)] = 100.0
    download_timeout_s: Annotated[float, Limit(gt=0)] = 120.0
    # Re-deliver identical seeded requests from the archive (needs storage.media_dir).
    cache: bool = True
    # Holds are upper bounds of what Runpod can bill (README, "How the money stays right").
    # A transcript is billed per character: hold for this many characters a second of the
    # recording (fast speech is about 20).
    transcript_chars_per_second: Annotated[int, Limit(ge=1)] = 40
    # What to hold when nothing bounds a job's bill before it runs (a recording whose length
    # cannot be read); the member is told. A bill above it is charged and counted as overage.
    unknown_length_hold_usd: AdminUsd = Decimal("0.50")
    # A reply to an /ask answer sends the earlier turns along, the newest that fit this many
    # tokens (counted as UTF-8 bytes of text, the worst case holds are priced at).
    conversation_max_tokens: Annotated[int, Limit(ge=0)] = 8000
    # Runpod retires models: after this many /run calls in a row answered 404 (no such
    # endpoint) a model is hidden from menus and refused until `python -m bot models --enable`.
    hide_model_after_404s: Annotated[int, Limit(ge=1)] = 3
    # The model each command uses when the user names none.
    default_models: dict[str, str] = {  # noqa: RUF012
        "imagine": "flux-schnell",
        "edit": "qwen-image-edit",
        "video": "wan-2-5",
        "transcribe": "whisper-v3-large",
        "ask": "qwen3-32b",
        "speak": "minimax-speech",
    }


class ChannelFields(Fields):
    models: list[str] | None = None  # None: every model
    commands: list[str] | None = None  # None: every command

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """Inside `PolicySettings`, pydantic checks a channel's table as a `ChannelPolicy`."""
        from bot.config_sections import ChannelPolicy

        return handler(ChannelPolicy)


class PolicyFields(Fields):
    allow_dms: bool = True
    blocked_terms: list[str] = []  # noqa: RUF012
    # Channel id -> what may run there.
    channels: Mapping[str, ChannelFields] = {}


class LimitFields(Fields):
    """Spend limits for one scope; `None` means no limit for that period."""

    daily_usd: AdminUsd | None = None
    weekly_usd: AdminUsd | None = None
    monthly_usd: AdminUsd | None = None


class PersonalFields(LimitFields):
    enabled: bool = False
    monthly_usd: AdminUsd | None = Decimal("5.00")


class QuotaFields(Fields):
    """The per-member limits and what they apply to. The nested sections' defaults are pydantic
    objects (`QuotaSettings`): a quote reads the quotas only with a ledger, read by pydantic."""

    # Default per-user limits.
    daily_usd: AdminUsd | None = Decimal("1.00")
    weekly_usd: AdminUsd | None = None
    monthly_usd: AdminUsd | None = Decimal("10.00")
    # Default limits shared by a whole server/workspace.
    workspace: LimitFields
    # Each member's own pool for personal use (instead of a server's).
    personal: PersonalFields
    # Role name or id -> limits; the most generous of a user's roles wins.
    roles: Mapping[str, LimitFields]
    # "platform:workspace:user" identities (or bare user ids) with no limit at all.
    unlimited_users: list[str] = []  # noqa: RUF012
    timezone: Annotated[str, Check(_known_zone)] = "UTC"
    # Percentages of a limit at which the user is warned after a charge.
    thresholds: list[int] = [80, 100]  # noqa: RUF012
    # Holds older than this whose job is not running are released by the sweeper.
    hold_max_age_minutes: Annotated[int, Limit(ge=1)] = 120


F = TypeVar("F", bound=Fields)


class _Unsure(Exception):
    """pydantic has to judge this value."""


def read_section(fields: type[F], table: object) -> F | None:
    """`table` read into `fields` as pydantic would read it; None when pydantic has to judge it
    (a key it does not know, a type it would convert or refuse, a value outside the limits)."""
    try:
        return _section(fields, table)
    except _Unsure:
        return None


def _section(fields: type[F], table: object) -> F:
    if not isinstance(table, dict):
        raise _Unsure
    hints = get_type_hints(fields, include_extras=True)
    if not set(table) <= set(hints):
        raise _Unsure
    return fields(**{key: _value(hints[key], value) for key, value in table.items()})


def _value(kind: Any, value: object) -> Any:
    origin, args = get_origin(kind), get_args(kind)
    if origin is Annotated:
        found = _value(args[0], value)
        for rule in kind.__metadata__:
            if isinstance(rule, Limit) and not rule.holds(found):
                raise _Unsure
            if isinstance(rule, Check):
                _checked(rule, found)
        return found
    if origin in (Union, UnionType):  # `X | None`: TOML has no null, so the value is an X
        (kind,) = [arg for arg in args if arg is not type(None)]
        return _value(kind, value)
    if origin is list and isinstance(value, list):
        return [_value(args[0], item) for item in value]
    if origin in (dict, Mapping) and isinstance(value, dict):
        return {_value(args[0], k): _value(args[1], item) for k, item in value.items()}
    if isinstance(kind, type) and issubclass(kind, Fields):
        return _section(kind, value)
    return _scalar(kind, value)


def _scalar(kind: Any, value: object) -> Any:
    """A value of exactly its type, or a number pydantic converts without a doubt."""
    if type(value) is kind:
        return value
    if kind is Decimal and type(value) is str and re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
        return Decimal(value)
    if kind not in (Decimal, float) or type(value) not in (int, float):
        raise _Unsure
    if type(value) is float and not math.isfinite(value):
        raise _Unsure
    try:
        return Decimal(str(value)) if kind is Decimal else float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int beyond any float
        raise _Unsure from None


def _checked(rule: Check, value: object) -> None:
    try:
        rule.check(value)
    except ValueError:
        raise _Unsure from None
