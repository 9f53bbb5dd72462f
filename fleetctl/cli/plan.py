"""``fleetctl packages`` and ``fleetctl plan``: the catalog, and what a deploy would do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fleetctl.cli.common import (
    GroupOpt,
    HostKeyOpt,
    InventoryOpt,
    JsonOpt,
    LimitOpt,
    MaxAgeOpt,
    RefreshOpt,
    StateDirOpt,
    TimeoutOpt,
    WhereOpt,
    app,
    out,
    styled,
)
from fleetctl.errors import FleetError

PackagesOpt = Annotated[Path | None, typer.Option(
    "--packages", help="Package catalog folder \\[default: $FLEETCTL_PACKAGES, else packages/].")]
TtlOpt = Annotated[float, typer.Option("--registry-ttl", help="Reuse registry answers up to "
                                       "this many seconds old.")]

packages_app = typer.Typer(
    help="The package catalog: one folder per package with package.yml and a compose "
         "template.\n\nExample: fleetctl packages show ollama",
    no_args_is_help=True,
)
app.add_typer(packages_app, name="packages")


def load_catalog(path: Path | None):
    from fleetctl.catalog import default_catalog_dir
    from fleetctl.catalog import load_catalog as load

    return load(path or default_catalog_dir())


@packages_app.command("list")
def packages_list(packages: PackagesOpt = None, as_json: JsonOpt = False) -> None:
    """List the catalog's packages.

    Example: fleetctl packages list --json
    """
    catalog = load_catalog(packages)
    if as_json:
        print(json.dumps([p.to_json() for p in catalog.packages.values()], indent=2))
        return
    table = Table(title=f"{len(catalog.packages)} packages in {catalog.root}")
    for column in ("name", "group", "image", "default", "requires", "depends", "description"):
        table.add_column(column, overflow="fold")
    for p in catalog.packages.values():
        table.add_row(p.name, p.group, p.image, p.default, " ".join(p.requires) or "-",
                      " ".join(p.depends) or "-", p.description)
    out.print(table)


@packages_app.command("show")
def packages_show(name: Annotated[str, typer.Argument(help="Package name or alias.")],
                  packages: PackagesOpt = None, as_json: JsonOpt = False) -> None:
    """Show one package: image, versions, requirements, health check, template.

    Example: fleetctl packages show open-webui
    """
    package = load_catalog(packages).get(name)
    data = package.to_json()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if isinstance(value, (list, dict)):
            value = json.dumps(value) if value else "-"
        out.print(styled((f"{key:12}", "bold"), f" {value}"), highlight=False)


def make_plan(requests: list[str], inventory, group, limit, where, refresh, max_age,
              timeout, host_key_policy, state_dir, packages, ttl, offline=None):
    """Probe the selected hosts and plan the packages for them (shared with deploy);
    ``offline``: the images to choose from instead of the registry's."""
    from fleetctl.catalog import parse_request
    from fleetctl.cli.fleet import probe_selected
    from fleetctl.plan import make_plan as plan_for
    from fleetctl.state import StateDB, default_state_dir

    if not group and not limit:
        raise FleetError("say which hosts: --group G or --limit PATTERN", exit_code=2)
    catalog = load_catalog(packages)
    wanted = [parse_request(r) for r in requests]
    catalog.resolve(wanted)  # a bad request fails before any host is probed
    results = probe_selected(inventory, group, limit, where, refresh, max_age, timeout,
                             host_key_policy, state_dir)
    db = StateDB(state_dir or default_state_dir())
    return plan_for(catalog, wanted, results, db, ttl=ttl, offline=offline), catalog


@app.command()
def plan(
    requests: Annotated[list[str], typer.Argument(help="PACKAGE[:VERSION], one or more.",
                                                  metavar="PACKAGE[:VERSION]...")],
    inventory: InventoryOpt = None, group: GroupOpt = None, limit: LimitOpt = None,
    where: WhereOpt = None,
    output: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="Write the plan file "
                                                  "a deploy can execute.")] = None,
    refresh: RefreshOpt = False, max_age: MaxAgeOpt = 300.0, timeout: TimeoutOpt = 5.0,
    host_key_policy: HostKeyOpt = None, state_dir: StateDirOpt = None,
    packages: PackagesOpt = None, ttl: TtlOpt = 300.0,
) -> None:
    """Decide per host which image each package would run (pinned by digest) and why.

    Changes nothing. Exit 0 when every host answered, 4 when some did not.

    Example: fleetctl plan ollama --group factory-a --out plan.json
    """
    if output not in ("table", "json"):
        raise FleetError(f"--format {output!r} should be table or json", exit_code=2)
    result, _ = make_plan(requests, inventory, group, limit, where, refresh, max_age, timeout,
                          host_key_policy, state_dir, packages, ttl)
    if out_file:
        result.write(out_file)
    if output == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        render_plan(result)
        if out_file:
            out.print(f"plan written to {out_file}", highlight=False)
    if result.unreachable:
        raise typer.Exit(4)


def render_plan(plan, console=out) -> None:
    """The plan as a table, then its totals and the hosts that did not answer."""
    from collections import Counter

    from fleetctl.plan import transfer_by_site

    table = Table(title=f"plan: {', '.join(plan.requests)}")
    for column in ("host", "package", "action", "current", "target", "pull", "reason"):
        table.add_column(column, overflow="fold")
    colours = {"blocked": "red", "noop": "dim", "install": "green", "upgrade": "cyan",
               "downgrade": "yellow"}
    for e in plan.entries:
        current = f"{e.current_version or '?'} {_short(e.current_digest)}" if e.current else "-"
        target = f"{e.tag} {_short(e.digest)}" if e.digest else "-"
        table.add_row(e.host, e.package, styled((e.action, colours[e.action])), current,
                      target, _mib(e.pull_bytes), e.reason)
    console.print(table)
    counts = Counter(e.action for e in plan.entries)
    total = sum(e.pull_bytes for e in plan.entries)
    console.print(", ".join(f"{n} {a}" for a, n in counts.items()) + f"; {_mib(total)} to pull",
                  highlight=False)
    for site in transfer_by_site(plan):
        at = (f", about {_duration(site.seconds)} at {site.rate * 8 / 1000:g} kbit/s"
              if site.seconds is not None else "")
        console.print(f"site {site.site}: {site.hosts} hosts pull {_mib(site.bytes)} over its "
                      f"uplink{at}", highlight=False)
    for host, why in plan.unreachable.items():
        console.print(styled(("unreachable", "red"), f" {host}: {why}"), highlight=False)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes \
        else f"{secs}s"


def _short(digest: str | None) -> str:
    return f"@{digest[7:19]}" if digest else ""


def _mib(size: int) -> str:
    if not size:
        return "-"
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"
