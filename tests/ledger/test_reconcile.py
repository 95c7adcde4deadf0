"""`python -m bot reconcile` and the periodic check against a fake Runpod billing API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bot.app import open_core
from bot.cli.main import main
from tests.conftest import API_KEY, make_settings
from tests.discord.support import discord_settings
from tests.discord.support import running_bot as running_discord_bot
from tests.fakes.discord import FakeDiscord, point_discord_py_at
from tests.fakes.runpod import FakeRunpod
from tests.fakes.runpod_billing import FakeRunpodBilling
from tests.fakes.slack import FakeSlack
from tests.ledger.support import ALICE, BOB, Clock, open_ledger, quotas
from tests.slack.support import CHANNEL, populate
from tests.slack.support import running_bot as running_slack_bot

DAY1 = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
SPAN = ["--since", "2026-03-09", "--until", "2026-03-10"]


@pytest.fixture
async def billing() -> AsyncIterator[FakeRunpodBilling]:
    async with FakeRunpodBilling(api_key=API_KEY) as fake:
        yield fake


def write_config(tmp_path: Path, billing: FakeRunpodBilling, *, key: str = API_KEY) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[runpod]
api_key = "{key}"
rest_url = "{billing.rest_url}"
max_retries = 2
backoff_base_s = 0.01
[storage]
database = "{tmp_path / "bot.db"}"
""",
        encoding="utf-8",
    )
    return config


async def charge(tmp_path: Path, *jobs: tuple[datetime, str]) -> None:
    """Settle one job per (instant, amount) in the ledger, at that instant."""
    clock = Clock()
    async with open_ledger(tmp_path / "bot.db", quotas(), clock) as ledger:
        for n, (at, amount) in enumerate(jobs):
            clock.now = at
            who = ALICE if n % 2 else BOB
            await ledger.hold(f"job{n}", who, Decimal(amount), model="flux-dev")
            await ledger.settle(f"job{n}", Decimal(amount))


async def reconcile(
    config: Path, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, ["--config", str(config), "reconcile", *argv])
    out, err = capsys.readouterr()
    assert API_KEY not in out + err
    return code, out, err


def line_for(out: str, day: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(day))


async def test_equal_days_agree(
    tmp_path: Path, billing: FakeRunpodBilling, capsys: pytest.CaptureFixture[str]
) -> None:
    await charge(tmp_path, (DAY1, "0.10"), (DAY1 + timedelta(hours=3), "0.20"), (DAY2, "1.25"))
    billing.spend(DAY1, "0.30")
    billing.spend(DAY2, "1.25")
    code, out, _ = await reconcile(write_config(tmp_path, billing), capsys, *SPAN)
    assert code == 0
    assert "$0.30" in line_for(out, "2026-03-09") and "equal" in line_for(out, "2026-03-09")
    assert "$1.25" in line_for(out, "2026-03-10") and "equal" in line_for(out, "2026-03-10")
    # The whole span was asked for in UTC days.
    assert billing.requests[-1]["startTime"] == "2026-03-09T00:00:00Z"
    assert billing.requests[-1]["endTime"] == "2026-03-11T00:00:00Z"
    assert billing.requests[-1]["bucketSize"] == "day"


async def test_ledger_lower_is_other_spend_on_the_key(
    tmp_path: Path, billing: FakeRunpodBilling, capsys: pytest.CaptureFixture[str]
) -> None:
    await charge(tmp_path, (DAY1, "0.30"))
    billing.spend(DAY1, "0.30")
    billing.spend(DAY1 + timedelta(hours=1), "2.00")  # another program using the same key
    code, out, _ = await reconcile(write_config(tmp_path, billing), capsys, *SPAN)
    assert code == 0
    line = line_for(out, "2026-03-09")
    assert "ledger lower" in line and "+$2.00" in line
    assert "other software uses the same key" in out


async def test_ledger_higher_is_flagged_as_a_bug(
    tmp_path: Path, billing: FakeRunpodBilling, capsys: pytest.CaptureFixture[str]
) -> None:
    await charge(tmp_path, (DAY2, "0.50"), (DAY2, "0.50"))
    billing.spend(DAY2, "0.50")
    code, out, _ = await reconcile(write_config(tmp_path, billing), capsys, *SPAN)
    assert code == 1
    assert "LEDGER HIGHER" in line_for(out, "2026-03-10")
    assert "-$0.50" in line_for(out, "2026-03-10")
    assert "equal" in line_for(out, "2026-03-09")  # nothing either side that day
    assert "!! The ledger charged more than Runpod billed on 1 day(s)" in out


