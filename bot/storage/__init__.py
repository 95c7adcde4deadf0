"""The database behind the ledger and the jobs: SQLite embedded, or PostgreSQL.

What the adapters may use is imported here; the other modules are the package's own.
"""

from bot.storage.sql import Connection, Store, lock_scopes

__all__ = ["Connection", "Store", "lock_scopes"]
