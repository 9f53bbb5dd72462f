"""``fleetctl run``: a playbook's rollout (or a signed bundle's), or with --check its
plan only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetctl.cli.common import (
    AllowDowngradeOpt,
    BreakLockOpt,
    DeliveryOpt,
    EventsOpt,
    HostKeyOpt,
    InventoryOpt,
    NoAnalysisOpt,
    PackagesOpt,
    ReportOpt,
    StageOnlyOpt,
    StateDirOpt,
    TimeoutOpt,
    ViaSeedOpt,
    YesOpt,
    app,
    err,
    open_fleet,
    out,
)
from fleetctl.cli.execute import execute
from fleetctl.cli.progress import ProbeProgress
from fleetctl.errors import FleetError


@app.command()
def run(
    playbook: Annotated[Path | None, typer.Argument(
        help="The playbook YAML file (not with --bundle).", metavar="PLAYBOOK")] = None,
    bundle: Annotated[Path | None, typer.Option(
        "--bundle", help="Run the playbook of this signed bundle with its packages and "
                         "images only (verified first; images go over SSH).")] = None,
    trust: Annotated[list[Path] | None, typer.Option(
        "--trust", help="--bundle: a trusted public key (.pub), besides those in "
                        "<state-dir>/trusted-keys/.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Plan every package and host, "
                                         "change nothing.")] = False,
    yes: YesOpt = False,
    ignore_window: Annotated[bool, typer.Option("--ignore-window", help="Start even outside "
                                                "the playbook's maintenance window.")] = False,
    delivery: DeliveryOpt = None, via_seed: ViaSeedOpt = False, stage_only: StageOnlyOpt = False,
    no_analysis: NoAnalysisOpt = False, allow_downgrade: AllowDowngradeOpt = False,
    inventory: InventoryOpt = None, break_lock: BreakLockOpt = False,
    report_json: ReportOpt = False, events: EventsOpt = None, timeout: TimeoutOpt = 5.0,
    host_key_policy: HostKeyOpt = None, state_dir: StateDirOpt = None,
    packages: PackagesOpt = None,
) -> None:
    """Run a playbook: its packages in dependency order, in its steps, within its window.

    --stage-only delivers and stages everywhere at once, window or not; the next
    run activates. Exit codes as for deploy, and 5 when the window is closed.

    Example: fleetctl run playbooks/factory-a-ollama.yml --check
    """
    from fleetctl.api import Selection, load_playbook

    if (playbook is None) == (bundle is None):
        raise FleetError("give a PLAYBOOK or --bundle FILE (one of them)", exit_code=2)
    fleet = open_fleet(inventory, state_dir, packages, host_key_policy, timeout, events=events)
    opened = None
    if bundle is not None:
        opened = fleet.open_bundle(bundle, trust or [], allow_downgrade)
        (err if report_json else out).print(
            f"{bundle}: verified, signed by trusted key {opened.signed_by}; channel "
            f"{opened.channel} sequence {opened.sequence}"
            + (f"; {opened.note}" if opened.note else ""), highlight=False)
        playbook, packages, delivery = opened.playbook, opened.packages, "ssh"
    assert playbook is not None
    book = load_playbook(playbook)
    flags = {"delivery": delivery, "via_seed": via_seed, "stage_only": stage_only,
             "break_lock": break_lock, "analysis": not no_analysis}
    options = None if check else fleet.playbook_options(book, ignore_window=ignore_window,
                                                        bundle=opened, **flags)
    hosts = fleet.hosts(Selection(book.group, book.pattern))
    with ProbeProgress(err, len(hosts)) as progress:
        the_plan, _ = fleet.playbook_plan(book, packages=packages,
                                          offline=opened.offline if opened else None,
                                          on_result=progress.update)
    execute(fleet, the_plan, options, dry_run=check, yes=yes, report_json=report_json,
            allow_downgrade=allow_downgrade)
