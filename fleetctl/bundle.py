"""Signed bundles: one file with everything a site needs for an offline update.

A bundle is a tar file holding the playbook, the plan it resolved to, the
catalog entries of its packages (their compose templates and tests), and every
image blob the plan needs (manifests, configs, layers), each blob once under
``blobs/sha256/<hex>``. ``manifest.json`` lists every other member with its
sha256 and size; ``manifest.sig`` is an ed25519 signature over the exact bytes
of ``manifest.json`` (the cryptography library). Verification checks the
signature against trusted public keys (several, for rotation), then every
member's digest, and refuses members it does not list, so a changed byte
anywhere is caught before any host is touched.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import io
import itertools
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from fleetctl.errors import FleetError
from fleetctl.registry import BlobFetcher, PlatformImage

FORMAT = "fleetctl-bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"


class BundleError(FleetError):
    """A bundle that cannot be trusted or read; nothing was touched."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)


# -- keys -------------------------------------------------------------------------------------

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


# -- create -----------------------------------------------------------------------------------

@dataclass
class BundleImage:
    """One platform image in the bundle, by the reference the plan pins."""

    reference: str                  # registry/repo@sha256:...
    manifest: str                   # its digest (= the reference's)
    config: str
    layers: list[str]
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"manifest": self.manifest, "config": self.config, "layers": self.layers,
                "size": self.size}


@dataclass
class Contents:
    """What goes into a bundle besides the image blobs."""

    name: str
    files: dict[str, bytes]                               # member path -> bytes
    images: list[str] = field(default_factory=list)       # pinned references


def contents_for(playbook_path: Path, plan_doc: dict[str, Any], package_dirs: list[Path],
                 images: list[str], name: str) -> Contents:
    """A playbook, its plan and the catalog folders of its packages, as bundle members."""
    files = {"playbook.yml": playbook_path.read_bytes(),
             "plan.json": json.dumps(plan_doc, indent=1, sort_keys=True).encode()}
    for folder in package_dirs:
        for item in sorted(folder.iterdir()):
            if item.is_file() and not item.name.startswith("."):
                files[f"packages/{folder.name}/{item.name}"] = item.read_bytes()
    return Contents(name, files, images)


def create(out: Path, contents: Contents, fetch: BlobFetcher,
           sign_key: Ed25519PrivateKey | None) -> dict[str, Any]:
    """Write the bundle to ``out`` (atomically) and return its manifest."""
    members: dict[str, dict[str, Any]] = {}
    images: dict[str, BundleImage] = {}
    with tempfile.TemporaryDirectory(prefix=".fleetctl-bundle-", dir=out.parent) as tmp:
        blobs = Path(tmp)

        def blob(reference: str, digest: str, manifest: bool = False) -> Path:
            path = blobs / digest.split(":", 1)[1]
            if not path.exists():
                with path.open("wb") as dest:
                    fetch(reference, digest, dest, manifest)
            members[f"blobs/sha256/{path.name}"] = {"sha256": path.name,
                                                    "size": path.stat().st_size}
            return path

        for reference in sorted(set(contents.images)):
            digest = reference.rpartition("@")[2]
            manifest = json.loads(blob(reference, digest, manifest=True).read_bytes())
            layers = [layer["digest"] for layer in manifest.get("layers", [])]
            config = manifest.get("config", {}).get("digest")
            if not config:
                raise BundleError(f"{reference}: not a single-platform image manifest")
            size = sum(blob(reference, part).stat().st_size for part in (config, *layers))
            images[reference] = BundleImage(reference, digest, config, layers, size)
        for name, data in contents.files.items():
            members[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        manifest_doc = {
            "format": FORMAT, "name": contents.name,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "images": {r: i.to_json() for r, i in images.items()},
            "members": dict(sorted(members.items())),
        }
        manifest_bytes = json.dumps(manifest_doc, indent=1, sort_keys=True).encode()
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, MANIFEST, manifest_bytes)
            if sign_key is not None:
                signature = {"algorithm": "ed25519", "key": key_id(sign_key.public_key()),
                             "signature": base64.b64encode(
                                 sign_key.sign(manifest_bytes)).decode()}
                _add(tar, SIGNATURE, json.dumps(signature).encode())
            for name, data in sorted(contents.files.items()):
                _add(tar, name, data)
            for name in sorted(m for m in members if m.startswith("blobs/")):
                tar.add(blobs / PurePosixPath(name).name, arcname=name, recursive=False,
                        filter=_plain)
        partial.replace(out)
    return manifest_doc


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _plain(tarfile.TarInfo(name))
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Members carry no owner, mode or time of the machine that built the bundle."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    info.mtime = 0
    return info


# -- verify -----------------------------------------------------------------------------------

@dataclass
class Verified:
    """A bundle whose every member matched its manifest (and signature, when trusted)."""

    path: Path
    manifest: dict[str, Any]
    signed_by: str | None           # key id, None when unsigned
    trusted: bool                   # the signature was checked against a trusted key

    @property
    def images(self) -> dict[str, dict[str, Any]]:
        return self.manifest["images"]

    def platform_images(self, plan_doc: dict[str, Any]) -> dict[str, list[PlatformImage]]:
        """Per repository, the tags the bundle's plan saw whose image the bundle holds:
        what planning offline may choose from."""
        held = {r.rpartition("@")[2] for r in self.images}
        found: dict[str, list[PlatformImage]] = {}
        for key, seen in plan_doc.get("registry", {}).items():
            where, _, arch = key.rpartition("#")
            repository, _, tag = where.partition("/")[2].rpartition(":")
            if seen.get("digest") in held:
                found.setdefault(repository, []).append(
                    PlatformImage(tag, seen["digest"], arch, "linux", int(seen.get("size", 0))))
        return found


