"""The states of a job, and the sets of them that code and SQL ask about, defined once.

A job runs `count` copies of one request (one Runpod job each; Runpod's own statuses are
`bot.runpod.client.RunpodStatus`). Its life:

    awaiting_confirmation -> held | cancelled
    held -> submitting -> submitted -> completed -> delivered
                                                \\-> undeliverable -> delivered
    held | submitting | submitted -> failed | timed_out | cancelled

- `awaiting_confirmation`: above `jobs.confirm_above_usd`; stored, nothing held, no owner
  (any process may confirm it); the requester's Confirm holds the quota (`held`), Cancel or
  `CONFIRMATION_TTL_S` ends it `cancelled`.
- `held`: the quota holds the most Runpod can bill; waiting for a slot.
- `submitting`: written before `/run` is called, so a restart knows a copy may exist.
- `submitted`: every copy has its Runpod id; tracked by webhook or polling.
- `completed`: charged (one transaction with the ledger's settle), files spooled; being offered.
- `delivered`: the platform accepted the result.
- `undeliverable`: delivery failed for good (every route refused past `delivery.horizon_s`):
  still charged (Runpod billed it), its files kept, the member's /show offers it, and it keeps
  being offered; once a route takes it (with a note that it is late) it is `delivered`.
- `failed`, `timed_out`, `cancelled`: the hold released, nothing charged, the member told.

`notified` (a column beside the state) records that the member was told how the job ended,
so a crash between ending a job and telling them is repaired on the next start.
bot/jobs/lifecycle.py drives the states after admission; bot/jobs/service.py admits and confirms.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

# How long a job may wait in `awaiting_confirmation` before it is `cancelled`.
CONFIRMATION_TTL_S = 15 * 60


class JobState(StrEnum):
    """Stored as its text (`jobs.state`), so rows written before this type read the same."""

    AWAITING_CONFIRMATION = "awaiting_confirmation"
    HELD = "held"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


WAITING = frozenset({JobState.AWAITING_CONFIRMATION})
# Sent to Runpod, or on the way there (what a Cancel can still stop).
RUNNING = frozenset({JobState.HELD, JobState.SUBMITTING, JobState.SUBMITTED})
# Counted against `jobs.max_per_user` / `max_global`: at Runpod or being sent.
AT_RUNPOD = frozenset({JobState.SUBMITTING, JobState.SUBMITTED})
# Still to be carried on (now or after a restart): their holds are live.
ACTIVE = frozenset({JobState.AWAITING_CONFIRMATION, *RUNNING, JobState.COMPLETED})
# Ended with nothing charged: the hold released.
FAILED = frozenset({JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELLED})
# Ended for good: nothing moves the job again.
ENDED = frozenset({JobState.DELIVERED, *FAILED})
# Paid results not shown yet: their spooled files must be kept.
UNDELIVERED = frozenset({JobState.COMPLETED, JobState.UNDELIVERABLE})
# Charged: the job made a result, shown or not (what /show and a conversation's history use).
WITH_RESULT = frozenset({JobState.DELIVERED, *UNDELIVERED})
# How a job turns out; until its member is told (`notified`), a restart carries it on.
OUTCOMES = frozenset({JobState.UNDELIVERABLE, *ENDED})


def sql_in(states: Iterable[JobState]) -> str:
    """`state IN (...)` for SQL, from one of the sets above (the values are our own words)."""
    return "state IN (" + ", ".join(f"'{state.value}'" for state in sorted(states)) + ")"
