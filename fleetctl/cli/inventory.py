"""``fleetctl inventory``: read Ansible inventories, list hosts, show the group tree."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from fleetctl.cli.common import GroupOpt, InventoryOpt, JsonOpt, LimitOpt, app, open_fleet, out
from fleetctl.errors import FleetError

inventory_app = typer.Typer(
    help="Read Ansible inventories (YAML or INI, group_vars/, host_vars/).\n\n"
         "Example: fleetctl inventory list -i inventories/example --group factory-a",
    no_args_is_help=True,
)
app.add_typer(inventory_app, name="inventory")


@inventory_app.command("list")
def inventory_list(
    inventory: InventoryOpt = None, group: GroupOpt = None, limit: LimitOpt = None,
    output: Annotated[str, typer.Option(
        "--format", "-f", help="table, json, or ansible: the JSON 'ansible-inventory --list' "
                               "prints, for tools that read it.")] = "table",
    redact: Annotated[bool, typer.Option(
        "--redact", help="Print the values of secret-looking variables (passwords, tokens) "
                         "as ***.")] = False,
) -> None:
    """List the selected hosts with address, user and groups, or the whole inventory as
    JSON.

    Example: fleetctl inventory list -i inventories/example --limit 'factory-a:&orin'
    """
    from fleetctl.api import Selection, closed_vars, redact_vars

    if output not in ("table", "json", "ansible"):
        raise FleetError(f"--format {output!r} should be table, json or ansible", exit_code=2)
    fleet = open_fleet(inventory)
    if output == "ansible":
        print(json.dumps(fleet.ansible_inventory(Selection(group, limit), redact=redact),
                         indent=4, sort_keys=True, default=str))
        return
    hosts = fleet.hosts(Selection(group, limit))
    show = redact_vars if redact else dict
    if output == "json":
        print(json.dumps({h.name: {"address": h.address, "port": h.port, "user": h.user,
                                   "groups": h.groups, "vars": closed_vars(show(h.vars))}
                          for h in hosts}, indent=2, default=str))
        return
    table = Table(title=f"{len(hosts)} hosts")
    for column in ("host", "address", "port", "user", "groups"):
        table.add_column(column)
    for h in hosts:
        table.add_row(h.name, h.address, str(h.port), h.user, ",".join(h.groups))
    out.print(table)


@inventory_app.command("graph")
def inventory_graph(inventory: InventoryOpt = None, as_json: JsonOpt = False) -> None:
    """Show the group tree, as ansible-inventory --graph does.

    Example: fleetctl inventory graph -i inventories/example
    """
    inv = open_fleet(inventory).inventory
    if as_json:
        print(json.dumps({name: {"children": g.children, "hosts": g.hosts}
                          for name, g in inv.groups.items()}, indent=2))
        return

    def walk(name: str, indent: str) -> None:
        group = inv.groups[name]
        for child in sorted(group.children):
            print(f"{indent}  |--@{child}:")
            walk(child, indent + "  |")
        for host in group.hosts:
            print(f"{indent}  |--{host}")

    print("@all:")
    walk("all", "")