def verify(path: Path, trusted: dict[str, Ed25519PublicKey],
           unpack_to: tuple[Path, Path] | None = None) -> Verified:
    """Check the signature (required when ``trusted`` is not empty) and every member's
    sha256; BundleError saying what is wrong, before anything else is done.

    With ``unpack_to=(folder, blobs)`` every member is also written out as it is
    checked (blobs to ``blobs/sha256/<hex>``, the rest below ``folder``), each file
    appearing only once its bytes matched; ``folder`` is removed if any did not."""
    try:
        with tarfile.open(path, "r:") as tar:
            return _verify(path, tar, trusted, unpack_to)
    except OSError as exc:
        raise BundleError(f"{path}: {exc.strerror or exc}") from None
    except tarfile.TarError as exc:
        raise BundleError(f"{path}: not a readable bundle ({exc}); copy it again") from None


def _verify(path: Path, tar: tarfile.TarFile, trusted: dict[str, Ed25519PublicKey],
            unpack_to: tuple[Path, Path] | None) -> Verified:
    members = iter(tar)
    first = next(members, None)
    if first is None or first.name != MANIFEST or not first.isfile():
        raise BundleError(f"{path}: not a fleetctl bundle (no {MANIFEST} first)")
    manifest_bytes = _read(tar, first)
    manifest = _manifest(path, manifest_bytes)
    second = next(members, None)
    signature = _signature(path, tar, second) if second and second.name == SIGNATURE \
        else None
    signed_by = _check_signature(path, manifest_bytes, signature, trusted)
    rest = members if signature is not None or second is None else \
        itertools.chain([second], members)
    if unpack_to is None:
        _check_members(path, tar, rest, manifest["members"], None)
    else:
        folder, blobs = unpack_to
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            _check_members(path, tar, rest, manifest["members"], (folder, blobs))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return Verified(path, manifest, signed_by, bool(trusted))


def _signature(path: Path, tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict[str, Any]:
    try:
        signature = json.loads(_read(tar, member))
    except ValueError:
        signature = None
    if not isinstance(signature, dict):
        raise BundleError(f"{path}: {SIGNATURE} is damaged; copy the bundle again")
    return signature


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None
    return handle.read()


def _manifest(path: Path, data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError:
        raise BundleError(f"{path}: {MANIFEST} is damaged; copy the bundle again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: not a {FORMAT} bundle")
    return manifest


def _check_signature(path: Path, data: bytes, signature: dict[str, Any] | None,
                     trusted: dict[str, Ed25519PublicKey]) -> str | None:
    if signature is None:
        if trusted:
            raise BundleError(f"{path}: unsigned, and trusted keys are configured; sign it "
                              f"with 'fleetctl bundle create --sign-key KEY'")
        return None
    signer = str(signature.get("key"))
    if not trusted:
        return signer
    if signer not in trusted:
        raise BundleError(f"{path}: signed by key {signer}, which is not trusted (trusted: "
                          f"{', '.join(sorted(trusted))})")
    try:
        trusted[signer].verify(base64.b64decode(signature.get("signature", "")), data)
    except (InvalidSignature, ValueError):
        raise BundleError(f"{path}: the signature does not match: the bundle changed after "
                          f"it was signed; do not use it") from None
    return signer


def _check_members(path: Path, tar: tarfile.TarFile, members: Iterator[tarfile.TarInfo],
                   listed: dict[str, dict[str, Any]], unpack_to: tuple[Path, Path] | None
                   ) -> None:
    seen = set()
    for member in members:
        name = member.name
        if name in (MANIFEST, SIGNATURE) or name in seen:
            raise BundleError(f"{path}: {name} appears twice")
        if name not in listed:
            raise BundleError(f"{path}: {name} is not in the manifest; the bundle was "
                              f"changed, do not use it")
        if not member.isfile() or PurePosixPath(name).is_absolute() or ".." in name.split("/"):
            raise BundleError(f"{path}: {name} is not a plain file inside the bundle")
        final = None
        if unpack_to is not None:
            folder, blobs = unpack_to
            final = blobs / "sha256" / name.rpartition("/")[2] if name.startswith("blobs/") \
                else folder / name
            final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(final.name + ".part") if final else None
        hasher = hashlib.sha256()
        handle = tar.extractfile(member)
        assert handle is not None
        with partial.open("wb") if partial else contextlib.nullcontext() as sink:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
                if sink:
                    sink.write(chunk)
        if hasher.hexdigest() != listed[name]["sha256"]:
            if partial:
                partial.unlink()
            raise BundleError(f"{path}: {name} does not match its sha256 in the manifest; "
                              f"the bundle was changed or damaged, do not use it")
        if partial and final:
            partial.replace(final)
        seen.add(name)
    missing = sorted(set(listed) - seen)
    if missing:
        raise BundleError(f"{path}: {missing[0]} is missing ({len(missing)} members in all); "
                          f"copy the bundle again")
