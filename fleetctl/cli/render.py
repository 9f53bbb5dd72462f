"""How results look on a screen: plans, rollout records and their JSON reports. Pure
rendering of what :mod:`fleetctl.api` returns; no decisions."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from fleetctl.cli.common import out, styled
from fleetctl.plan import Plan, transfer_by_site
from fleetctl.rollout.journal import RolloutRecord

#: a finished rollout's status -> the exit code (anything else: 1)
EXIT_CODES = {"completed": 0, "paused": 0, "rolled-back": 0, "incomplete": 4}
ACTION_COLOURS = {"blocked": "red", "noop": "dim", "install": "green", "upgrade": "cyan",
                  "downgrade": "yellow"}


def render_plan(plan: Plan, console: Console = out) -> None:
    """The plan as a table, then its totals and the hosts that did not answer."""
    table = Table(title=f"plan: {', '.join(plan.requests)}")
    for column in ("host", "package", "action", "current", "target", "pull", "reason"):
        table.add_column(column, overflow="fold")
    for e in plan.entries:
        current = f"{e.current_version or '?'} {pinned(e.current_digest)}" if e.current \
            else e.current_version or "-"      # an l4t entry: the release alone
        target = f"{e.tag} {pinned(e.digest)}" if e.digest else \
            f"{e.version} ({e.source})" if e.source and e.version else "-"
        table.add_row(e.host, e.package, styled((e.action, ACTION_COLOURS[e.action])),
                      current, target, mib(e.pull_bytes), e.reason)
    console.print(table)
    counts = Counter(e.action for e in plan.entries)
    total = sum(e.pull_bytes for e in plan.entries)
    console.print(", ".join(f"{n} {a}" for a, n in counts.items()) + f"; {mib(total)} to pull",
                  highlight=False)
    for site in transfer_by_site(plan):
        at = (f", about {duration(site.seconds)} at {site.rate * 8 / 1000:g} kbit/s"
              if site.seconds is not None else "")
        console.print(f"site {site.site}: {site.hosts} hosts pull {mib(site.bytes)} over its "
                      f"uplink{at}", highlight=False)
    for host, why in plan.unreachable.items():
        console.print(styled(("unreachable", "red"), f" {host}: {why}"), highlight=False)


def report(record: RolloutRecord) -> dict[str, Any]:
    """A rollout as ``--json`` prints it."""
    return {"id": record.id, "kind": record.kind, "request": record.request,
            "status": record.shown_status, "message": record.message,
            "operator": record.operator, "steps": record.steps,
            "hosts": [s.__dict__ for s in record.hosts]}


def render_record(record: RolloutRecord, console: Console = out) -> None:
    """A rollout as a table of its hosts, then its message."""
    table = Table(title=f"rollout {record.id} ({record.kind} {record.request}): "
                        f"{record.shown_status}")
    for column in ("step", "host", "package", "phase", "from", "to", "note"):
        table.add_column(column, overflow="fold")
    for s in record.hosts:
        table.add_row(str(s.step + 1) if s.step >= 0 else "-", s.host, s.package, s.phase,
                      f"{s.from_version or '-'} {short(s.from_digest)}",
                      f"{s.to_version or '-'} {short(s.to_digest)}", s.error or "")
    console.print(table)
    if record.message:
        console.print(record.message, highlight=False)


def short(digest: str | None) -> str:
    """The first 12 hex digits of a digest, for tables."""
    return digest[7:19] if digest else ""


def pinned(digest: str | None) -> str:
    """``@`` and the first 12 hex digits of a digest ('' for none)."""
    return f"@{short(digest)}" if digest else ""


def mib(size: int) -> str:
    if not size:
        return "-"
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes \
        else f"{secs}s"
