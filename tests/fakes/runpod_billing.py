"""FakeRunpodBilling: Runpod's REST API v2 billing route for Public Endpoints, on 127.0.0.1.

Follows `GET /v2/billing/endpoints` in Runpod's OpenAPI document (api-reference-v2): bearer
auth; `startTime`/`endTime` (RFC 3339, start snapped down and end snapped up to whole buckets),
`bucketSize` (hour or day here; the default is day), or `lastN` (exclusive with the times);
answers `{"records": [{"startTime", "endTime", "totalAmount"}], "metadata": {"query",
"recordCount", "totals": {"totalAmount"}}}` with amounts as JSON numbers, one record per bucket
that has spend. Errors are `application/problem+json` `{"title", "status", "detail"}`.

The unpleasant cases a test can ask for: a 429 with Retry-After, a 5xx whose body is an HTML
page (a proxy in front, as real outages look), and a wrong key (401).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Self

from aiohttp import web

from tests.fakes.runpod import dumps

BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
HTML_OUTAGE = "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"


@dataclass
class _Fault:
    status: int
    retry_after: int | None
    remaining: int


def _problem(status: int, title: str, detail: str) -> web.Response:
    body = {"title": title, "status": status, "detail": detail}
    return web.json_response(body, status=status, content_type="application/problem+json")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeRunpodBilling:
    """Spend is recorded with `spend(at, amount)`; `requests` keeps every query string."""

    def __init__(self, *, api_key: str) -> None:
        self.api_key = api_key
        self.requests: list[dict[str, str]] = []
        self._spend: list[tuple[datetime, Decimal]] = []
        self._faults: list[_Fault] = []
        self._runner: web.AppRunner | None = None
        self.rest_url = ""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/v2/billing/endpoints", self._endpoints)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.rest_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v2"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def spend(self, at: datetime, amount: Decimal | str) -> None:
        """Public Endpoint spend billed at `at` (any job of any software using the key)."""
        self._spend.append((at.astimezone(UTC), Decimal(amount)))

    def fail_next(self, status: int, *, retry_after: int | None = None, count: int = 1) -> None:
        """Answer the next `count` requests with `status` (a 5xx gets an HTML body)."""
        self._faults.append(_Fault(status, retry_after, count))

    async def _endpoints(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.query))
        if self._faults:
            fault = self._faults[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.pop(0)
            return self._fault(fault)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _problem(401, "Unauthorized", "invalid bearer token")
        try:
            start, end, size = self._window(request.query)
        except ValueError as exc:
            return _problem(400, "Bad Request", str(exc))
        step = BUCKETS[size]
        totals: dict[datetime, Decimal] = defaultdict(Decimal)
        for at, amount in self._spend:
            if start <= at < end:
                totals[start + step * ((at - start) // step)] += amount
        records = [
            {"startTime": _iso(b), "endTime": _iso(b + step), "totalAmount": totals[b]}
            for b in sorted(totals)
        ]
        query = {"startTime": _iso(start), "endTime": _iso(end), "bucketSize": size}
        total = sum(totals.values(), Decimal(0))
        body = {
            "records": records,
            "metadata": {
                "query": query,
                "recordCount": len(records),
                "totals": {"totalAmount": total},
            },
        }
        return web.json_response(body, dumps=dumps)

    def _fault(self, fault: _Fault) -> web.Response:
        if fault.status >= 500:
            return web.Response(status=fault.status, text=HTML_OUTAGE, content_type="text/html")
        if fault.status == 429:
            response = _problem(
                429, "Too Many Requests", "rate limit exceeded for the minute window"
            )
            if fault.retry_after is not None:
                response.headers["Retry-After"] = str(fault.retry_after)
            return response
        return _problem(fault.status, "Error", f"fake fault {fault.status}")

    def _window(self, query: Any) -> tuple[datetime, datetime, str]:
        size = query.get("bucketSize", "day")
        if size not in BUCKETS:
            raise ValueError(f"bucketSize {size!r} is not served by this fake")
        step = BUCKETS[size]
        now = datetime.now(UTC)
        if "lastN" in query:
            if "startTime" in query or "endTime" in query:
                raise ValueError("lastN is mutually exclusive with startTime/endTime")
            end = _snap_up(now, step)
            return end - step * int(query["lastN"]), end, size
        start = _parse(query.get("startTime")) or now - timedelta(days=30)
        end = _parse(query.get("endTime")) or now
        return _snap_down(start, step), _snap_up(end, step), size


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _snap_down(moment: datetime, step: timedelta) -> datetime:
    return _EPOCH + step * ((moment - _EPOCH) // step)


def _snap_up(moment: datetime, step: timedelta) -> datetime:
    down = _snap_down(moment, step)
    return down if down == moment else down + step
