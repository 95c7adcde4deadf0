"""Chart render time: `member_png` and `report_png` on a full month of data, PNG bytes out.

    python -m bench.charts [--runs 50]

The member chart has 31 days; the report chart 31 days x 6 model series (5 models + other)
and 5 top spenders, the most either ever draws. Prints the median and the slowest run after
one warm-up (the first call also loads the font), and each PNG's size.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

import PIL

from bot.charts import member_png, report_png
from bot.ledger.periods import Period
from bot.ledger.spend_history import MemberSpend, WorkspaceSpend, member_id

DAYS = [date(2026, 1, 1) + timedelta(days=n) for n in range(31)]


def usd(rng: random.Random, most: int) -> Decimal:
    return Decimal(rng.randint(0, most)) / 1000


def timed(draw: Callable[[], bytes], runs: int) -> tuple[float, float, int]:
    size = len(draw())  # warm-up
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        draw()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), max(seconds), size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    runs = parser.parse_args().runs
    rng = random.Random(7)
    member = MemberSpend(Period.MONTH, DAYS, [usd(rng, 300) for _ in DAYS], Decimal("5.00"))
    models = ["flux-dev", "flux-schnell", "wan-2-2", "qwen3-32b", "seedream", "other"]
    workspace = WorkspaceSpend(
        "this month",
        DAYS,
        {m: [usd(rng, 500) for _ in DAYS] for m in models},
        [(f"slack:T1:U{n:08d}", usd(rng, 9000)) for n in range(5)],
    )
    print(f"Pillow {PIL.__version__}, Python {platform.python_version()}, {platform.machine()}")
    for name, draw in (
        ("member_png", lambda: member_png(member, today_index=27)),
        ("report_png", lambda: report_png(workspace, member_id)),
    ):
        median, worst, size = timed(draw, runs)
        print(f"{name}: median {median * 1000:.1f} ms, slowest {worst * 1000:.1f} ms, {size} bytes")


if __name__ == "__main__":
    main()
