"""``fleetctl audit`` and ``fleetctl facts``: probe the hosts, report what they are."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fleetctl.cli.common import (
    GroupOpt,
    HostKeyOpt,
    InventoryOpt,
    LimitOpt,
    MaxAgeOpt,
    RefreshOpt,
    StateDirOpt,
    TimeoutOpt,
    WhereOpt,
    app,
    err,
    open_fleet,
    out,
    styled,
)
from fleetctl.cli.progress import ProbeProgress
from fleetctl.errors import FleetError


def _probe(fleet, selection, refresh: bool, max_age: float, call=None):
    """``fleet.probe`` (or ``call``) with probe progress on stderr."""
    with ProbeProgress(err, len(fleet.hosts(selection))) as progress:
        return (call or fleet.probe)(selection, refresh=refresh, max_age=max_age,
                                     on_result=progress.update)


@app.command()
def audit(
    inventory: InventoryOpt = None, group: GroupOpt = None, limit: LimitOpt = None,
    where: WhereOpt = None,
    output: Annotated[str, typer.Option("--format", "-f",
                                        help="table, json or csv.")] = "table",
    rules: Annotated[Path | None, typer.Option("--rules", help="Audit rules (YAML).")] = None,
    os: Annotated[bool, typer.Option("--os", help="Also each Jetson's boot slots, firmware "
                                     "and OS update state (one more round trip).")] = False,
    refresh: RefreshOpt = False, max_age: MaxAgeOpt = 300.0, timeout: TimeoutOpt = 5.0,
    host_key_policy: HostKeyOpt = None, state_dir: StateDirOpt = None,
) -> None:
    """Probe the hosts and report what the fleet runs, with findings.

    Exit 0 when every host answered, 4 when some did not.

    Example: fleetctl audit -i inventory.yml --group factory-a --format json
    """
    from functools import partial

    from fleetctl.api import Selection

    if output not in ("table", "json", "csv"):
        raise FleetError(f"--format {output!r} should be table, json or csv", exit_code=2)
    fleet = open_fleet(inventory, state_dir, host_key_policy=host_key_policy, timeout=timeout)
    report = _probe(fleet, Selection(group, limit, tuple(where or ())), refresh, max_age,
                    partial(fleet.audit, rules=rules, os=os))
    if output == "json":
        print(json.dumps(report.to_json(), indent=2))
    elif output == "csv":
        _render_csv(report.rows)
    else:
        _render_audit(report.rows, report.summary, report.findings, os)
    if report.summary["unreachable"]:
        raise typer.Exit(4)


def _render_csv(rows: list[dict]) -> None:
    import csv

    columns = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(sys.stdout, columns)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ";".join(v) if isinstance(v, list) else v for k, v in r.items()})


def _render_audit(rows: list[dict], total: dict, found: list, os: bool = False) -> None:
    table = Table(title=f"{total['answered']}/{total['hosts']} hosts answered")
    columns = [("host", "host"), ("address", "address"), ("status", "status"), ("L4T", "l4t"),
               ("JetPack", "jetpack"), ("CUDA", "cuda"), ("module", "module"),
               ("mem MiB", "memory_mb"), ("disk free MiB", "disk_free_mb"),
               ("Docker", "docker"), ("runtime", "runtime"), ("compose", "compose"),
               ("apps", "apps")]
    if os:
        columns += [("slot", "slot"), ("firmware", "firmware"), ("OS state", "os_state")]
    for title, _ in columns:
        table.add_column(title, overflow="fold")
    for r in rows:
        cells = []
        for _, key in columns:
            value = r.get(key)
            if key == "status" and r["status"] != "ok":
                cells.append(styled((r["reason"], "red")))
                continue
            elif key == "module" and value is None and r["status"] == "ok":
                value = r.get("platform")
            cells.append(", ".join(value) if isinstance(value, list) else
                         "-" if value is None else str(value))
        table.add_row(*cells)
    out.print(table)
    jetpacks = ", ".join(f"{k}: {v}" for k, v in total["jetpack"].items())
    modules = ", ".join(f"{k}: {v}" for k, v in total["module"].items())
    out.print(f"JetPack  {jetpacks or '-'}\nmodules  {modules or '-'}", highlight=False)
    if total["unreachable"]:
        out.print(styled((f"unreachable {len(total['unreachable'])}:", "red"), " " + "; ".join(
            f"{h} ({why})" for h, why in total["unreachable"].items())))
    for f in found:
        out.print(styled(("finding", "yellow"), f" {f.host}: {f.rule}: {f.message}"),
                  highlight=False)


@app.command()
def facts(
    inventory: InventoryOpt = None, group: GroupOpt = None, limit: LimitOpt = None,
    where: WhereOpt = None, refresh: RefreshOpt = False, max_age: MaxAgeOpt = 300.0,
    timeout: TimeoutOpt = 5.0, host_key_policy: HostKeyOpt = None,
    state_dir: StateDirOpt = None,
) -> None:
    """Print every selected host's facts as JSON (from the cache when fresh).

    Example: fleetctl facts -i inventory.yml --limit jetson-a1 --refresh
    """
    from fleetctl.api import Selection

    fleet = open_fleet(inventory, state_dir, host_key_policy=host_key_policy, timeout=timeout)
    results = _probe(fleet, Selection(group, limit, tuple(where or ())), refresh, max_age)
    print(json.dumps({r.host.name: r.facts.to_json() if r.facts else
                      {"error": r.error, "detail": r.detail} for r in results}, indent=2))
    if any(not r.ok for r in results):
        raise typer.Exit(4)

