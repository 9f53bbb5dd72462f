"""The rollout journal: rollouts, their steps, every host's phase changes, and the
fleet lock, in the state database. One transaction per state change, so a
controller killed at any instant leaves a journal that says where each host was.

Host phases, in order: ``pending``, ``locked``, ``staged``, ``activated``,
``committed``; or ``reverted`` / ``revert-failed`` after a failure; ``deferred``
(unreachable before anything changed), ``failed`` (preflight or stage failed,
nothing running changed), ``noop``, ``skipped`` (blocked by the plan),
``cancelled`` (not started: the rollout stopped), ``rolled-back``.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fleetctl.digest import optional_digest
from fleetctl.errors import FleetError
from fleetctl.secrets import redact
from fleetctl.state import StateDB

SCHEMA = """
CREATE TABLE IF NOT EXISTS rollouts (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,          -- deploy, os (an L4T update) or rollback
    request     TEXT NOT NULL,
    packages    TEXT NOT NULL,          -- JSON list, dependency order
    operator    TEXT NOT NULL,
    controller  TEXT NOT NULL,          -- hostname:pid of the process running it
    status      TEXT NOT NULL,          -- running, paused, completed, incomplete, failed,
                                        -- rolled-back
    steps       TEXT NOT NULL,          -- JSON list of lists of hosts
    current_step INTEGER NOT NULL DEFAULT 0,
    options     TEXT NOT NULL,          -- JSON: policy, gate timeout, pause...
    plan        TEXT NOT NULL,          -- JSON plan the rollout executes
    message     TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rollout_hosts (
    rollout_id  TEXT NOT NULL,
    host        TEXT NOT NULL,
    package     TEXT NOT NULL,
    step        INTEGER NOT NULL,
    phase       TEXT NOT NULL,
    from_digest TEXT, from_version TEXT, from_release TEXT,
    to_digest   TEXT, to_version TEXT, to_release TEXT,
    error       TEXT,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (rollout_id, host, package)
);
CREATE TABLE IF NOT EXISTS rollout_events (
    rollout_id  TEXT NOT NULL,
    at          REAL NOT NULL,
    host        TEXT,
    package     TEXT,
    phase       TEXT NOT NULL,
    detail      TEXT
);
CREATE TABLE IF NOT EXISTS fleet_locks (
    package     TEXT NOT NULL,
    host        TEXT NOT NULL,
    rollout_id  TEXT NOT NULL,
    PRIMARY KEY (package, host)
);
"""

ACTIVE = ("running", "paused")
#: not final: "inconclusive" (an analysis could not judge; promote or rollback decides)
FINAL_HOST_PHASES = ("committed", "reverted", "revert-failed", "failed", "noop", "skipped",
                     "rolled-back", "cancelled", "ready")


def operator() -> str:
    """Who is running fleetctl: ``user@controller``."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def new_rollout_id() -> str:
    """A sortable, unique id; also the release directory name on the hosts."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


@dataclass
class HostState:
    """One host and package within a rollout, as the journal has it."""

    host: str
    package: str
    step: int
    phase: str
    from_digest: str | None = None
    from_version: str | None = None
    from_release: str | None = None
    to_digest: str | None = None
    to_version: str | None = None
    to_release: str | None = None
    error: str | None = None
    updated_at: float = 0.0


@dataclass
class RolloutRecord:
    """A rollout's row and its hosts."""

    id: str
    kind: str
    request: str
    packages: list[str]
    operator: str
    controller: str
    status: str
    steps: list[list[str]]
    current_step: int
    options: dict[str, Any]
    plan: dict[str, Any]
    message: str | None
    created_at: float
    updated_at: float
    hosts: list[HostState] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        """Whether the controller that runs it is still running (on this machine)."""
        name, _, pid = self.controller.rpartition(":")
        if name != socket.gethostname():
            return True  # another controller's: assume so
        try:
            os.kill(int(pid), 0)
        except (ProcessLookupError, ValueError):
            return False
        except PermissionError:
            return True
        return True

    @property
    def shown_status(self) -> str:
        """The status, with ``interrupted`` for a running rollout whose controller died."""
        if self.status == "running" and not self.alive:
            return "interrupted"
        return self.status


class LockHeld(FleetError):
    """Another rollout holds the fleet lock for some of these hosts."""


class Journal:
    """Rollouts in the state database; ``listeners`` get every event as it is written."""

    def __init__(self, db: StateDB) -> None:
        self.db = db
        db.script(SCHEMA)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def create(self, rollout_id: str, kind: str, request: str, packages: list[str],
               steps: list[list[str]], options: dict[str, Any], plan: dict[str, Any],
               hosts: list[HostState], locked: list[str], break_lock: bool = False) -> None:
        """Take the fleet lock on ``locked`` hosts and record the new rollout and its
        hosts, all in one transaction: two controllers can never both hold a host."""
        now = time.time()
        with self.db.transaction() as tx:
            self._take_locks(tx, rollout_id, packages, locked, break_lock)
            tx.execute("INSERT INTO rollouts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (rollout_id, kind, request, json.dumps(packages), operator(),
                        f"{socket.gethostname()}:{os.getpid()}", "running", json.dumps(steps),
                        0, json.dumps(options), json.dumps(plan), None, now, now))
            for h in hosts:
                tx.execute("INSERT INTO rollout_hosts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           (rollout_id, h.host, h.package, h.step, h.phase, h.from_digest,
                            h.from_version, h.from_release, h.to_digest, h.to_version,
                            h.to_release, h.error, now))
        self.note(rollout_id, None, None, "created", f"{kind} {request}")

    def claim(self, rollout_id: str, packages: list[str], hosts: list[str],
              break_lock: bool = False) -> None:
        """Take the fleet lock for an existing rollout and mark this process as the one
        running it (resume, promote, rollback), in one transaction."""
        with self.db.transaction() as tx:
            self._take_locks(tx, rollout_id, packages, hosts, break_lock)
            tx.execute("UPDATE rollouts SET controller = ?, status = 'running', updated_at = ? "
                       "WHERE id = ?", (f"{socket.gethostname()}:{os.getpid()}", time.time(),
                                        rollout_id))

    def _take_locks(self, tx: Any, rollout_id: str, packages: list[str], hosts: list[str],
                    break_lock: bool) -> None:
        """Lock (package, host) pairs inside ``tx``, or raise :class:`LockHeld` naming the
        holder. A lock held by a finished rollout is taken over."""
        if hosts:
            placeholders = ",".join("?" * len(hosts))
            rows = tx.execute(
                f"SELECT l.package, l.host, l.rollout_id, r.operator, r.status, r.created_at "
                f"FROM fleet_locks l LEFT JOIN rollouts r ON r.id = l.rollout_id "
                f"WHERE l.host IN ({placeholders})", hosts).fetchall()
            for package, host, holder, who, status, since in rows:
                if package not in packages or holder == rollout_id:
                    continue
                if status in ACTIVE and not break_lock:
                    record = self.get(holder) if status == "running" else None
                    state = record.shown_status if record else status
                    raise LockHeld(
                        f"{host} ({package}) is locked by rollout {holder} of {who}, "
                        f"{state} since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}"
                        f"; wait for it, 'fleetctl rollout resume {holder}', 'fleetctl rollback "
                        f"{holder}', or pass --break-lock", exit_code=3)
        for package in packages:
            for host in hosts:
                tx.execute("INSERT OR REPLACE INTO fleet_locks VALUES (?,?,?)",
                           (package, host, rollout_id))

    def unlock(self, rollout_id: str) -> None:
        """Release every fleet lock the rollout holds."""
        self.db.execute("DELETE FROM fleet_locks WHERE rollout_id = ?", (rollout_id,))

    def set_host(self, rollout_id: str, host: str, package: str, phase: str,
                 detail: str = "", **values: Any) -> None:
        """Record a host's new phase (and digests, releases or error) as one transaction."""
        if "error" in values:
            values["error"] = redact(values["error"])
        detail = redact(detail) or ""
        columns = {"phase": phase, "updated_at": time.time(), **values}
        assignments = ", ".join(f"{k} = ?" for k in columns)
        with self.db.transaction() as tx:
            tx.execute(f"UPDATE rollout_hosts SET {assignments} WHERE rollout_id = ? AND "
                       f"host = ? AND package = ?", (*columns.values(), rollout_id, host,
                                                     package))
            tx.execute("INSERT INTO rollout_events VALUES (?,?,?,?,?,?)",
                       (rollout_id, columns["updated_at"], host, package, phase,
                        detail or values.get("error")))
        self._notify(rollout_id, host, package, phase, detail or values.get("error") or "")

    def set_status(self, rollout_id: str, status: str, message: str | None = None,
                   current_step: int | None = None) -> None:
        """Record the rollout's status (and the step it is at)."""
        message = redact(message)
        with self.db.transaction() as tx:
            tx.execute("UPDATE rollouts SET status = ?, message = COALESCE(?, message), "
                       "current_step = COALESCE(?, current_step), updated_at = ? WHERE id = ?",
                       (status, message, current_step, time.time(), rollout_id))
        self.note(rollout_id, None, None, status, message or "")

    def note(self, rollout_id: str, host: str | None, package: str | None, phase: str,
             detail: str) -> None:
        """Record an event that changes no state (created, a warning...)."""
        detail = redact(detail) or ""
        self.db.execute("INSERT INTO rollout_events VALUES (?,?,?,?,?,?)",
                        (rollout_id, time.time(), host, package, phase, detail))
        self._notify(rollout_id, host, package, phase, detail)

    def _notify(self, rollout_id: str, host: str | None, package: str | None, phase: str,
                detail: str) -> None:
        event = {"at": time.time(), "rollout": rollout_id, "host": host, "package": package,
                 "phase": phase, "detail": detail}
        for listener in self.listeners:
            listener(event)

    def get(self, rollout_id: str) -> RolloutRecord:
        """A rollout with its hosts; FleetError when there is no such rollout."""
        rows = self.db.query("SELECT * FROM rollouts WHERE id = ?", (rollout_id,))
        if not rows:
            raise FleetError(f"no rollout {rollout_id!r}; see 'fleetctl rollout list'",
                             exit_code=2)
        return self._record(rows[0])

    def _record(self, row: dict[str, Any]) -> RolloutRecord:
        for key in ("packages", "steps", "options", "plan"):
            row[key] = json.loads(row[key])
        record = RolloutRecord(**row)
        record.hosts = self.host_states(record.id)
        return record

    def host_state(self, rollout_id: str, host: str, package: str) -> HostState | None:
        """One host's state for one package in a rollout, or None when it has none."""
        return next((s for s in self.host_states(rollout_id, host) if s.package == package),
                    None)

    def host_states(self, rollout_id: str, host: str | None = None) -> list[HostState]:
        """A rollout's host states, or one host's, without reading the rollout's plan
        (a rollout reads its hosts' states after every step of every host)."""
        sql = "SELECT * FROM rollout_hosts WHERE rollout_id = ?"
        params: tuple[str, ...] = (rollout_id,)
        if host is not None:
            sql, params = sql + " AND host = ?", (rollout_id, host)
        states = []
        for row in self.db.query(sql + " ORDER BY step, rowid", params):
            where = f"journal: rollout {rollout_id} host {row['host']}"
            for key in ("from_digest", "to_digest"):
                row[key] = optional_digest(row[key], f"{where} {key}")
            states.append(HostState(**{k: v for k, v in row.items() if k != "rollout_id"}))
        return states

    def list(self, limit: int = 20) -> list[RolloutRecord]:
        """The latest rollouts, newest first."""
        return [self._record(r) for r in self.db.query(
            "SELECT * FROM rollouts ORDER BY created_at DESC LIMIT ?", (limit,))]

    def events(self, rollout_id: str) -> list[dict[str, Any]]:
        return self.db.query("SELECT * FROM rollout_events WHERE rollout_id = ? ORDER BY at",
                             (rollout_id,))

    def history(self, package: str | None = None, host: str | None = None,
                limit: int = 200) -> list[dict[str, Any]]:
        """Host results across rollouts, newest first."""
        sql = ("SELECT h.*, r.kind, r.operator, r.status AS rollout_status, r.created_at "
               "FROM rollout_hosts h JOIN rollouts r ON r.id = h.rollout_id WHERE 1=1")
        params: list[Any] = []
        if package:
            sql += " AND h.package = ?"
            params.append(package)
        if host:
            sql += " AND h.host = ?"
            params.append(host)
        sql += " ORDER BY h.updated_at DESC LIMIT ?"
        return self.db.query(sql, (*params, limit))

    def last_analyses(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(host, package) -> the latest canary analysis' verdict there: its event (the
        rollout, when, and "outcome: the numbers")."""
        rows = self.db.query("SELECT * FROM rollout_events WHERE phase = 'analysed' "
                             "ORDER BY at")
        return {(row["host"], row["package"]): row for row in rows}

    def last_known(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(host, package) -> the digest the journal last left running there, with the
        rollout that did it (None when it removed the package)."""
        rows = self.db.query(
            "SELECT h.host, h.package, h.phase, h.to_digest, h.from_digest, h.rollout_id, "
            "r.kind FROM rollout_hosts h JOIN rollouts r ON r.id = h.rollout_id WHERE "
            "h.phase IN ('committed', 'noop', 'reverted', 'rolled-back') ORDER BY h.updated_at")
        result = {}
        for row in rows:
            back = row["phase"] == "reverted" or (row["phase"] == "rolled-back"
                                                 and row["kind"] in ("deploy", "os"))
            result[(row["host"], row["package"])] = {
                "digest": row["from_digest"] if back else row["to_digest"],
                "rollout": row["rollout_id"]}
        return result
