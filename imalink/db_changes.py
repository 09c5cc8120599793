"""A cheap token that changes whenever any transaction commits to the database, from any process or by hand.

Reads that are costly at 100,000 photos (index status, storage statistics) cache their answers under it, so an
answer is reused only while nothing at all has been committed since it was computed.
"""

import logging
import os
import sqlite3
import threading
import uuid

from django.db import connections

logger = logging.getLogger("imalink.db")

_sqlite_lock = threading.Lock()
_sqlite_watchers: dict[str, tuple[int, str, sqlite3.Connection]] = {}


def _sqlite_token(name: str) -> str:
    # PRAGMA data_version changes when another connection commits, and is only comparable on one connection:
    # so each process keeps one idle connection that only ever asks it, named so a new one never reuses a value.
    with _sqlite_lock:
        watcher = _sqlite_watchers.get(name)
        if watcher is None or watcher[0] != os.getpid():  # a forked child must not share its parent's handle
            handle = sqlite3.connect(name, uri=name.startswith("file:"), check_same_thread=False, isolation_level=None, timeout=30)
            watcher = _sqlite_watchers[name] = (os.getpid(), uuid.uuid4().hex, handle)
        _pid, label, handle = watcher
        return f"{label}:{handle.execute('PRAGMA data_version').fetchone()[0]}"


def database_change_token(using: str = "default") -> str | None:
    """A token equal to an earlier one only if no transaction has committed since; None if it cannot vouch.

    None inside a transaction: the caller's own uncommitted writes do not change the token, so nothing read
    in a transaction may be cached under it.
    """
    connection = connections[using]
    if connection.in_atomic_block:
        return None
    try:
        if connection.vendor == "sqlite":
            return f"sqlite:{_sqlite_token(str(connection.settings_dict['NAME']))}"
        if connection.vendor == "postgresql":
            # The snapshot (xmin:xmax:in-progress xids) changes whenever any transaction ends.
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_database() || ':' || pg_current_snapshot()::text")
                return f"pg:{cursor.fetchone()[0]}"
    except Exception:  # a token we cannot read only costs the cache, never the answer
        logger.warning("cannot read the database's change token; answering without the cache", exc_info=True)
    return None
