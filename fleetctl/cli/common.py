"""What every fleetctl command shares: the app, its common options, the consoles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from fleetctl import __version__

app = typer.Typer(
    help="Fleet orchestration for NVIDIA Jetson devices: inventory, probe, plan, rollout.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

InventoryOpt = Annotated[Path | None, typer.Option(
    "-i", "--inventory", help="Inventory file or folder \\[default: $FLEETCTL_INVENTORY, "
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
    "--state-dir", help="State directory \\[default: $FLEETCTL_STATE_DIR, else "
    "~/.local/state/fleetctl].")]

# markup=False: every string printed is text, never rich markup (host names, errors and
# package values come from outside; a host called "[/]" must print as itself)
out = Console(markup=False)
if not out.is_terminal:  # tables piped to a file or a pager: do not fold them at 80 columns
    out = Console(width=max(out.width, 160), markup=False)
err = Console(stderr=True, markup=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text from plain strings and (text, style) pairs: styles without markup."""
    return Text.assemble(*parts)


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

