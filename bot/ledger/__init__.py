"""The spend ledger: quotas, holds, charges, periods and the reports built on them.

What the adapters may use is imported here; the other modules are the package's own.
"""

from bot.ledger.periods import Period, window
from bot.ledger.quota import MAX_ADMIN_USD, Allowance, Identity, format_usd
from bot.ledger.quota_ops import describe_limit, parse_limit, parse_usd, standing
from bot.ledger.records import Report
from bot.ledger.spend_history import member_id

__all__ = [
    "MAX_ADMIN_USD",
    "Allowance",
    "Identity",
    "Period",
    "Report",
    "describe_limit",
    "format_usd",
    "member_id",
    "parse_limit",
    "parse_usd",
    "standing",
    "window",
]
