"""The admin's page: the workspace's spend this month, and forms that change limits.

Every change goes through the ledger's own admin operations (the same as `/quota`) with the
admin's identity, so it lands in the ledger's admin log; every form carries the CSRF token, and
scopes are built from the session's workspace, so no form can reach another workspace.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.config import QuotaLimits
from bot.errors import BotError
from bot.ledger.periods import Period, window
from bot.ledger.quota import Identity, format_usd
from bot.ledger.quota_ops import describe_limit, parse_limit, parse_usd
from bot.ledger.records import Report
from bot.web.audit import recent_changes
from bot.web.bill import BillPages, signed_usd
from bot.web.chart import month_chart
from bot.web.http import Refused, Sessions, csv_file, render
from bot.web.names import Names
from bot.web.outcomes import outcomes
from bot.web.signin import Session

if TYPE_CHECKING:
    from bot.app import Core

PERIODS = ("daily", "weekly", "monthly")


class AdminPages:
    def __init__(self, core: Core, sessions: Sessions, bill: BillPages) -> None:
        self._core = core
        self._sessions = sessions
        self._bill = bill
        self._zone = ZoneInfo(core.settings.quotas.timezone)
        self._names = Names(core.db, core.web)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/admin", self.admin),
            web.post("/admin/limits", self.set_limits),
            web.post("/admin/grant", self.grant),
            web.post("/admin/unlimited", self.unlimited),
            web.post("/admin/signout", self.revoke),
            web.get("/admin/report.csv", self.report_csv),
        ]

    async def admin(self, request: web.Request, done: str | None = None) -> web.Response:
        session = await self._sessions.admin(request)
        pool = await self._core.ledger.usage(session.identity)
        report = await self._report(session)
        names = await self._names.of(session.community)
        context = {
            "session": session,
            "pool": pool.workspace,
            "report": report,
            "chart": await month_chart(self._core.db, session.identity.pool_key, self._zone),
            "outcomes": await outcomes(self._core.db, session.community, report.since),
            "changes": await recent_changes(self._core.db, session.identity.pool_key),
            # Runpod's bill covers every workspace: read (and shown) for operators only.
            "bill": await self._bill.read() if self._bill.may_see(session) else None,
            "signed_usd": signed_usd,
            "usd": format_usd,
            "limit": describe_limit,
            "done": done,
            # Names as the adapters saw them, with the id the forms take.
            "who": lambda member: f"{names[member]} ({member})" if member in names else member,
        }
        return render(request, "admin.html", context)

    async def _report(self, session: Session) -> Report:
        """This month's settled spend in the workspace, by model and by member."""
        span = window(Period.MONTH, datetime.now(UTC), self._zone)
        return await self._core.ledger.report(session.identity.pool_key, span.start, span.end)

    async def report_csv(self, request: web.Request) -> web.Response:
        session = await self._sessions.admin(request)
        report = await self._report(session)
        rows = [("by", "key", "jobs", "charged_usd")]
        rows += [("model", line.key, str(line.jobs), str(line.charged)) for line in report.by_model]
        rows += [
            ("member", line.key.rsplit(":", 1)[-1], str(line.jobs), str(line.charged))
            for line in report.by_user
        ]
        return csv_file(rows, "workspace-spend.csv")

    def _member_scope(self, session: Session, form: dict[str, str]) -> tuple[str, str]:
        """(ledger scope key, how the page names it): a member of this workspace, else its pool."""
        me = session.identity
        member = form.get("member", "").strip()
        if not member:
            return me.pool_key, "the workspace"
        try:
            return Identity(me.platform, me.workspace, member).user_key, f"member {member}"
        except ValueError:
            raise Refused(400, f"{member!r} is not a member id.") from None

    async def set_limits(self, request: web.Request) -> web.Response:
        session = await self._sessions.admin(request)
        form = await self._sessions.form(request, session)
        scope, whom = self._member_scope(session, form)
        try:
            given: dict[str, Decimal | None] = {
                f"{period}_usd": parse_limit(form[period], period)
                for period in PERIODS
                if form.get(period, "").strip()
            }
        except BotError as exc:
            raise Refused(400, str(exc)) from None
        if not given:
            raise Refused(400, "Give at least one of daily, weekly or monthly.")
        by = session.identity.user_key
        await self._core.ledger.set_limits(scope, QuotaLimits(**given), by=by)
        shown = ", ".join(f"{k.removesuffix('_usd')} {describe_limit(v)}" for k, v in given.items())
        return await self.admin(request, done=f"Limits of {whom} set: {shown}.")

    async def grant(self, request: web.Request) -> web.Response:
        session = await self._sessions.admin(request)
        form = await self._sessions.form(request, session)
        scope, whom = self._member_scope(session, form)
        try:
            amount = parse_usd(form.get("amount", ""), "the amount")
            await self._core.ledger.grant(
                scope, amount, form.get("reason", ""), by=session.identity.user_key
            )
        except BotError as exc:
            raise Refused(400, str(exc)) from None
        return await self.admin(request, done=f"Granted {format_usd(amount)} to {whom}.")

    async def unlimited(self, request: web.Request) -> web.Response:
        session = await self._sessions.admin(request)
        form = await self._sessions.form(request, session)
        scope, whom = self._member_scope(session, form)
        on = form.get("unlimited") == "on"
        await self._core.ledger.set_unlimited(scope, on, by=session.identity.user_key)
        state = "no limit" if on else "their limits again"
        return await self.admin(request, done=f"{whom.capitalize()} now has {state}.")

    async def revoke(self, request: web.Request) -> web.Response:
        """An admin ends every web session of a member of this workspace."""
        session = await self._sessions.admin(request)
        form = await self._sessions.form(request, session)
        scope, whom = self._member_scope(session, form)
        if scope == session.identity.pool_key:
            raise Refused(400, "Name the member whose sessions end.")
        me = session.identity
        await self._sessions.signins.end_member(
            Identity(me.platform, me.workspace, form["member"].strip())
        )
        return await self.admin(request, done=f"Every web session of {whom} has ended.")
