"""Ed25519 keys: the ones that sign bundles, and the ones a controller trusts.

Trusted keys are the ``--trust`` files given on the command line plus every
``*.pub`` in ``<state-dir>/trusted-keys/`` (several at once, for rotation).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from fleetctl.errors import FleetError
from fleetctl.statedir import private_dir


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: sha256 of its raw bytes, 16 hex digits."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_key(private_path: Path) -> tuple[Path, str]:
    """Write a new ed25519 key pair (``NAME.key`` mode 0600, ``NAME.pub``); returns
    the public key's path and id. Refuses to overwrite a key."""
    public_path = private_path.with_suffix(".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise FleetError(f"{path} exists; pick another name or remove it first",
                             exit_code=2)
    key = Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    private_path.touch(mode=0o600)
    private_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return public_path, key_id(key.public_key())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An ed25519 private key from a PEM file; FleetError saying what is wrong."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise FleetError(f"{path}: {exc.strerror}", exit_code=2) from None
    except (ValueError, TypeError):
        raise FleetError(f"{path}: not an unencrypted PEM private key; make one with "
                         f"'fleetctl keys generate'", exit_code=2) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise FleetError(f"{path}: not an ed25519 key; make one with 'fleetctl keys generate'",
                         exit_code=2)
    return key


def load_public_keys(paths: Iterable[Path]) -> dict[str, Ed25519PublicKey]:
    """Trusted ed25519 public keys by id; FleetError naming a file that is not one."""
    keys = {}
    for path in paths:
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except OSError as exc:
            raise FleetError(f"{path}: {exc.strerror}", exit_code=2) from None
        except ValueError:
            raise FleetError(f"{path}: not a PEM public key (the .pub file of "
                             f"'fleetctl keys generate')", exit_code=2) from None
        if not isinstance(key, Ed25519PublicKey):
            raise FleetError(f"{path}: not an ed25519 public key", exit_code=2)
        keys[key_id(key)] = key
    return keys


def trusted_keys(extra: Iterable[Path], state_dir: Path) -> dict[str, Ed25519PublicKey]:
    """Public keys to check bundles against: ``extra`` files and the state dir's."""
    folder = state_dir / "trusted-keys"
    return load_public_keys([*extra, *sorted(folder.glob("*.pub"))])


def trust_key(public: Path, state_dir: Path) -> tuple[str, Path]:
    """Add a public key to the state dir's trusted keys; returns its id and folder."""
    [key_id_] = load_public_keys([public])
    folder = private_dir(private_dir(state_dir) / "trusted-keys")
    (folder / f"{key_id_}.pub").write_bytes(public.read_bytes())
    return key_id_, folder
