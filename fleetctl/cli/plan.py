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
    PackagesOpt,
    RefreshOpt,
    StateDirOpt,
    TimeoutOpt,
    TtlOpt,
    WhereOpt,
    app,
    err,
    open_fleet,
    out,
    styled,
)
from fleetctl.cli.progress import ProbeProgress
from fleetctl.cli.render import render_plan
from fleetctl.errors import FleetError

packages_app = typer.Typer(
    help="The package catalog: one folder per package with package.yml and a compose "
         "template.\n\nExample: fleetctl packages show ollama",
    no_args_is_help=True,
)
app.add_typer(packages_app, name="packages")


def _catalog(packages: Path | None):
    return open_fleet(packages=packages).catalog


@packages_app.command("list")
def packages_list(packages: PackagesOpt = None, as_json: JsonOpt = False) -> None:
    """List the catalog's packages.

    Example: fleetctl packages list --json
    """
    catalog = _catalog(packages)
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
    data = _catalog(packages).get(name).to_json()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if isinstance(value, (list, dict)):
            value = json.dumps(value) if value else "-"
        out.print(styled((f"{key:12}", "bold"), f" {value}"), highlight=False)


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
    from fleetctl.api import Selection

    if output not in ("table", "json"):
        raise FleetError(f"--format {output!r} should be table or json", exit_code=2)
    fleet = open_fleet(inventory, state_dir, packages, host_key_policy, timeout, ttl)
    selection = Selection(group, limit, tuple(where or ())).required()
    with ProbeProgress(err, len(fleet.hosts(selection))) as progress:
        result = fleet.plan(requests, selection, refresh=refresh, max_age=max_age,
                            on_result=progress.update)
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
