"""A byte allowance for results kept in memory from their download until their first offer.

Every paid result is spooled before the charge, and each offer reads it back from the spool so
a result waiting through a platform outage is not in memory (bot/jobs/lifecycle.py). For a
small result that read is most of the job's disk work: a thread hand-off, the manifest and the
file read back a moment after they were written. So while the bytes kept this way stay under
the allowance, the first offer is made from the downloaded bytes; later offers (after a
refusal) read the spool as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# With 1,000 results of 5 KiB all fit. A big result is read back as before: its read is
# small beside its download, and the bot's peak memory with 2 MB results stays as it was.
KEPT_BYTES = 8 * 1024 * 1024
LARGEST_BYTES = 256 * 1024


class Allowance:
    def __init__(self, max_bytes: int = KEPT_BYTES, *, largest: int = LARGEST_BYTES) -> None:
        self._left = max_bytes
        self._largest = largest

    def borrow(self, size: int) -> Loan | None:
        """`size` bytes of the allowance, or None when they would not fit or are one big result."""
        if size > self._left or size > self._largest:
            return None
        self._left -= size
        return Loan(self, size)

    def give_back(self, size: int) -> None:
        self._left += size


@dataclass(eq=False)
class Loan:
    """Bytes borrowed from an `Allowance`; `repay` is idempotent, so every path may call it."""

    allowance: Allowance
    size: int
    _repaid: bool = field(default=False, repr=False)

    def repay(self) -> None:
        if not self._repaid:
            self._repaid = True
            self.allowance.give_back(self.size)
