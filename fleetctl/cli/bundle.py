"""``fleetctl keys`` and ``fleetctl bundle``: signing keys and signed offline bundles."""

from __future__ import annotations

import shutil
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


def trusted_keys(extra: list[Path] | None, state_dir: Path | None) -> dict:
    """Public keys to check bundles against: ``--trust`` files and the state dir's."""
    from fleetctl.bundle import load_public_keys
    from fleetctl.state import default_state_dir

    folder = (state_dir or default_state_dir()) / "trusted-keys"
    return load_public_keys([*(extra or []), *sorted(folder.glob("*.pub"))])


@keys_app.command("generate")
def keys_generate(
    name: Annotated[str, typer.Argument(help="Key name: writes NAME.key and NAME.pub.")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to write them.")] = Path("."),
) -> None:
    """Make an ed25519 key pair for signing bundles (the .key stays private, mode 0600).

    Example: fleetctl keys generate site-signing --dir ~/.config/fleetctl
    """
    from fleetctl.bundle import generate_key

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
    from fleetctl.bundle import load_public_keys
    from fleetctl.state import default_state_dir

    [key_id] = load_public_keys([public])
    folder = (state_dir or default_state_dir()) / "trusted-keys"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(public, folder / f"{key_id}.pub")
    out.print(f"trusted key {key_id} ({public}); {len(list(folder.glob('*.pub')))} trusted "
              f"in {folder}")


@bundle_app.command("create")
def bundle_create(
    playbook: Annotated[Path, typer.Argument(help="The playbook to bundle.",
                                             metavar="PLAYBOOK")],
    output: Annotated[Path, typer.Option("--out", "-o", help="The bundle file to write.")],
    sign_key: Annotated[Path | None, typer.Option("--sign-key", help="Private key (.key) "
                                                  "to sign the bundle with.")] = None,
    inventory: InventoryOpt = None, timeout: TimeoutOpt = 5.0,
    host_key_policy: HostKeyOpt = None, state_dir: StateDirOpt = None,
    packages: PackagesOpt = None,
) -> None:
    """Plan a playbook and write one file with the plan, its packages and every image
    blob it needs (each once), with a manifest of sha256 sums, signed.

    Example: fleetctl bundle create playbooks/ota-webui-stack.yml -o ota.bundle --sign-key s.key
    """
    from fleetctl import bundle
    from fleetctl.playbook import load_playbook
    from fleetctl.registry import blob_fetcher
    from fleetctl.state import StateDB, default_state_dir

    key = bundle.load_private_key(sign_key) if sign_key else None
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
        [e.target for e in entries], book.name)
    manifest = bundle.create(output, contents, fetch, key)
    blobs = [m for m in manifest["members"] if m.startswith("blobs/")]
    size = sum(m["size"] for m in manifest["members"].values())
    out.print(f"wrote {output}: {len(manifest['images'])} images, {len(blobs)} blobs, "
              f"{size / 2**20:.1f} MiB; " + ("signed by key " + bundle.key_id(
                  key.public_key()) if key else "unsigned"))


@bundle_app.command("verify")
def bundle_verify(
    path: Annotated[Path, typer.Argument(help="The bundle file.", metavar="FILE")],
    trust: TrustOpt = None, state_dir: StateDirOpt = None, as_json: JsonOpt = False,
) -> None:
    """Check a bundle: the signature against the trusted keys (an unsigned bundle is
    refused once any key is trusted), then every member's sha256.

    Example: fleetctl bundle verify ota.bundle --trust site-signing.pub
    """
    import json

    from fleetctl.bundle import verify

    checked = verify(path, trusted_keys(trust, state_dir))
    if as_json:
        print(json.dumps({"path": str(path), "name": checked.manifest["name"],
                          "signed_by": checked.signed_by, "trusted": checked.trusted,
                          "images": checked.images}, indent=2))
        return
    how = (f"signed by trusted key {checked.signed_by}" if checked.trusted else
           f"signed by key {checked.signed_by}, not checked (no trusted keys)"
           if checked.signed_by else "unsigned (no trusted keys configured)")
    out.print(f"{path}: ok, {checked.manifest['name']!r}, {len(checked.images)} images, "
              f"every member matches its sha256; {how}", highlight=False)
