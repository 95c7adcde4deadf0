"""The operators' view of Runpod's bill: the ledger against it, per UTC day, on the admin page.

Runpod bills the whole API key, every workspace together, so the comparison is for the people
who run the bot and pay that bill (`web.operators`) and never for a workspace's admins as such.
It is read live through the core's reconciliation (bot/ledger/reconcile.py), within `TIMEOUT_S`;
when the billing API cannot answer, the page says why and shows everything else.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from aiohttp import web

from bot.ledger.periods import utc_now
from bot.ledger.quota import format_usd
from bot.ledger.reconcile import SHARED_KEY_NOTE, Day, Verdict, billing_failure, compare
from bot.runpod.client import RunpodError
from bot.web.http import Refused, Sessions, csv_file
from bot.web.signin import Session

if TYPE_CHECKING:
    from bot.app import Core

log = logging.getLogger(__name__)

DAYS = 14  # UTC days shown, today included
TIMEOUT_S = 5.0  # the page answers without the bill rather than wait longer for it
OPERATORS_ONLY = (
    "Runpod bills the whole API key, every workspace together: only the bot's operators"
    " (web.operators) see the reconciliation with the bill."
)


@dataclass(frozen=True)
class Bill:
    """What the page shows an operator: the days compared, or why they could not be."""

    days: list[Day] = field(default_factory=list)
    tolerance: Decimal = Decimal(0)
    failure: str | None = None
    note: str = SHARED_KEY_NOTE

    @property
    def charged(self) -> Decimal:
        return sum((d.charged for d in self.days), Decimal(0))

    @property
    def billed(self) -> Decimal:
        return sum((d.billed for d in self.days), Decimal(0))

    @property
    def difference(self) -> Decimal:
        return self.billed - self.charged

    def verdict(self, day: Day) -> str:
        return day.verdict(self.tolerance).value

    def higher(self, day: Day) -> bool:
        return day.verdict(self.tolerance) is Verdict.LEDGER_HIGHER


def signed_usd(amount: Decimal) -> str:
    """A difference as the reconciliation prints it: "+$2.00" is spend the ledger did not charge."""
    return ("+" if amount > 0 else "-" if amount < 0 else "") + format_usd(abs(amount))


class BillPages:
    def __init__(self, core: Core, sessions: Sessions) -> None:
        self._core = core
        self._sessions = sessions

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/admin/reconcile.csv", self.csv)]

    def may_see(self, session: Session) -> bool:
        """An admin (checked by the caller) who is also one of the bot's operators."""
        return session.identity.user_key in self._core.settings.web.operators

    async def read(self) -> Bill:
        """The last `DAYS` UTC days, read now from the ledger (all workspaces) and Runpod."""
        reconciler = self._core.reconciler
        last = utc_now().date()
        first: date = last - timedelta(days=DAYS - 1)
        try:
            async with asyncio.timeout(TIMEOUT_S):
                days = await compare(
                    reconciler.db, reconciler.runpod, reconciler.rest_url, first, last
                )
        except RunpodError as exc:
            failure = billing_failure(exc, reconciler.rest_url)
        except TimeoutError:
            failure = f"Runpod's billing API did not answer within {TIMEOUT_S:g} s; try again later"
        else:
            return Bill(days, reconciler.settings.tolerance_usd)
        log.warning("web: the reconciliation could not read the bill: %s", failure)
        return Bill(failure=failure)

    async def csv(self, request: web.Request) -> web.Response:
        session = await self._sessions.admin(request)
        if not self.may_see(session):
            raise Refused(403, OPERATORS_ONLY)
        bill = await self.read()
        if bill.failure is not None:
            raise Refused(503, bill.failure)
        rows = [("day_utc", "ledger_usd", "runpod_usd", "difference_usd", "verdict")]
        rows += [
            (
                d.day.isoformat(),
                f"{d.charged:f}",
                f"{d.billed:f}",
                f"{d.difference:f}",
                bill.verdict(d),
            )
            for d in bill.days
        ]
        return csv_file(rows, "reconciliation.csv")
