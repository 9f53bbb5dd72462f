"""``fleetctl run``: a playbook's rollout (or a signed bundle's), or with --check its
plan only."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated

import typer

from fleetctl.cli.common import (
    HostKeyOpt,
    InventoryOpt,
    StateDirOpt,
    TimeoutOpt,
    app,
    err,
    out,
)
from fleetctl.cli.plan import PackagesOpt, make_plan
from fleetctl.cli.rollout import (
    AllowDowngradeOpt,
    BreakLockOpt,
    DeliveryOpt,
    EventsOpt,
    ReportOpt,
    StageOnlyOpt,
    ViaSeedOpt,
    delivery_fields,
    execute,
)
from fleetctl.errors import FleetError

#: exit status when a playbook's maintenance window is closed (nothing was touched)
WINDOW_CLOSED = 5


def plan_playbook(book, inventory, timeout, host_key_policy, state_dir, packages,
                  offline=None):
    """Probe the playbook's targets afresh and plan its packages for them."""
    return make_plan(book.requests, inventory, book.group, book.pattern, list(book.where),
                     True, 0.0, timeout, host_key_policy, state_dir, packages, 300.0, offline)


def unpack_bundle(path: Path, trust: list[Path] | None, state_dir: Path | None,
                  allow_downgrade: bool):
    """Verify a bundle (signature, every member, its channel's sequence and expiry)
    while unpacking it into the state dir, and record it as accepted; returns
    (verified, its folder, a note). Nothing is touched before this succeeds."""
    from fleetctl.bundle import BundleError, accept, check_fresh, verify
    from fleetctl.keys import trusted_keys
    from fleetctl.state import StateDB, default_state_dir
    from fleetctl.statedir import private_dir

    state = private_dir(state_dir or default_state_dir())
    try:
        with path.open("rb") as f:      # its manifest comes first: this names the bundle
            name = hashlib.sha256(f.read(1 << 20)).hexdigest()[:16]
    except OSError as exc:
        raise BundleError(f"{path}: {exc.strerror}") from None
    folder = private_dir(state / "bundles") / name
    checked = verify(path, trusted_keys(trust or [], state), (folder, state / "blobs"))
    db = StateDB(state)
    note = check_fresh(db, checked, allow_downgrade)
    accept(db, checked)
    return checked, folder, note


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
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
    = False,
    ignore_window: Annotated[bool, typer.Option("--ignore-window", help="Start even outside "
                                                "the playbook's maintenance window.")] = False,
    delivery: DeliveryOpt = None, via_seed: ViaSeedOpt = False, stage_only: StageOnlyOpt = False,
    allow_downgrade: AllowDowngradeOpt = False,
    inventory: InventoryOpt = None, break_lock: BreakLockOpt = False,
    report: ReportOpt = False, events: EventsOpt = None, timeout: TimeoutOpt = 5.0,
    host_key_policy: HostKeyOpt = None, state_dir: StateDirOpt = None,
    packages: PackagesOpt = None,
) -> None:
    """Run a playbook: its packages in dependency order, in its steps, within its window.

    --stage-only delivers and stages everywhere at once, window or not; the next
    run activates. Exit codes as for deploy, and 5 when the window is closed.

    Example: fleetctl run playbooks/factory-a-ollama.yml --check
    """
    from fleetctl.playbook import load_playbook, window_closed
    from fleetctl.rollout import Options

    if (playbook is None) == (bundle is None):
        raise FleetError("give a PLAYBOOK or --bundle FILE (one of them)", exit_code=2)
    offline = unpacked = None
    if bundle is not None:
        checked, unpacked, note = unpack_bundle(bundle, trust, state_dir, allow_downgrade)
        (err if report else out).print((
            f"{bundle}: verified, signed by trusted key {checked.signed_by}; channel "
            f"{checked.manifest.channel} sequence {checked.manifest.sequence}"
            + (f"; {note}" if note else "")), highlight=False)
        playbook, packages = unpacked / "playbook.yml", unpacked / "packages"
        offline = checked.platform_images(json.loads((unpacked / "plan.json").read_text()))
        delivery = "ssh"
    assert playbook is not None
    book = load_playbook(playbook)
    the_plan, catalog = plan_playbook(book, inventory, timeout, host_key_policy, state_dir,
                                      packages, offline)
    book.apply(catalog)     # an override naming a package not in the catalog fails now
    window = book.window.to_json() if book.window and not ignore_window and not stage_only \
        else None
    closed = window_closed(window)
    if closed and not check:
        raise FleetError(f"{playbook}: {closed}; run it then, or pass --ignore-window",
                         exit_code=WINDOW_CLOSED)
    options = Options(
        steps=list(book.steps), canaries=list(book.canary), pause=book.pause,
        max_failures=book.max_failures, failure_scope=book.failure_scope,
        unreachable=book.unreachable, gate_timeout=book.gate_timeout, keep_releases=book.keep,
        rollback_all=book.rollback_all, break_lock=break_lock, connect_timeout=timeout,
        window=window, playbook={"path": str(book.path.resolve()), "sha256": book.sha256},
        bundle=str(unpacked) if unpacked else None,
        **delivery_fields(delivery, via_seed, stage_only))
    execute(the_plan, options, dry_run=check, yes=yes, report=report, events=events,
            inventory=inventory, state_dir=state_dir, host_key_policy=host_key_policy,
            packages=packages, allow_downgrade=allow_downgrade)
