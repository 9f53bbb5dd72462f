"""Running a rollout from the command line: show the plan, confirm, run it through
:class:`~fleetctl.api.Fleet` with live progress, show the result and exit with its
code. Shared by ``deploy`` and ``run``; no pipeline logic of its own."""

from __future__ import annotations

import json
import sys

import typer

from fleetctl.cli.common import err, out
from fleetctl.cli.progress import watching
from fleetctl.cli.render import EXIT_CODES, render_plan, render_record, report
from fleetctl.errors import FleetError


def execute(fleet, the_plan, options, *, dry_run: bool, yes: bool, report_json: bool,
            allow_downgrade: bool) -> None:
    """Show the plan, then (unless a dry run, and once confirmed) roll it out."""
    from fleetctl.api import NothingToDo

    screen = err if report_json else out
    render_plan(the_plan, screen)
    if dry_run:
        return
    if not yes and fleet.check_plan(the_plan, allow_downgrade):
        if not sys.stdin.isatty():
            raise FleetError("not a terminal: pass --yes to deploy without confirmation",
                             exit_code=2)
        typer.confirm("deploy this plan?", abort=True)
    try:
        with watching(fleet.journal, err):
            record = fleet.deploy(the_plan, options, allow_downgrade=allow_downgrade)
    except NothingToDo:
        screen.print("nothing to do: every host is at its target", highlight=False)
        raise typer.Exit(4 if the_plan.unreachable else 0) from None
    finish(record, report_json)


def finish(record, report_json: bool) -> None:
    """Show a finished rollout; exit 0 completed or paused, 4 deferred, 1 failed."""
    if report_json:
        print(json.dumps(report(record), indent=2))
    else:
        render_record(record)
    code = EXIT_CODES.get(record.status, 1)
    if code:
        raise typer.Exit(code)
