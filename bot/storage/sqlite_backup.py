"""Online backup of the SQLite file: a consistent copy while the bot keeps writing."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from bot.errors import BotError

DEFAULT_BUSY_TIMEOUT_MS = 10_000


def backup_file(source: Path, dest: Path) -> None:
    """Copy a live database file to `dest` (blocking; use `Database.backup` from async code).

    One backup step copies the whole file under one read snapshot, so the copy is consistent
    while writers go on (WAL lets them). The copy is written beside `dest`, checked, switched
    to a self-contained rollback journal and renamed into place, so `dest` is never half-made.
    """
    if dest.exists() and dest.resolve() == source.resolve():
        raise BotError(f"backup destination {dest} is the database itself")
    staging = dest.with_name(dest.name + ".partial")
    staging.unlink(missing_ok=True)
    try:
        _copy(source, staging)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    os.replace(staging, dest)


def _copy(source: Path, staging: Path) -> None:
    src = sqlite3.connect(source, timeout=DEFAULT_BUSY_TIMEOUT_MS / 1000)
    try:
        dst = sqlite3.connect(staging)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            (check,) = dst.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise BotError(f"backup failed its integrity check: {check}")
        finally:
            dst.close()
    finally:
        src.close()
