"""What every fleetctl command shares: the app, its common options, the consoles, and
the :class:`~fleetctl.api.Fleet` a command works on."""

from __future__ import annotations

import json
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
PackagesOpt = Annotated[Path | None, typer.Option(
    "--packages", help="Package catalog folder \\[default: $FLEETCTL_PACKAGES, else packages/].")]
TtlOpt = Annotated[float, typer.Option("--registry-ttl", help="Reuse registry answers up to "
                                       "this many seconds old.")]
EventsOpt = Annotated[Path | None, typer.Option("--events", help="Append every event to "
                                                "this file as NDJSON.")]
ReportOpt = Annotated[bool, typer.Option("--json", help="Print a final JSON report.")]
BreakLockOpt = Annotated[bool, typer.Option("--break-lock", help="Take over locks held by "
                                            "a dead rollout (device and fleet).")]
DeliveryOpt = Annotated[str | None, typer.Option(
    "--delivery", help="registry (hosts pull) or ssh (fleetctl sends the blobs a host "
                       "lacks and loads them) \\[default: each host's fleetctl_delivery, "
                       "else registry].")]
ViaSeedOpt = Annotated[bool, typer.Option(
    "--via-seed", help="ssh delivery: per site, one host gets the blobs over the uplink "
                       "once, the others fetch them from it over the LAN.")]
StageOnlyOpt = Annotated[bool, typer.Option(
    "--stage-only", help="Deliver images and release files to every target and stop; "
                         "nothing running changes. A later run activates without pulling.")]
NoAnalysisOpt = Annotated[bool, typer.Option(
    "--no-analysis", help="Judge canaries by the health gate only, not by the packages' "
                          "analysis: (metrics).")]
AllowDowngradeOpt = Annotated[bool, typer.Option(
    "--allow-downgrade", help="Deploy a plan that moves hosts to an older version; with "
                              "--bundle, accept a bundle that is expired or older on its "
                              "channel than one accepted before.")]
StepsOpt = Annotated[str, typer.Option("--steps", help="Hosts per step, Ansible serial "
                                       "style; the first step is the canary.")]
MaxFailuresOpt = Annotated[str, typer.Option("--max-failures", help="Failed hosts that stop "
                                             "the rollout: a count, or a percentage that "
                                             "must be exceeded.")]
FailureScopeOpt = Annotated[str, typer.Option("--failure-scope", help="Count failures per "
                                              "step or cumulative.")]
UnreachableOpt = Annotated[str, typer.Option("--unreachable", help="deferred (retried by "
                                             "resume) or failed.")]
CanaryOpt = Annotated[list[str] | None, typer.Option("--canary", help="Host(s) for the first "
                                                     "step.")]
PauseOpt = Annotated[str | None, typer.Option("--pause", help="Between steps: a duration (5m) "
                                              "or 'manual' (rollout promote).")]
GateTimeoutOpt = Annotated[str | None, typer.Option(
    "--gate-timeout", help="Health gate limit \\[default: the package's].")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Plan, show, stop.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
TrustOpt = Annotated[list[Path] | None, typer.Option(
    "--trust", help="A trusted public key (.pub); repeat for several. Added to the keys in "
                    "<state-dir>/trusted-keys/.")]

# markup=False: every string printed is text, never rich markup (host names, errors and
# package values come from outside; a host called "[/]" must print as itself)
out = Console(markup=False, emoji=False)
if not out.is_terminal:  # tables piped to a file or a pager: do not fold them at 80 columns
    out = Console(width=max(out.width, 160), markup=False, emoji=False)
err = Console(stderr=True, markup=False, emoji=False)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Text from plain strings and (text, style) pairs: styles without markup."""
    return Text.assemble(*parts)


#: ``fleetctl --vault-password-file F``, for every command's Fleet
_vault_password_file: Path | None = None


def open_fleet(inventory: Path | None = None, state_dir: Path | None = None,
               packages: Path | None = None, host_key_policy: str | None = None,
               timeout: float = 5.0, ttl: float = 300.0, events: Path | None = None):
    """The :class:`~fleetctl.api.Fleet` a command works on (``--events`` subscribed)."""
    from fleetctl.api import Fleet

    fleet = Fleet(inventory, state_dir, packages, host_key_policy=host_key_policy,
                  connect_timeout=timeout, registry_ttl=ttl,
                  vault_password_file=_vault_password_file)
    if events:
        fleet.subscribe(EventFile(events))
    return fleet


class EventFile:
    """A subscriber appending each event to a file as one JSON line."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("a", buffering=1)

    def __call__(self, event: dict) -> None:
        self.file.write(json.dumps(event) + "\n")


def _version(value: bool) -> None:
    if value:
        print(f"fleetctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    vault_password_file: Annotated[Path | None, typer.Option(
        "--vault-password-file", envvar="FLEETCTL_VAULT_PASSWORD_FILE",
        help="Opens ansible-vault files and !vault values in the inventory (an executable "
             "prints the password). Default: $ANSIBLE_VAULT_PASSWORD_FILE.")] = None,
) -> None:
    """fleetctl: Ansible-style fleet orchestration for NVIDIA Jetson devices."""
    global _vault_password_file
    _vault_password_file = vault_password_file
