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
    out,
    styled,
)
from fleetctl.errors import FleetError


def probe_selected(inventory: Path | None, group: str | None, limit: str | None,
           where: list[str] | None, refresh: bool, max_age: float, timeout: float,
           host_key_policy: str | None, state_dir: Path | None):
    """Select hosts, get their facts (cache or probe, with progress), apply --where."""
    from fleetctl.inventory import load_inventory
    from fleetctl.probe import probe_hosts, select_by_facts
    from fleetctl.state import StateDB, default_state_dir
    from fleetctl.targets import host_key_policy as check_policy
    from fleetctl.targets import parse_where

    selectors = [parse_where(w) for w in where or []]
    hosts = load_inventory(inventory).select(limit, group)
    if host_key_policy is not None:
        check_policy({}, host_key_policy)
    db = StateDB(state_dir or default_state_dir())
    with _ProbeProgress(len(hosts)) as progress:
        results = probe_hosts(hosts, db, refresh=refresh, max_age=max_age, timeout=timeout,
                              policy_override=host_key_policy, on_result=progress.update)
    if selectors:
        matched = select_by_facts(results, selectors)
        if not matched:
            raise FleetError(f"--where {' '.join(where)} matches none of the {len(results)} "
                             "selected hosts that answered", exit_code=2)
        results = matched + [r for r in results if not r.ok]
    return results


class _ProbeProgress:
    """Live progress on stderr: a bar on a terminal, one plain line per host otherwise."""

    def __init__(self, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.live = err.is_terminal
        self.progress = Progress(TextColumn("probing"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.description}"), console=err,
                                 transient=True) if self.live else None
        self.total = total

    def __enter__(self) -> _ProbeProgress:
        if self.progress:
            self.progress.start()
            self.task = self.progress.add_task("", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def update(self, result) -> None:
        state = "cached" if result.cached else "ok" if result.ok else result.error
        line = f"{result.host.name}: {state}" + ("" if result.cached else
                                                 f" ({result.seconds:.2f}s)")
        if self.progress:
            self.progress.update(self.task, advance=1, description=line)
        else:
            err.print(f"probe: {line}", highlight=False, markup=False)


@app.command()
def audit(
    inventory: InventoryOpt = None, group: GroupOpt = None, limit: LimitOpt = None,
    where: WhereOpt = None,
    output: Annotated[str, typer.Option("--format", "-f",
                                        help="table, json or csv.")] = "table",
    rules: Annotated[Path | None, typer.Option("--rules", help="Audit rules (YAML).")] = None,
    refresh: RefreshOpt = False, max_age: MaxAgeOpt = 300.0, timeout: TimeoutOpt = 5.0,
    host_key_policy: HostKeyOpt = None, state_dir: StateDirOpt = None,
) -> None:
    """Probe the hosts and report what the fleet runs, with findings.

    Exit 0 when every host answered, 4 when some did not.

    Example: fleetctl audit -i inventory.yml --group factory-a --format json
    """
    from fleetctl import audit as core

    if output not in ("table", "json", "csv"):
        raise FleetError(f"--format {output!r} should be table, json or csv", exit_code=2)
    checks = core.load_rules(rules)
    results = probe_selected(inventory, group, limit, where, refresh, max_age, timeout,
                     host_key_policy, state_dir)
    rows = [core.row(r) for r in results]
    found = core.findings(results, checks, _journal_digests(state_dir))
    total = core.summary(results)
    if output == "json":
        print(json.dumps({"hosts": rows, "summary": total,
                          "findings": [f.__dict__ for f in found]}, indent=2))
    elif output == "csv":
        _render_csv(rows)
    else:
        _render_audit(rows, total, found)
    if total["unreachable"]:
        raise typer.Exit(4)


def _journal_digests(state_dir: Path | None) -> dict:
    from fleetctl.journal import Journal
    from fleetctl.state import StateDB, default_state_dir

    return Journal(StateDB(state_dir or default_state_dir())).last_known()


def _render_csv(rows: list[dict]) -> None:
    import csv

    columns = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(sys.stdout, columns)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ";".join(v) if isinstance(v, list) else v for k, v in r.items()})


def _render_audit(rows: list[dict], total: dict, found: list) -> None:
    table = Table(title=f"{total['answered']}/{total['hosts']} hosts answered")
    columns = [("host", "host"), ("address", "address"), ("status", "status"), ("L4T", "l4t"),
               ("JetPack", "jetpack"), ("CUDA", "cuda"), ("module", "module"),
               ("mem MiB", "memory_mb"), ("disk free MiB", "disk_free_mb"),
               ("Docker", "docker"), ("runtime", "runtime"), ("compose", "compose"),
               ("apps", "apps")]
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
    results = probe_selected(inventory, group, limit, where, refresh, max_age, timeout,
                     host_key_policy, state_dir)
    print(json.dumps({r.host.name: r.facts.to_json() if r.facts else
                      {"error": r.error, "detail": r.detail} for r in results}, indent=2))
    if any(not r.ok for r in results):
        raise typer.Exit(4)

