"""Signed bundles: one file with everything a site needs for an offline update.

A bundle is a tar file holding the playbook, the plan it resolved to, the
catalog entries of its packages (their compose templates and tests), and every
image blob the plan needs (manifests, configs, layers), each blob once under
``blobs/sha256/<hex>``. ``manifest.json`` (:mod:`fleetctl.delivery.bundle_manifest`)
lists every other member with its sha256 and size, the bundle's channel, its
sequence number and its expiry; ``manifest.sig`` is an ed25519 signature over
the exact bytes of ``manifest.json`` (the cryptography library).

Verification fails closed: no trusted key, no signature, a stranger's key or a
changed manifest is refused before anything but the (size-capped) manifest and
signature is read. Then every member is checked against the signed manifest
while it is extracted: its declared size first (reading stops there), then its
sha256; a member the manifest does not list, or one it lists that is missing,
is refused. A bundle older than the newest one this controller accepted on its
channel, or past its expiry, is refused unless a downgrade is allowed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from fleetctl.catalog.imageref import PlatformImage, TagKey
from fleetctl.delivery.blobstore import BlobFetcher, BlobMismatch, BlobStore, write_verified
from fleetctl.delivery.bundle_manifest import (
    MANIFEST,
    MAX_MANIFEST,
    MAX_SIGNATURE,
    SIGNATURE,
    BundleError,
    BundleImage,
    BundleManifest,
    Member,
    parse_manifest,
)
from fleetctl.delivery.keys import key_id
from fleetctl.digest import Digest, parse_digest, sha256_of
from fleetctl.state import StateDB

__all__ = ["BundleError", "Contents", "Verified", "accept", "check_fresh", "contents_for",
           "create", "verify"]
#: room left free on the disk a bundle is unpacked to
DISK_MARGIN = 64 * 2**20
DOWNGRADE_HINT = "pass --allow-downgrade if that is what you want"


# -- create -----------------------------------------------------------------------------------

@dataclass
class Contents:
    """What goes into a bundle besides the image blobs."""

    name: str
    files: dict[str, bytes]         # member path -> bytes
    images: list[str]               # pinned references
    channel: str
    sequence: int
    expires: dt.datetime


def contents_for(playbook_path: Path, plan_doc: dict[str, Any], package_dirs: list[Path],
                 images: list[str], name: str, channel: str, sequence: int,
                 expires: dt.datetime) -> Contents:
    """A playbook, its plan and the catalog folders of its packages, as bundle members."""
    files = {"playbook.yml": playbook_path.read_bytes(),
             "plan.json": json.dumps(plan_doc, indent=1, sort_keys=True).encode()}
    for folder in package_dirs:
        for item in sorted(folder.iterdir()):
            if item.is_file() and not item.name.startswith("."):
                files[f"packages/{folder.name}/{item.name}"] = item.read_bytes()
    return Contents(name, files, images, channel, sequence, expires)


def create(out: Path, contents: Contents, fetch: BlobFetcher,
           sign_key: Ed25519PrivateKey) -> BundleManifest:
    """Write the signed bundle to ``out`` (atomically) and return its manifest. Every
    blob fetched is checked against its digest before it goes in."""
    members: dict[str, Member] = {}
    images: dict[str, BundleImage] = {}
    with tempfile.TemporaryDirectory(prefix=".fleetctl-bundle-", dir=out.parent) as tmp:
        store = BlobStore(Path(tmp), fetch)

        def blob(reference: str, digest: Digest, manifest: bool = False) -> Path:
            path = store.ensure(reference, digest, manifest)
            members[f"blobs/sha256/{digest.hex}"] = Member(digest, path.stat().st_size)
            return path

        for reference in sorted(set(contents.images)):
            digest = parse_digest(reference.rpartition("@")[2], f"plan image {reference}")
            manifest = json.loads(blob(reference, digest, manifest=True).read_bytes())
            source = f"manifest of {reference}"
            if not isinstance(manifest.get("config"), dict):
                raise BundleError(f"{reference}: not a single-platform image manifest")
            config = parse_digest(manifest["config"].get("digest"), source)
            layers = tuple(parse_digest(layer.get("digest"), source)
                           for layer in manifest.get("layers") or [])
            size = sum(blob(reference, part).stat().st_size for part in (config, *layers))
            images[reference] = BundleImage(reference, digest, config, layers, size)
        for name, data in contents.files.items():
            members[name] = Member(sha256_of(data), len(data))
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        bundle_manifest = BundleManifest(contents.name, contents.channel, contents.sequence,
                                         now, contents.expires, images, members)
        manifest_bytes = bundle_manifest.to_bytes()
        signature = {"algorithm": "ed25519", "key": key_id(sign_key.public_key()),
                     "signature": base64.b64encode(sign_key.sign(manifest_bytes)).decode()}
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, MANIFEST, manifest_bytes)
            _add(tar, SIGNATURE, json.dumps(signature).encode())
            for name, data in sorted(contents.files.items()):
                _add(tar, name, data)
            for name in sorted(m for m in members if m.startswith("blobs/")):
                tar.add(store.path(members[name].sha256), arcname=name, recursive=False,
                        filter=_plain)
        partial.replace(out)
    return bundle_manifest


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
    """A bundle whose signature (by a trusted key) and every member matched."""

    path: Path
    manifest: BundleManifest
    signed_by: str

    @property
    def images(self) -> dict[str, BundleImage]:
        return self.manifest.images

    def platform_images(self, plan_doc: dict[str, Any]) -> dict[str, list[PlatformImage]]:
        """Per repository, the tags the bundle's plan saw whose image the bundle holds:
        what planning offline may choose from."""
        held = {image.manifest for image in self.images.values()}
        found: dict[str, list[PlatformImage]] = {}
        for key, seen in plan_doc.get("registry", {}).items():
            at = TagKey.parse(key)
            if seen.get("digest") in held:
                found.setdefault(at.repository, []).append(PlatformImage(
                    at.tag, Digest(seen["digest"]), at.arch, "linux", int(seen.get("size", 0))))
        return found


def verify(path: Path, trusted: dict[str, Ed25519PublicKey],
           unpack_to: tuple[Path, Path] | None = None) -> Verified:
    """Check the signature against ``trusted`` keys, then every member's size and
    sha256; BundleError saying what is wrong, before anything else is done.

    With ``unpack_to=(folder, blobs)`` every member is also written out as it is
    checked (blobs into the blob store ``blobs``, the rest below ``folder``), each
    file appearing only once its bytes matched; ``folder`` is removed if any did not."""
    if not trusted:
        raise BundleError(f"{path}: no trusted keys, so its signature cannot be checked; "
                          f"trust the signer's key first: fleetctl keys trust KEY.pub")
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
    manifest_bytes = _read_capped(path, tar, first, MAX_MANIFEST)
    second = next(members, None)
    if second is None or second.name != SIGNATURE or not second.isfile():
        raise BundleError(f"{path}: unsigned; only bundles signed by a trusted key are "
                          f"used: sign it with 'fleetctl bundle create --sign-key KEY'")
    signed_by = _check_signature(path, manifest_bytes,
                                 _read_capped(path, tar, second, MAX_SIGNATURE), trusted)
    manifest = parse_manifest(path, manifest_bytes)
    if unpack_to is None:
        _check_members(path, tar, members, manifest.members, None)
    else:
        folder, blobs = unpack_to
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, mode=0o700)
        _check_space(path, folder, manifest)
        try:
            _check_members(path, tar, members, manifest.members, (folder, BlobStore(blobs)))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return Verified(path, manifest, signed_by)


def _read_capped(path: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, cap: int) -> bytes:
    if member.size > cap:
        raise BundleError(f"{path}: {member.name} is {member.size:,} bytes, more than the "
                          f"{cap:,} it may have; do not use this bundle")
    handle = tar.extractfile(member)
    if handle is None:
        raise BundleError(f"{path}: {member.name} is not a file")
    return handle.read(cap + 1)[:cap]


def _check_signature(path: Path, data: bytes, raw: bytes,
                     trusted: dict[str, Ed25519PublicKey]) -> str:
    try:
        signature = json.loads(raw)
    except ValueError:
        signature = None
    if not isinstance(signature, dict) or not isinstance(signature.get("key"), str) \
            or not isinstance(signature.get("signature"), str):
        raise BundleError(f"{path}: {SIGNATURE} is damaged; copy the bundle again")
    signer = signature["key"]
    if signer not in trusted:
        shown = signer if len(signer) <= 32 else signer[:29] + "..."
        raise BundleError(f"{path}: signed by key {shown!r}, which is not trusted (trusted: "
                          f"{', '.join(sorted(trusted))}); trust it with 'fleetctl keys "
                          f"trust KEY.pub' if it is yours")
    try:
        trusted[signer].verify(base64.b64decode(signature["signature"], validate=True), data)
    except (InvalidSignature, ValueError):
        raise BundleError(f"{path}: the signature does not match: the bundle changed after "
                          f"it was signed; do not use it") from None
    return signer


def _check_space(path: Path, folder: Path, manifest: BundleManifest) -> None:
    free = shutil.disk_usage(folder).free
    if free < manifest.total_size + DISK_MARGIN:
        raise BundleError(f"{path}: unpacking needs {manifest.total_size / 2**20:,.0f} MiB "
                          f"and {folder} has {free / 2**20:,.0f} MiB free; make room first")


def _check_members(path: Path, tar: tarfile.TarFile, members: Iterator[tarfile.TarInfo],
                   listed: dict[str, Member], unpack_to: tuple[Path, BlobStore] | None
                   ) -> None:
    seen = set()
    for member in members:
        name = member.name
        if name in (MANIFEST, SIGNATURE) or name in seen:
            raise BundleError(f"{path}: {name} appears twice")
        if name not in listed:
            raise BundleError(f"{path}: {name} is not in the manifest; the bundle was "
                              f"changed, do not use it")
        declared = listed[name]
        if not member.isreg() or member.sparse is not None:
            raise BundleError(f"{path}: {name} is not a plain file")
        if member.size != declared.size:
            raise BundleError(f"{path}: {name} is {member.size:,} bytes, the manifest says "
                              f"{declared.size:,}; the bundle was changed, do not use it")
        chunks = _chunks(tar, member)
        changed = BundleError(f"{path}: {name} does not match its sha256 in the manifest; "
                              f"the bundle was changed or damaged, do not use it")
        if unpack_to is None:
            if _hash(chunks) != declared.sha256:
                raise changed
        else:
            source = f"{path}: {name}"
            try:
                if name.startswith("blobs/"):
                    unpack_to[1].write(declared.sha256, chunks, source, declared.size)
                else:
                    write_verified(unpack_to[0] / name, declared.sha256, chunks, source,
                                   declared.size)
            except BlobMismatch:
                raise changed from None
        seen.add(name)
    missing = sorted(set(listed) - seen)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise BundleError(f"{path}: {missing[0]} is missing{more}; copy the bundle again")


def _chunks(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    handle = tar.extractfile(member)
    assert handle is not None
    while chunk := handle.read(1 << 20):
        yield chunk


def _hash(chunks: Iterator[bytes]) -> Digest:
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk)
    return Digest("sha256:" + hasher.hexdigest())


# -- replay and rollback protection ------------------------------------------------------------

_CHANNELS = """
CREATE TABLE IF NOT EXISTS bundle_channels (
    channel     TEXT PRIMARY KEY,
    sequence    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    accepted_at REAL NOT NULL
);
"""


def check_fresh(db: StateDB, verified: Verified, allow_downgrade: bool,
                now: dt.datetime | None = None) -> str | None:
    """Refuse a bundle past its expiry or older on its channel than the newest this
    controller accepted, unless ``allow_downgrade``; returns a note when allowed."""
    manifest = verified.manifest
    now = now or dt.datetime.now(dt.timezone.utc)
    db.script(_CHANNELS)
    rows = db.query("SELECT sequence, name FROM bundle_channels WHERE channel = ?",
                    (manifest.channel,))
    problems = []
    if now > manifest.expires:
        problems.append(f"expired on {manifest.expires:%Y-%m-%d %H:%M} UTC")
    if rows and manifest.sequence < rows[0]["sequence"]:
        problems.append(f"sequence {manifest.sequence} on channel {manifest.channel!r} is "
                        f"older than {rows[0]['sequence']} ({rows[0]['name']!r}), already "
                        f"accepted here")
    if not problems:
        return None
    if not allow_downgrade:
        raise BundleError(f"{verified.path}: {'; '.join(problems)}: refusing a replayed or "
                          f"stale bundle; {DOWNGRADE_HINT}")
    return "allowed with --allow-downgrade: " + "; ".join(problems)


def accept(db: StateDB, verified: Verified) -> None:
    """Record the bundle as the newest accepted on its channel (if it is)."""
    manifest = verified.manifest
    db.script(_CHANNELS)
    with db.transaction() as tx:
        tx.execute("INSERT INTO bundle_channels VALUES (?, ?, ?, julianday('now')) "
                   "ON CONFLICT(channel) DO UPDATE SET sequence = excluded.sequence, "
                   "name = excluded.name, accepted_at = excluded.accepted_at "
                   "WHERE excluded.sequence > bundle_channels.sequence",
                   (manifest.channel, manifest.sequence, manifest.name))
