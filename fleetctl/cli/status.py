"""``fleetctl status``: how the fleet's apps and devices are doing now."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from fleetctl.api import HostStatus
from fleetctl.cli.common import (
    GroupOpt,
    HostKeyOpt,
    InventoryOpt,
    LimitOpt,
    PackagesOpt,
    StateDirOpt,
    TimeoutOpt,
    WhereOpt,
    app,
    open_fleet,
    out,
    styled,
)
from fleetctl.errors import FleetError

FORMATS = ("table", "json", "prometheus")


@app.command()
def status(
    inventory: InventoryOpt = None, group: GroupOpt = None, limit: LimitOpt = None,
    where: WhereOpt = None,
    output: Annotated[str, typer.Option("--format", "-f", help="table, json or prometheus "
                                        "(text exposition, for node-exporter's textfile "
                                        "collector).")] = "table",
    watch: Annotated[float | None, typer.Option(
        "--watch", min=1, help="Redraw the table every this many seconds.")] = None,
    timeout: TimeoutOpt = 5.0, host_key_policy: HostKeyOpt = None,
    state_dir: StateDirOpt = None, packages: PackagesOpt = None,
) -> None:
    """Per host and package: what runs (version, digest), its state, health, restarts,
    uptime and health check now; the device's RAM, GPU load and temperature
    (tegrastats). One SSH round trip per host.

    Exit 0 when every host answered, 4 when some did not.

    Example: fleetctl status --group factory-a --watch 10
    """
    from fleetctl.api import Selection

    if output not in FORMATS:
        raise FleetError(f"--format {output!r} should be {', '.join(FORMATS)}", exit_code=2)
    if watch is not None and output != "table":
        raise FleetError("--watch redraws the table; leave out --format", exit_code=2)
    fleet = open_fleet(inventory, state_dir, packages, host_key_policy, timeout)
    selection = Selection(group, limit, tuple(where or ())).required()
    statuses = fleet.fleet_status(selection)
    if watch is not None:
        with Live(_table(statuses), console=out, auto_refresh=False) as live:
            while True:
                time.sleep(watch)
                live.update(_table(fleet.fleet_status(selection)), refresh=True)
    if output == "json":
        print(json.dumps([s.to_json() for s in statuses], indent=2))
    elif output == "prometheus":
        print(fleet.status_exposition(statuses), end="")
    else:
        out.print(_table(statuses))
    if not all(s.reachable for s in statuses):
        raise typer.Exit(4)


def _table(statuses: list[HostStatus]) -> Table:
    table = Table(title=Text(f"fleet status, {time.strftime('%H:%M:%S')}"),
                  title_justify="left")
    for column in ("host", "package", "version", "digest", "state", "restarts", "up",
                   "check", "last analysis", "RAM", "GPU", "temp"):
        table.add_column(column, overflow="fold")
    for status in statuses:
        device = _device(status)
        if not status.reachable:
            seen = f"; last seen {_ago(time.time() - status.last_seen)} ago" \
                if status.last_seen else ""
            table.add_row(status.host, styled((f"unreachable: {status.error}{seen}", "red")),
                          *[""] * 10)
            continue
        if not status.apps:
            table.add_row(status.host, styled(("no fleetctl package", "dim")), *[""] * 7,
                          *device)
        for app_status in status.apps:
            c = app_status.container
            state = c.state + (f" ({c.health})" if c.health != "none" else "")
            check = "-" if app_status.check_status is None else (
                f"{app_status.check_status or 'no answer'} {app_status.check_ms or 0:.0f} ms")
            table.add_row(status.host, c.package, c.version, (c.digest or "-")[7:19],
                          styled((state, "green" if c.state == "running" else "red")),
                          str(c.restarts), _ago(c.uptime) if c.uptime is not None else "-",
                          styled((check, "green" if app_status.healthy else "yellow")),
                          _analysis(app_status.analysis), *device)
    return table


def _analysis(found: dict | None) -> str:
    """``successful, 3h ago``: the latest canary analysis' outcome (numbers in JSON)."""
    if not found:
        return "-"
    return f"{found['detail'].partition(':')[0]}, {_ago(time.time() - found['at'])} ago"


def _device(status: HostStatus) -> list[str]:
    stats = status.tegrastats
    if stats is None:
        if status.mem_total_mb and status.mem_available_mb is not None:
            used = status.mem_total_mb - status.mem_available_mb
            return [f"{used:,}/{status.mem_total_mb:,} MB", "-", "-"]
        return ["-", "-", "-"]
    return [f"{stats.ram_used_mb:,}/{stats.ram_total_mb:,} MB",
            "-" if stats.gpu_load_percent is None else f"{stats.gpu_load_percent}%",
            "-" if stats.temp_max_c is None else f"{stats.temp_max_c:.0f} C"]


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
