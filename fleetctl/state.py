"""The controller's state database (SQLite, WAL): cached facts, registry answers and,
through :mod:`fleetctl.rollout.journal`, the rollout journal.

It lives in the state directory: ``--state-dir``, else ``$FLEETCTL_STATE_DIR``,
else ``~/.local/state/fleetctl``. Each write is its own transaction, synced to
disk before it returns (a killed controller loses nothing it reported).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleetctl.facts.hostfacts import HostFacts
from fleetctl.statedir import private_dir, private_file

SCHEMA = """
CREATE TABLE IF NOT EXISTS facts (
    host       TEXT PRIMARY KEY,
    address    TEXT NOT NULL,
    probed_at  REAL NOT NULL,
    facts      TEXT,
    error      TEXT
);
CREATE TABLE IF NOT EXISTS registry_cache (
    key        TEXT PRIMARY KEY,
    fetched_at REAL NOT NULL,
    body       TEXT NOT NULL
);
"""


def default_state_dir() -> Path:
    """``$FLEETCTL_STATE_DIR``, else ``~/.local/state/fleetctl``."""
    return Path(os.environ.get("FLEETCTL_STATE_DIR")
                or Path.home() / ".local" / "state" / "fleetctl")


@dataclass
class CachedFacts:
    """The last probe of a host: its facts, or the error that stopped it."""

    host: str
    address: str
    probed_at: float
    facts: HostFacts | None
    error: str | None

    @property
    def age(self) -> float:
        return time.time() - self.probed_at


class StateDB:
    """A connection to the state database; safe to share between threads."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = private_dir(state_dir)
        # SQLite gives its -wal and -shm files the database file's mode
        self.path = private_file(state_dir / "state.db")
        self._lock = threading.RLock()  # a transaction may read through other methods
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def execute(self, sql: str, params: tuple = ()) -> None:
        """One write, its own transaction."""
        with self._lock:
            self._db.execute(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Several statements as one transaction (BEGIN IMMEDIATE: writers queue up)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, params: tuple = ()) -> list[dict]:
        """Rows of a read, each indexable by column name."""
        with self._lock:
            cursor = self._db.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def script(self, sql: str) -> None:
        """Run DDL (other modules' tables)."""
        with self._lock:
            self._db.executescript(sql)

    @property
    def known_hosts(self) -> Path:
        """The known_hosts file fleetctl owns (``accept-new`` records keys there)."""
        return self.dir / "known_hosts"

    def save_facts(self, host: str, address: str, facts: HostFacts | None,
                   error: str | None, probed_at: float | None = None) -> None:
        """Record a probe. A failed probe keeps the last good facts and notes the error."""
        when = probed_at or time.time()
        with self._lock:
            if facts is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO facts VALUES (?, ?, ?, ?, NULL)",
                    (host, address, when, json.dumps(facts.to_json())))
            else:
                self._db.execute(
                    "INSERT INTO facts VALUES (?, ?, ?, NULL, ?) ON CONFLICT(host) DO UPDATE "
                    "SET error = excluded.error", (host, address, when, error))

    def load_facts(self, host: str) -> CachedFacts | None:
        """The cached probe of ``host``, or None when it was never probed."""
        with self._lock:
            row = self._db.execute("SELECT host, address, probed_at, facts, error FROM facts "
                                   "WHERE host = ?", (host,)).fetchone()
        if row is None:
            return None
        facts = None
        if row[3]:
            try:
                facts = HostFacts.from_json(json.loads(row[3]))
            except (ValueError, TypeError):
                facts = None  # written by another fleetctl version: probe again
        return CachedFacts(row[0], row[1], row[2], facts, row[4])

    def forget_facts(self, hosts: list[str]) -> None:
        """Drop cached facts of hosts that just changed, so the next look probes them."""
        with self._lock:
            self._db.executemany("DELETE FROM facts WHERE host = ?", [(h,) for h in hosts])

    def cache_get(self, key: str, max_age: float | None) -> tuple[str, float] | None:
        """A cached registry answer and when it was fetched; None when absent or older
        than ``max_age`` seconds (None: never too old, for content-addressed answers)."""
        with self._lock:
            row = self._db.execute("SELECT body, fetched_at FROM registry_cache WHERE key = ?",
                                   (key,)).fetchone()
        if row is None or (max_age is not None and time.time() - row[1] > max_age):
            return None
        return row[0], row[1]

    def cache_put(self, key: str, body: str) -> None:
        """Remember a registry answer."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO registry_cache VALUES (?, ?, ?)",
                             (key, time.time(), body))

    def close(self) -> None:
        self._db.close()