@pytest.mark.parametrize(
    ("status", "retry_after", "says"),
    [
        (401, None, "refused the API key (401)"),
        (403, None, "lacks read access to billing (403)"),
        (429, 0, "rate limiting this key (429)"),
        (502, None, "is failing (HTTP 502)"),
    ],
)
async def test_billing_api_errors_exit_2_with_a_clear_message(
    tmp_path: Path,
    billing: FakeRunpodBilling,
    capsys: pytest.CaptureFixture[str],
    status: int,
    retry_after: int | None,
    says: str,
) -> None:
    await charge(tmp_path, (DAY1, "0.30"))
    billing.fail_next(status, retry_after=retry_after, count=10)
    code, out, err = await reconcile(write_config(tmp_path, billing), capsys, *SPAN)
    assert code == 2
    assert says in err
    assert "<html" not in err and "Traceback" not in err
    assert out == ""


async def test_a_wrong_key_is_refused_by_the_api(
    tmp_path: Path, billing: FakeRunpodBilling, capsys: pytest.CaptureFixture[str]
) -> None:
    await charge(tmp_path, (DAY1, "0.30"))
    config = write_config(tmp_path, billing, key="rp_wrong_key")
    code, _, err = await reconcile(config, capsys, *SPAN)
    assert code == 2
    assert "refused the API key (401)" in err and "rp_wrong_key" not in err


async def test_one_429_is_waited_out(
    tmp_path: Path, billing: FakeRunpodBilling, capsys: pytest.CaptureFixture[str]
) -> None:
    await charge(tmp_path, (DAY1, "0.30"))
    billing.spend(DAY1, "0.30")
    billing.fail_next(429, retry_after=1)
    code, out, _ = await reconcile(write_config(tmp_path, billing), capsys, *SPAN)
    assert code == 0
    assert "equal" in line_for(out, "2026-03-09")
    assert len(billing.requests) == 2


async def test_periodic_check_warns_above_the_threshold(
    tmp_path: Path,
    runpod_fake: FakeRunpod,
    billing: FakeRunpodBilling,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(
        tmp_path,
        runpod_fake,
        runpod={"rest_url": billing.rest_url},
        reconcile={"interval_hours": 6, "threshold_usd": "1.00"},
    )
    now = datetime.now(UTC)
    billing.spend(now, "0.40")
    async with open_core(settings) as core:
        with caplog.at_level(logging.WARNING, logger="bot.ledger.reconcile"):
            days = await core.reconciler.check_once()
        assert days[-1].billed == Decimal("0.40")
        assert not caplog.records  # $0.40 of other spend is under the threshold
        billing.spend(now, "1.10")
        with caplog.at_level(logging.WARNING, logger="bot.ledger.reconcile"):
            await core.reconciler.check_once()
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING
    assert "ledger lower" in warning.getMessage() and "+$1.50" in warning.getMessage()


async def test_a_finding_reaches_discord_s_admin_channel_and_the_metric(
    tmp_path: Path, runpod_fake: FakeRunpod, billing: FakeRunpodBilling
) -> None:
    """Other spend of $2.50 on the key today: over the $1 threshold, so said where admins look."""
    billing.spend(datetime.now(UTC), "2.50")
    async with FakeDiscord() as fake:
        channel = fake.guild.text_channel.id
        settings = discord_settings(
            tmp_path,
            runpod_fake,
            fake,
            discord={"admin_channel": channel},
            runpod={"rest_url": billing.rest_url},
            reconcile={"threshold_usd": "1.00"},
        )
        with point_discord_py_at(fake):
            async with running_discord_bot(settings) as bot:
                await bot.core.reconciler.check_once()
                posted = await fake.wait_for_message(lambda m: m.channel_id == channel)
                difference = bot.core.metrics.registry.get_sample_value(
                    "runpod_bot_reconcile_difference_usd"
                )
    assert posted.content.startswith("Reconciliation with Runpod's bill for ")
    assert "the ledger charged $0.00, Runpod billed $2.50, difference +$2.50" in posted.content
    assert posted.allowed_mentions == {"parse": []}
    assert difference == 2.5


async def test_a_finding_reaches_slack_s_admin_channel(
    tmp_path: Path, runpod_fake: FakeRunpod, billing: FakeRunpodBilling
) -> None:
    billing.spend(datetime.now(UTC), "2.50")
    async with FakeSlack() as fake:
        populate(fake)
        async with running_slack_bot(
            tmp_path,
            runpod_fake,
            fake,
            slack={"admin_channel": CHANNEL},
            runpod={"rest_url": billing.rest_url},
            reconcile={"threshold_usd": "1.00"},
        ) as bot:
            await bot.core.reconciler.check_once()
            (posted,) = await bot.wait(lambda: fake.messages_in(CHANNEL))
    assert "Runpod billed $2.50, difference +$2.50: ledger lower" in posted.text
