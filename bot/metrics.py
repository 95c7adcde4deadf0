"""Prometheus metrics, served at `GET /metrics` on the `[http]` listener (docs/operations.md).

One `Metrics` per core, on its own `CollectorRegistry` (never the global default), so tests and
several cores in one process do not share counts. Hooks call small methods here; what the
database already knows (active jobs, open holds, live workers) is read from it at each scrape,
so those gauges are right across restarts and for every process sharing the database.

Labels are bounded: state, command, model, platform, Runpod route and HTTP status, and the
workspace only with `metrics.per_workspace = true`. Never a user id or a prompt.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from bot.ledger.quota import to_usd
from bot.storage.sql import Store

CONTENT_TYPE = CONTENT_TYPE_LATEST
PREFIX = "runpod_bot_"
# Seconds: from sub-second long-poll answers to jobs of many minutes.
SLOW_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, float("inf"))
FAST_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, float("inf"))


class Metrics:
    def __init__(self, *, per_workspace: bool = False) -> None:
        self.registry = CollectorRegistry()
        self.per_workspace = per_workspace
        # (metric, label values) -> child: `labels()` checks and converts its values on every
        # call, a few per job state change. Never for a metric that is cleared (`active`).
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._jobs()
        self._money()
        self._runpod()
        self._platforms()
        self._background()

    def _counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(PREFIX + name, doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(PREFIX + name, doc, labels, registry=self.registry)

    def _histogram(
        self, name: str, doc: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> Histogram:
        return Histogram(PREFIX + name, doc, labels, buckets=buckets, registry=self.registry)

    def _jobs(self) -> None:
        job = ["state", "command", "model", "platform"]
        self.jobs = self._counter("jobs", "Jobs that reached a state", job)
        self.active = self._gauge(
            "jobs_active", "Jobs still being carried on, by state (from the database)", job
        )
        self.queue_wait = self._histogram(
            "queue_wait_seconds",
            "Time a job waited for a free slot (jobs.max_per_user, jobs.max_global)",
            SLOW_BUCKETS,
        )
        self.execution = self._histogram(
            "runpod_execution_seconds",
            "Runpod's executionTime of completed copies",
            SLOW_BUCKETS,
            ["model"],
        )
        self.seen_delay = self._histogram(
            "completion_seen_delay_seconds",
            "From a copy's completion at Runpod (submitted + delayTime + executionTime) to the bot"
            " seeing it",
            FAST_BUCKETS,
        )
        self.delivery = self._histogram(
            "delivery_seconds",
            "From charging a result to the platform accepting it",
            SLOW_BUCKETS,
            ["platform"],
        )

    def _money(self) -> None:
        money = ["model", "workspace"] if self.per_workspace else ["model"]
        self.charged = self._counter("charged_usd", "USD charged", money)
        self.released = self._counter("released_usd", "USD held then released uncharged", money)
        self.open_holds = self._gauge("open_holds", "Holds not yet settled or released")
        self.open_holds_usd = self._gauge("open_holds_usd", "USD in open holds")

    def _runpod(self) -> None:
        self.runpod_requests = self._counter(
            "runpod_requests",
            "Runpod API answers by route and HTTP status (status 0: no answer)",
            ["route", "status"],
        )
        self.runpod_retries = self._counter("runpod_retries", "Runpod requests retried", ["route"])
        self.runpod_rate_limited = self._counter(
            "runpod_rate_limited", "Runpod 429 answers", ["route"]
        )

    def _platforms(self) -> None:
        """Discord's and Slack's HTTP answers, and Runpod's calls into our webhook."""
        self.platform_errors = self._counter(
            "platform_api_errors",
            "Discord/Slack HTTP answers of 400 or above",
            ["platform", "status"],
        )
        self.platform_rate_limited = self._counter(
            "platform_rate_limited", "Discord/Slack 429 answers", ["platform"]
        )
        self.webhooks = self._counter(
            "webhooks_received",
            "Runpod webhook calls by outcome (used, ignored, malformed)",
            ["outcome"],
        )

    def _background(self) -> None:
        """Leases and the reconciliation: what runs beside the jobs."""
        self.lease_held = self._gauge(
            "worker_lease_held", "1 while this process's worker lease runs"
        )
        self.workers_live = self._gauge(
            "workers_live", "Workers whose lease runs (from the database)"
        )
        self.reconcile_difference = self._gauge(
            "reconcile_difference_usd",
            "Runpod's bill minus the ledger over the days the last reconciliation compared",
        )

    # --- hooks ------------------------------------------------------------------------------

    def child(self, metric: Counter | Histogram, *values: str) -> Any:
        """`metric.labels(*values)`, looked up once per set of values."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def job_state(self, state: str, *, command: str, model: str, platform: str) -> None:
        self.child(self.jobs, state, command, model, platform).inc()

    def money(self, counter: Counter, amount: Decimal, *, model: str, workspace: str) -> None:
        """Add `amount` USD to `charged` or `released` (float: Prometheus has no decimals)."""
        if amount <= 0:
            return
        labels = (model, workspace) if self.per_workspace else (model,)
        self.child(counter, *labels).inc(float(amount))

    def runpod_answer(self, route: str, status: int) -> None:
        self.child(self.runpod_requests, route, str(status)).inc()
        if status == 429:
            self.child(self.runpod_rate_limited, route).inc()

    def copy_seen(
        self, model: str, submitted_at: float, delay_ms: int | None, run_ms: int | None
    ) -> None:
        """A completed copy was seen now; `submitted_at` is when its wait began (Unix time)."""
        if run_ms is not None:
            self.child(self.execution, model).observe(run_ms / 1000)
        if delay_ms is not None and run_ms is not None:
            done_at = submitted_at + (delay_ms + run_ms) / 1000
            self.seen_delay.observe(max(0.0, time.time() - done_at))

    def platform_trace(self, platform: str) -> aiohttp.TraceConfig:
        """Count a platform's HTTP errors and 429s from its aiohttp session (one place each)."""

        async def on_end(
            session: aiohttp.ClientSession,
            context: SimpleNamespace,
            params: aiohttp.TraceRequestEndParams,
        ) -> None:
            status = params.response.status
            if status >= 400:
                self.platform_errors.labels(platform, str(status)).inc()
            if status == 429:
                self.platform_rate_limited.labels(platform).inc()

        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(on_end)
        return trace

    # --- scrape -----------------------------------------------------------------------------

    async def exposition(self, db: Store, lease_held: bool) -> bytes:
        """The text format, after refreshing what the database knows."""
        # The job engine counts into these metrics, so its vocabulary is read here, at scrape
        # time, not when this module loads (bot.jobs imports bot.metrics).
        from bot.jobs.states import ACTIVE, sql_in
        from bot.jobs.workers import LIVE_WORKERS

        rows = await db.fetchall(
            f"SELECT state, command, model, platform, count(*) FROM jobs WHERE {sql_in(ACTIVE)}"
            " GROUP BY state, command, model, platform"
        )
        self.active.clear()
        for state, command, model, platform, count in rows:
            self.active.labels(state, command, model, platform).set(count)
        holds = await db.fetchone(
            "SELECT count(*), coalesce(sum(held), 0) FROM holds WHERE state = 'held'"
        )
        count, units = holds if holds else (0, 0)
        self.open_holds.set(count)
        self.open_holds_usd.set(float(to_usd(units)))
        live = await db.fetchone(f"SELECT count(*) FROM ({LIVE_WORKERS}) AS live")
        self.workers_live.set(live[0] if live else 0)
        self.lease_held.set(1 if lease_held else 0)
        return generate_latest(self.registry)
