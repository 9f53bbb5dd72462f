"""``fleetctl run``: a playbook's rollout, or with --check its plan only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetctl.cli.common import (
    HostKeyOpt,
    InventoryOpt,
    StateDirOpt,
    TimeoutOpt,
    app,
)
from fleetctl.cli.plan import PackagesOpt, make_plan
from fleetctl.cli.rollout import BreakLockOpt, EventsOpt, ReportOpt, execute
from fleetctl.errors import FleetError

#: exit status when a playbook's maintenance window is closed (nothing was touched)
WINDOW_CLOSED = 5


def plan_playbook(book, inventory, timeout, host_key_policy, state_dir, packages):
    """Probe the playbook's targets afresh and plan its packages for them."""
    return make_plan(book.requests, inventory, book.group, book.pattern, list(book.where),
                     True, 0.0, timeout, host_key_policy, state_dir, packages, 300.0)


@app.command()
def run(
    playbook: Annotated[Path, typer.Argument(help="The playbook YAML file.",
                                             metavar="PLAYBOOK")],
    check: Annotated[bool, typer.Option("--check", help="Plan every package and host, "
                                         "change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
    = False,
    ignore_window: Annotated[bool, typer.Option("--ignore-window", help="Start even outside "
                                                "the playbook's maintenance window.")] = False,
    inventory: InventoryOpt = None, break_lock: BreakLockOpt = False,
    report: ReportOpt = False, events: EventsOpt = None, timeout: TimeoutOpt = 5.0,
    host_key_policy: HostKeyOpt = None, state_dir: StateDirOpt = None,
    packages: PackagesOpt = None,
) -> None:
    """Run a playbook: its packages in dependency order, in its steps, within its window.

    Exit codes as for deploy, and 5 when the maintenance window is closed.

    Example: fleetctl run playbooks/factory-a-ollama.yml --check
    """
    from fleetctl.playbook import load_playbook, window_closed
    from fleetctl.rollout import Options

    book = load_playbook(playbook)
    the_plan, catalog = plan_playbook(book, inventory, timeout, host_key_policy, state_dir,
                                      packages)
    book.apply(catalog)     # an override naming a package not in the catalog fails now
    window = book.window.to_json() if book.window and not ignore_window else None
    closed = window_closed(window)
    if closed and not check:
        raise FleetError(f"{playbook}: {closed}; run it then, or pass --ignore-window",
                         exit_code=WINDOW_CLOSED)
    options = Options(
        steps=list(book.steps), canaries=list(book.canary), pause=book.pause,
        max_failures=book.max_failures, failure_scope=book.failure_scope,
        unreachable=book.unreachable, gate_timeout=book.gate_timeout, keep_releases=book.keep,
        rollback_all=book.rollback_all, break_lock=break_lock, connect_timeout=timeout,
        window=window, playbook={"path": str(book.path.resolve()), "sha256": book.sha256})
    execute(the_plan, options, dry_run=check, yes=yes, report=report, events=events,
            inventory=inventory, state_dir=state_dir, host_key_policy=host_key_policy,
            packages=packages)
