"""``fleetctl keys`` and ``fleetctl bundle``: signing keys and signed offline bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetctl.cli.common import (
    HostKeyOpt,
    InventoryOpt,
    JsonOpt,
    StateDirOpt,
    TimeoutOpt,
    app,
    out,
)
from fleetctl.cli.plan import PackagesOpt
from fleetctl.cli.playbook import plan_playbook
from fleetctl.cli.rollout import AllowDowngradeOpt
from fleetctl.errors import FleetError

keys_app = typer.Typer(help="Ed25519 keys that sign bundles, and the keys this controller "
                            "trusts.\n\nExample: fleetctl keys generate site-signing",
                       no_args_is_help=True)
bundle_app = typer.Typer(help="Signed bundles for offline updates: a playbook's plan, "
                              "packages and images in one file.\n\n"
                              "Example: fleetctl bundle verify ota.bundle",
                         no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(bundle_app, name="bundle")

TrustOpt = Annotated[list[Path] | None, typer.Option(
    "--trust", help="A trusted public key (.pub); repeat for several. Added to the keys in "
                    "<state-dir>/trusted-keys/.")]


@keys_app.command("generate")
def keys_generate(
    name: Annotated[str, typer.Argument(help="Key name: writes NAME.key and NAME.pub.")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to write them.")] = Path("."),
) -> None:
    """Make an ed25519 key pair for signing bundles (the .key stays private, mode 0600).

    Example: fleetctl keys generate site-signing --dir ~/.config/fleetctl
    """
    from fleetctl.keys import generate_key

    public, key_id = generate_key(directory / f"{name}.key")
    out.print(f"wrote {directory / f'{name}.key'} (private) and {public}; key id {key_id}")
    out.print(f"trust it on a controller with: fleetctl keys trust {public}")


@keys_app.command("trust")
def keys_trust(
    public: Annotated[Path, typer.Argument(help="A public key file (.pub).")],
    state_dir: StateDirOpt = None,
) -> None:
    """Trust a public key: bundles must then be signed by a trusted key.

    Example: fleetctl keys trust site-signing.pub
    """
    from fleetctl.keys import trust_key
    from fleetctl.state import default_state_dir

    key_id, folder = trust_key(public, state_dir or default_state_dir())
    out.print(f"trusted key {key_id} ({public}); "
              f"{len(list(folder.glob('*.pub')))} trusted in {folder}")


@bundle_app.command("create")
def bundle_create(
    playbook: Annotated[Path, typer.Argument(help="The playbook to bundle.",
                                             metavar="PLAYBOOK")],
    output: Annotated[Path, typer.Option("--out", "-o", help="The bundle file to write.")],
    sign_key: Annotated[Path, typer.Option("--sign-key", help="Private key (.key) to sign "
                                           "the bundle with (bundles are always signed).")],
    channel: Annotated[str, typer.Option("--channel", help="Release channel: controllers "
                                         "refuse a bundle older than the newest they "
                                         "accepted on it.")] = "default",
    sequence: Annotated[int | None, typer.Option("--sequence", min=0, help="Release number "
                                                 "on the channel, increasing \\[default: "
                                                 "the time, in seconds since 1970].")] = None,
    expires: Annotated[str, typer.Option("--expires", help="Refused after this long.")]
    = "90d",
    inventory: InventoryOpt = None, timeout: TimeoutOpt = 5.0,
    host_key_policy: HostKeyOpt = None, state_dir: StateDirOpt = None,
    packages: PackagesOpt = None,
) -> None:
    """Plan a playbook and write one signed file with the plan, its packages and every
    image blob it needs (each once), a manifest of sha256 sums, a channel, a sequence
    number and an expiry.

    Example: fleetctl bundle create playbooks/ota-webui-stack.yml -o ota.bundle --sign-key s.key
    """
    import datetime as dt
    import time

    from fleetctl import bundle
    from fleetctl.bundle_manifest import check_channel
    from fleetctl.catalog import parse_duration
    from fleetctl.keys import key_id, load_private_key
    from fleetctl.playbook import load_playbook
    from fleetctl.registry import blob_fetcher
    from fleetctl.state import StateDB, default_state_dir

    key = load_private_key(sign_key)
    check_channel(channel)
    try:
        lifetime = parse_duration(expires)
    except ValueError:
        raise FleetError(f"--expires {expires!r} should be a duration such as 30d or 12h",
                         exit_code=2) from None
    book = load_playbook(playbook)
    the_plan, catalog = plan_playbook(book, inventory, timeout, host_key_policy, state_dir,
                                      packages)
    entries = [e for e in the_plan.entries if not e.blocked and e.target]
    if not entries:
        raise FleetError(f"{playbook}: no host can take any of its packages; nothing to "
                         f"bundle (see 'fleetctl run {playbook} --check')", exit_code=2)
    fetch = blob_fetcher(StateDB(state_dir or default_state_dir()))

    contents = bundle.contents_for(
        playbook, the_plan.to_json(), [catalog.get(p).path for p in the_plan.packages],
        [e.target for e in entries], book.name, channel,
        int(time.time()) if sequence is None else sequence,
        dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(
            seconds=lifetime))
    manifest = bundle.create(output, contents, fetch, key)
    blobs = [m for m in manifest.members if m.startswith("blobs/")]
    out.print(f"wrote {output}: {len(manifest.images)} images, {len(blobs)} "
              f"blobs, {manifest.total_size / 2**20:.1f} MiB; channel {manifest.channel} "
              f"sequence {manifest.sequence}, expires {manifest.expires:%Y-%m-%d}; signed by "
              f"key {key_id(key.public_key())}", highlight=False)


@bundle_app.command("verify")
def bundle_verify(
    path: Annotated[Path, typer.Argument(help="The bundle file.", metavar="FILE")],
    trust: TrustOpt = None, state_dir: StateDirOpt = None, as_json: JsonOpt = False,
    allow_downgrade: AllowDowngradeOpt = False,
) -> None:
    """Check a bundle: its signature by a trusted key (no trusted key, no signature or a
    stranger's is refused), every member's size and sha256, and that it is neither
    expired nor older on its channel than one this controller accepted.

    Example: fleetctl bundle verify ota.bundle --trust site-signing.pub
    """
    import json

    from fleetctl.bundle import check_fresh, verify
    from fleetctl.keys import trusted_keys
    from fleetctl.state import StateDB, default_state_dir

    state = state_dir or default_state_dir()
    checked = verify(path, trusted_keys(trust or [], state))
    note = check_fresh(StateDB(state), checked, allow_downgrade)
    manifest = checked.manifest
    if as_json:
        print(json.dumps({"path": str(path), "name": manifest.name, "channel": manifest.channel,
                          "sequence": manifest.sequence,
                          "expires": manifest.expires.isoformat(), "signed_by": checked.signed_by,
                          "note": note, "images": {r: i.to_json()
                                                   for r, i in checked.images.items()}},
                         indent=2))
        return
    out.print((f"{path}: ok, {manifest.name!r}, channel {manifest.channel} sequence "
                     f"{manifest.sequence}, {len(checked.images)} images, every member "
                     f"matches its sha256; signed by trusted key {checked.signed_by}"
                     + (f"; {note}" if note else "")), highlight=False)
