"""``fleetctl keys`` and ``fleetctl bundle``: signing keys and signed offline bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleetctl.cli.common import (
    AllowDowngradeOpt,
    HostKeyOpt,
    InventoryOpt,
    JsonOpt,
    PackagesOpt,
    StateDirOpt,
    TimeoutOpt,
    TrustOpt,
    app,
    err,
    open_fleet,
    out,
)
from fleetctl.cli.progress import ProbeProgress

keys_app = typer.Typer(help="Ed25519 keys that sign bundles, and the keys this controller "
                            "trusts.\n\nExample: fleetctl keys generate site-signing",
                       no_args_is_help=True)
bundle_app = typer.Typer(help="Signed bundles for offline updates: a playbook's plan, "
                              "packages and images in one file.\n\n"
                              "Example: fleetctl bundle verify ota.bundle",
                         no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(bundle_app, name="bundle")



@keys_app.command("generate")
def keys_generate(
    name: Annotated[str, typer.Argument(help="Key name: writes NAME.key and NAME.pub.")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to write them.")] = Path("."),
) -> None:
    """Make an ed25519 key pair for signing bundles (the .key stays private, mode 0600).

    Example: fleetctl keys generate site-signing --dir ~/.config/fleetctl
    """
    from fleetctl.api import generate_key

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
    from fleetctl.api import trust_key

    key_id, folder = trust_key(public, open_fleet(state_dir=state_dir).state_dir)
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
    from fleetctl.api import Selection, key_id, load_playbook, load_private_key

    fleet = open_fleet(inventory, state_dir, packages, host_key_policy, timeout)
    book = load_playbook(playbook)
    with ProbeProgress(err, len(fleet.hosts(Selection(book.group, book.pattern)))) as progress:
        manifest = fleet.create_bundle(book, output, sign_key, channel=channel,
                                       sequence=sequence, expires=expires,
                                       on_result=progress.update)
    blobs = [m for m in manifest.members if m.startswith("blobs/")]
    signer = key_id(load_private_key(sign_key).public_key())
    out.print(f"wrote {output}: {len(manifest.images)} images, {len(blobs)} blobs, "
              f"{manifest.total_size / 2**20:.1f} MiB; channel {manifest.channel} sequence "
              f"{manifest.sequence}, expires {manifest.expires:%Y-%m-%d}; signed by key "
              f"{signer}", highlight=False)


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

    checked, note = open_fleet(state_dir=state_dir).verify_bundle(path, trust or [],
                                                                  allow_downgrade)
    manifest = checked.manifest
    if as_json:
        print(json.dumps({"path": str(path), "name": manifest.name, "channel": manifest.channel,
                          "sequence": manifest.sequence,
                          "expires": manifest.expires.isoformat(), "signed_by": checked.signed_by,
                          "note": note, "images": {r: i.to_json()
                                                   for r, i in checked.images.items()}},
                         indent=2))
        return
    out.print(f"{path}: ok, {manifest.name!r}, channel {manifest.channel} sequence "
              f"{manifest.sequence}, {len(checked.images)} images, every member matches its "
              f"sha256; signed by trusted key {checked.signed_by}"
              + (f"; {note}" if note else ""), highlight=False)
