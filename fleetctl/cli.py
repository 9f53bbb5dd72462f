"""The ``fleetctl`` command line: parse arguments, call the core, render the result."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fleetctl import __version__
from fleetctl.errors import FleetError

app = typer.Typer(
    help="Fleet orchestration for NVIDIA Jetson devices: inventory, probe, plan, rollout.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
lab_app = typer.Typer(
    help="The simulated Jetson lab: namespaced hosts with real sshd and dockerd, a registry.\n\n"
         "Example: fleetctl lab up && fleetctl lab status",
    no_args_is_help=True,
)
inventory_app = typer.Typer(
    help="Read Ansible inventories (YAML or INI, group_vars/, host_vars/).\n\n"
         "Example: fleetctl inventory list -i inventories/example --group factory-a",
    no_args_is_help=True,
)
app.add_typer(lab_app, name="lab")
app.add_typer(inventory_app, name="inventory")

InventoryOpt = Annotated[Path | None, typer.Option(
    "-i", "--inventory", help="Inventory file or folder [default: $FLEETCTL_INVENTORY, "
    "else inventories/].")]
GroupOpt = Annotated[str | None, typer.Option("--group", "-g", help="Only hosts of this group.")]
LimitOpt = Annotated[str | None, typer.Option(
    "--limit", "-l", help="Ansible host pattern: a:b, a:&b, a:!b, wildcards, ~regex.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
WhereOpt = Annotated[list[str] | None, typer.Option(
    "--where", "-w", help="Fact selector, repeatable: 'l4t>=36.4', 'module=orin-nano', "
    "'jetpack>=6', 'arch=arm64'.")]
RefreshOpt = Annotated[bool, typer.Option("--refresh", help="Probe every host, ignoring "
                                          "cached facts.")]
MaxAgeOpt = Annotated[float, typer.Option("--max-age", help="Use cached facts up to this "
                                          "many seconds old.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="SSH connect timeout, seconds.")]
HostKeyOpt = Annotated[str | None, typer.Option(
    "--host-key-policy", help="strict (default): only known host keys; accept-new: record "
    "unknown hosts' keys. A changed key always fails.")]
StateDirOpt = Annotated[Path | None, typer.Option(
    "--state-dir", help="State directory [default: $FLEETCTL_STATE_DIR, else "
    "~/.local/state/fleetctl].")]

out = Console()
if not out.is_terminal:  # tables piped to a file or a pager: do not fold them at 80 columns
    out = Console(width=max(out.width, 160))
err = Console(stderr=True)

DEFAULT_SPEC = Path("inventories/lab/fleet.yml")


def _version(value: bool) -> None:
    if value:
        print(f"fleetctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """fleetctl: Ansible-style fleet orchestration for NVIDIA Jetson devices."""


def _lab_paths():
    from fleetctl.lab.system import LabPaths

    return LabPaths.default()


def _progress(message: str) -> None:
    err.print(f"[dim]lab:[/] {message}", highlight=False)


@lab_app.command("up")
def lab_up(
    spec: Annotated[Path, typer.Option("--spec", help="Host spec file (YAML).")] = DEFAULT_SPEC,
    hosts: Annotated[int | None, typer.Option("--hosts", min=1,
                     help="Run N hosts: the spec's first N, or its hosts repeated.")] = None,
) -> None:
    """Bring the lab up (or make it match the spec); safe to run again.

    Example: fleetctl lab up --spec inventories/lab/fleet.yml
    """
    from fleetctl.lab import client
    from fleetctl.lab.spec import load_spec
    from fleetctl.yamlfile import read_text

    text = read_text(spec)
    load_spec(spec, hosts, text)  # fail on a bad spec before anything starts
    status = client.up(_lab_paths(), spec, text, hosts, _progress)
    _render_lab_status(status)
    out.print(f"\ninventory:   {status['inventory']}\nclient key:  {status['client_key']}\n"
              f"known_hosts: {status['known_hosts']}\nssh config:  {status['ssh_config']}\n"
              f"try: ssh -F {status['ssh_config']} {status['hosts'][0]['address']} "
              "cat /etc/nv_tegra_release", highlight=False)


@lab_app.command("status")
def lab_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the lab's hosts, their addresses and state, and where its files are.

    Example: fleetctl lab status --json
    """
    from fleetctl.lab import client

    paths = _lab_paths()
    status = client.request(paths, "status") if client.running(paths) else {"up": False,
                                                                            "hosts": []}
    if as_json:
        print(json.dumps(status, indent=2))
    elif not status["up"]:
        out.print("the lab is down; start it with: fleetctl lab up")
    else:
        _render_lab_status(status)


