"""`python -m bot usage | quota ... | backup` against a real file, as an operator runs them."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bot.charts import PALETTE
from bot.cli.main import main
from bot.ledger.periods import Period
from bot.ledger.service import Identity
from tests.chart_support import checked_png, shows
from tests.ledger.support import ALICE, BOB, open_ledger, quota_zone, quotas, usd

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("moved_clock")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[storage]\ndatabase = "{tmp_path / "bot.db"}"\n'
        f'[quotas]\ndaily_usd = 1\ntimezone = "{quota_zone()}"\n',
        encoding="utf-8",
    )
    return path


def populate(db: Path) -> None:
    """A month's worth of jobs, settled now (the CLI reports the current month by default)."""

    async def fill() -> None:
        async with open_ledger(db, quotas()) as ledger:
            dave = Identity("slack", "T9", "dave")
            jobs = [(ALICE, "flux", "0.10"), (ALICE, "wan", "0.25"), (BOB, "flux", "0.05")]
            for n, (who, model, cost) in enumerate([*jobs, (dave, "flux", "1.00")]):
                await ledger.hold(f"j{n}", who, usd(cost), model=model)
                await ledger.settle(f"j{n}", usd(cost))
            await ledger.hold("pending", BOB, usd("0.50"), model="flux")

    asyncio.run(fill())


