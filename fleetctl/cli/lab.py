"""``fleetctl lab``: bring the simulated Jetson lab up and down, inject faults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fleetctl.cli.common import app, err, out, styled

lab_app = typer.Typer(
    help="The simulated Jetson lab: namespaced hosts with real sshd and dockerd, a registry.\n\n"
         "Example: fleetctl lab up && fleetctl lab status",
    no_args_is_help=True,
)
app.add_typer(lab_app, name="lab")

DEFAULT_SPEC = Path("inventories/lab/fleet.yml")


def _lab_paths():
    from fleetctl.lab.system import LabPaths

    return LabPaths.default()


def _progress(message: str) -> None:
    err.print(styled(("lab:", "dim"), f" {message}"), highlight=False)


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
        help="sshd-down, hang, unreachable, dockerd-down, disk-full, slow-link, "
             "gpu-saturated or memory-exhausted (what tegrastats reports), "
             "dpkg-interrupted, disk-full-at-download, reboot-hangs, "
             "capsule-not-applied or new-slot-fails-to-boot (OS updates), "
             "behind-bastion (sshd answers only the --via host's forwarded connections).")],
    delay_ms: Annotated[float, typer.Option(help="slow-link: delay each way, in ms.")] = 100,
    kbps: Annotated[float, typer.Option(help="slow-link: bandwidth cap in kbit/s (0: none).")
                    ] = 0,
    via: Annotated[str, typer.Option(help="behind-bastion: the lab host that is the "
                                          "bastion.")] = "build-server",
) -> None:
    """Inject a fault on a lab host.

    Example: fleetctl lab fault jetson-a2 slow-link --delay-ms 100 --kbps 512
    """
    from fleetctl.lab import client
    from fleetctl.lab.faults import check_fault_kind

    check_fault_kind(kind)
    params = {"delay_ms": delay_ms, "kbps": kbps} if kind == "slow-link" else \
        {"via": via} if kind == "behind-bastion" else {}
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



@lab_app.command("reflash")
def lab_reflash(host: Annotated[str, typer.Argument(help="Lab host name.")]) -> None:
    """Put a lab host back as its spec describes it, as a reflash would: its disk,
    release and firmware rewritten, a new host key (the lab's known_hosts follows).

    Example: fleetctl lab reflash jetson-c1
    """
    from fleetctl.lab import client

    result = client.request(_lab_paths(), "reflash", host=host)
    out.print(f"{result['name']}: {result['state']}, L4T {result['l4t'] or '-'}")


@lab_app.command("ota-payload")
def lab_ota_payload(
    host: Annotated[str, typer.Argument(help="The lab host whose board it is for.")],
    to: Annotated[str, typer.Option("--to", help="The L4T release it installs, e.g. 36.4.3.")],
    output: Annotated[Path, typer.Option("--out", help="Where to write it.")] =
    Path("ota_payload_package.tar.gz"),
    spec: Annotated[Path, typer.Option("--spec", help="Host spec file (YAML).")] = DEFAULT_SPEC,
) -> None:
    """Make an image-based OTA payload for a lab host's board (the lab's stand-in for
    NVIDIA's l4t_generate_ota_package.sh), for 'fleetctl os upgrade --payload'.

    Example: fleetctl lab ota-payload jetson-c2 --to 36.4.3 --out /tmp/payload.tar.gz
    """
    from fleetctl.lab.payload import make_payload
    from fleetctl.lab.spec import load_spec

    lab_spec = load_spec(spec)
    made = make_payload(_lab_paths(), lab_spec.host(host), to, output)
    made.chmod(0o644)
    out.print(f"{made}: {made.stat().st_size:,} bytes, R{to} for {host}'s board",
              highlight=False)
