"""`/cost`: what a request would cost a member here, and whether it could run, without running it.

Every surface (Discord, Slack, the terminal) asks this one question and shows the answer in its
own idiom, so the facts are the same everywhere: the estimate, the model's price, the member's
tightest allowance, whether the estimate is more than that, a policy refusal, and whether the
job would ask for confirmation first. Nothing is read but the request and the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.config_fields import JobFields
from bot.errors import PolicyDenied
from bot.ledger.quota import Allowance
from bot.ledger.records import Usage
from bot.policy import Policy, Where
from bot.requests import Request
from bot.runpod import pricing
from bot.runpod.catalog import Catalog, Model


@dataclass(frozen=True)
class Quote:
    request: Request
    model: Model
    estimate: Decimal  # what the job would hold: the most Runpod can bill for it
    price: str  # the model's price rule, e.g. "$0.02 per megapixel"
    tightest: Allowance | None  # the limited allowance (member's or pool's) with least left
    refusal: str | None  # why the policy would refuse it here, if it would
    confirm_above: Decimal | None  # the threshold it is above (it would ask first), else None

    @property
    def over_limit(self) -> bool:
        """More than the tightest allowance has left: the job would be refused."""
        left = self.tightest.remaining if self.tightest else None
        return left is not None and self.estimate > left


def quote(
    request: Request,
    usage: Usage | None,
    where: Where,
    *,
    catalog: Catalog,
    policy: Policy,
    jobs: JobFields,
) -> Quote:
    """The answer for the member whose `usage` this is (None: no ledger to read, as in a
    terminal without a database)."""
    model = catalog.get(request.model)
    amount = pricing.bound(model, request.input, jobs).amount * request.count
    allowances = [*usage.user, *usage.workspace] if usage else []
    limited = [a for a in allowances if a.remaining is not None]
    tightest = min(limited, key=lambda a: a.remaining or Decimal(0), default=None)
    try:
        policy.check(request.command, model, request.prompt, where)
        refusal = None
    except PolicyDenied as exc:
        refusal = exc.message
    threshold = jobs.confirm_above_usd
    return Quote(
        request=request,
        model=model,
        estimate=amount,
        price=pricing.describe_price(model),
        tightest=tightest,
        refusal=refusal,
        confirm_above=threshold if amount > threshold else None,
    )