def run(config: Path, *argv: str) -> tuple[int, str, str]:
    cli = "tests.cli_at_moment" if "MOVED_CLOCK_AT" in os.environ else "bot"
    result = subprocess.run(
        [sys.executable, "-m", cli, "--config", str(config), *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    return result.returncode, result.stdout, result.stderr


def test_usage_csv_prints_a_per_user_report(config: Path, tmp_path: Path) -> None:
    populate(tmp_path / "bot.db")
    code, out, err = run(config, "usage", "--csv")
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows == [
        ["user", "jobs", "charged_usd"],
        ["slack:T9:dave", "1", "1.0000000000"],
        ["discord:g1:alice", "2", "0.3500000000"],
        ["discord:g1:bob", "1", "0.0500000000"],
    ]


def test_usage_filters_and_groups(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(tmp_path / "bot.db")
    assert main(["--config", str(config), "usage", "--workspace", "discord:g1", "--csv"]) == 0
    assert [r[0] for r in csv.reader(io.StringIO(capsys.readouterr().out))][1:] == [
        "discord:g1:alice",
        "discord:g1:bob",
    ]
    assert main(["--config", str(config), "usage", "--by", "model"]) == 0
    table = capsys.readouterr().out
    assert "flux" in table and "$1.15" in table and "wan" in table
    assert table.splitlines()[-1].split() == ["total", "4", "$1.40"]
    assert (
        main(["--config", str(config), "usage", "--since", "2000-01-01", "--until", "2000-01-31"])
        == 0
    )
    assert capsys.readouterr().out.splitlines()[-1].split() == ["total", "0", "$0.00"]


def test_usage_chart_draws_spend_per_day_by_model(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(tmp_path / "bot.db")
    png = tmp_path / "out.png"
    argv = ["--config", str(config), "usage", "--workspace", "discord:g1", "--chart", str(png)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-2].split() == ["total", "3", "$0.40"]  # the text answer stays
    assert out.splitlines()[-1] == f"chart written to {png}"
    chart = checked_png(png.read_bytes())
    # discord:g1 used two models (wan, flux): two colours; slack:T9's spend is not shown
    assert shows(chart, PALETTE[0]) and shows(chart, PALETTE[1]) and not shows(chart, PALETTE[2])


def test_usage_chart_to_a_missing_folder_is_a_clear_error(config: Path, tmp_path: Path) -> None:
    populate(tmp_path / "bot.db")
    code, _, err = run(config, "usage", "--chart", str(tmp_path / "nowhere" / "out.png"))
    assert code != 0 and "--chart" in err and "No such file or directory" in err
    assert "Traceback" not in err


def test_usage_counts_jobs_charged_above_their_hold(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def fill() -> None:
        async with open_ledger(tmp_path / "bot.db", quotas()) as ledger:
            await ledger.hold("fair", ALICE, usd("0.10"), model="whisper")
            await ledger.settle("fair", usd("0.05"))
            await ledger.hold("over", ALICE, usd("0.10"), model="whisper")
            await ledger.settle("over", usd("0.30"))  # Runpod billed above its published price

    asyncio.run(fill())
    assert main(["--config", str(config), "usage"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[-2].split() == ["total", "2", "$0.35"]
    assert table[-1].startswith("charged above their hold: 1 job(s), $0.20 in all")


def test_quota_commands_change_what_members_may_spend(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = ALICE.user_key
    assert (
        main(["--config", str(config), "quota", "set", key, "--daily", "2.50", "--monthly", "none"])
        == 0
    )
    assert "daily $2.50, monthly no limit" in capsys.readouterr().out
    assert main(["--config", str(config), "quota", "grant", key, "0.50", "--reason", "prize"]) == 0
    assert main(["--config", str(config), "quota", "unlimited", ALICE.pool_key, "on"]) == 0

    async def limits() -> dict[Period | str, Decimal | None]:
        async with open_ledger(
            tmp_path / "bot.db", quotas(daily_usd="1", monthly_usd="10")
        ) as ledger:
            usage = await ledger.usage(ALICE)
            found: dict[Period | str, Decimal | None] = {a.period: a.limit for a in usage.user}
            return found | {"pool": usage.workspace[2].limit}

    assert asyncio.run(limits()) == {
        Period.DAY: usd("3.00"),
        Period.WEEK: None,
        Period.MONTH: None,
        "pool": None,
    }
    assert main(["--config", str(config), "quota", "reset", key]) == 0
    assert main(["--config", str(config), "quota", "reset", key]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [
        f"{key}: back to defaults",
        f"{key}: had no overrides",
    ]
    assert asyncio.run(limits())[Period.DAY] == usd("1.50")  # the default plus today's grant
    with sqlite3.connect(tmp_path / "bot.db") as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM admin_log ORDER BY id")]
    assert actions == ["set_limits", "grant", "unlimited", "reset"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["quota", "set", "discord:g1:alice", "--daily", "-1"], "not a non-negative amount"),
        (["quota", "set", "discord:g1:alice", "--daily", "lots"], "not an amount in USD"),
        (["quota", "set", "nobody", "--daily", "1"], "is not a scope"),
        (["quota", "set", "discord:g1:alice"], "say which limits to set"),
        (["quota", "grant", "discord:g1:alice", "0", "--reason", "x"], "more than 0"),
        (["quota", "grant", "discord:g1:alice", "1"], "--reason"),
        (["quota", "unlimited", "discord:g1", "maybe"], "invalid choice"),
        (["quota", "frobnicate"], "invalid choice"),
        (["usage", "--since", "2026-02-30"], "not a date"),
        (["usage", "--since", "2026-02-02", "--until", "2026-02-01"], "is before --since"),
        (["backup"], "the following arguments are required: PATH"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    config: Path, tmp_path: Path, argv: list[str], message: str
) -> None:
    populate(tmp_path / "bot.db")
    code, _, err = run(config, *argv)
    assert code == 2 and message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["quota", "set", "discord:g1:alice", "--daily", "1e12"],
        ["quota", "set", "discord:g1", "--monthly", "$100000.01"],
        ["quota", "grant", "discord:g1:alice", "1e12", "--reason", "everything"],
    ],
)
def test_an_amount_above_the_maximum_is_refused_and_nothing_is_written(
    config: Path, tmp_path: Path, argv: list[str]
) -> None:
    code, out, err = run(config, *argv)
    assert code == 2 and "Amounts above $100,000.00 are not accepted." in err
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "bot.db").exists()


def test_usage_and_backup_need_an_existing_database(config: Path) -> None:
    for argv in (["usage"], ["backup", "copy.db"]):
        code, _, err = run(config, *argv)
        assert code == 2 and "no database at" in err and "Traceback" not in err


def test_a_file_that_is_not_a_database_is_reported_not_raised(config: Path, tmp_path: Path) -> None:
    (tmp_path / "bot.db").write_text("hello", encoding="utf-8")
    code, _, err = run(config, "usage")
    assert code == 2 and "not a database" in err and "Traceback" not in err


def test_backup_command_copies_the_database(config: Path, tmp_path: Path) -> None:
    populate(tmp_path / "bot.db")
    code, out, err = run(config, "backup", str(tmp_path / "copy.db"))
    assert code == 0, err
    assert "backed up" in out
    with sqlite3.connect(tmp_path / "copy.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM holds").fetchone() == (5,)