def _render_lab_status(status: dict) -> None:
    table = Table(title=f"lab ({status['dir']}), registry {status['registry']['address']}")
    for column in ("host", "address", "state", "groups", "L4T", "faults"):
        table.add_column(column)
    for host in status["hosts"]:
        table.add_row(host["name"], host["address"], host["state"], ",".join(host["groups"]),
                      host["l4t"] or "-", ",".join(host["faults"]) or "-")
    out.print(table)


@lab_app.command("down")
def lab_down() -> None:
    """Stop every lab host and the registry and remove all the lab made.

    Example: fleetctl lab down
    """
    from fleetctl.lab import client

    client.down(_lab_paths(), _progress)
    out.print("the lab is down")


@lab_app.command("fault")
def lab_fault(
    host: Annotated[str, typer.Argument(help="Lab host name.")],
    kind: Annotated[str, typer.Argument(
        help="sshd-down, hang, unreachable, dockerd-down, disk-full or slow-link.")],
    delay_ms: Annotated[float, typer.Option(help="slow-link: delay each way, in ms.")] = 100,
    kbps: Annotated[float, typer.Option(help="slow-link: bandwidth cap in kbit/s (0: none).")
                    ] = 0,
) -> None:
    """Inject a fault on a lab host.

    Example: fleetctl lab fault jetson-a2 slow-link --delay-ms 100 --kbps 512
    """
    from fleetctl.lab import client
    from fleetctl.lab.faults import check_fault_kind

    check_fault_kind(kind)
    params = {"delay_ms": delay_ms, "kbps": kbps} if kind == "slow-link" else {}
    result = client.request(_lab_paths(), "fault", host=host, kind=kind, params=params)
    out.print(f"{result['name']}: {', '.join(result['faults'])}")


@lab_app.command("heal")
def lab_heal(host: Annotated[str, typer.Argument(help="Lab host name.")]) -> None:
    """Undo every fault on a lab host.

    Example: fleetctl lab heal jetson-a2
    """
    from fleetctl.lab import client

    result = client.request(_lab_paths(), "heal", host=host)
    out.print(f"{result['name']}: {result['state']}")


@inventory_app.command("list")
def inventory_list(inventory: InventoryOpt = None, group: GroupOpt = None,
                   limit: LimitOpt = None, as_json: JsonOpt = False) -> None:
    """List the selected hosts with address, user and groups.

    Example: fleetctl inventory list -i inventories/example --limit 'factory-a:&orin'
    """
    from fleetctl.inventory import load_inventory, redact

    hosts = load_inventory(inventory).select(limit, group)
    if as_json:
        print(json.dumps({h.name: {"address": h.address, "port": h.port, "user": h.user,
                                   "groups": h.groups, "vars": redact(h.vars)}
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
    from fleetctl.inventory import load_inventory

    inv = load_inventory(inventory)
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


def _probe(inventory: Path | None, group: str | None, limit: str | None,
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
    results = _probe(inventory, group, limit, where, refresh, max_age, timeout,
                     host_key_policy, state_dir)
    rows = [core.row(r) for r in results]
    found = core.findings(results, checks)
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
                value = f"[red]{r['reason']}[/]"
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
        out.print(f"[red]unreachable {len(total['unreachable'])}:[/] "
                  + "; ".join(f"{h} ({why})" for h, why in total["unreachable"].items()))
    for f in found:
        out.print(f"[yellow]finding[/] {f.host}: {f.rule}: {f.message}", highlight=False)


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
    results = _probe(inventory, group, limit, where, refresh, max_age, timeout,
                     host_key_policy, state_dir)
    print(json.dumps({r.host.name: r.facts.to_json() if r.facts else
                      {"error": r.error, "detail": r.detail} for r in results}, indent=2))
    if any(not r.ok for r in results):
        raise typer.Exit(4)


def main() -> None:
    """Console entry point: run the app, turning FleetError into one line and an exit code."""
    try:
        app()
    except FleetError as exc:
        err.print(f"fleetctl: error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("fleetctl: interrupted")
        sys.exit(130)
