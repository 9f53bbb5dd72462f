"""A bundle's ``manifest.json``, parsed into checked types once.

It is read before anything else in a bundle and it decides what is written
where, so every field is checked here: member names are plain relative paths,
blobs are named by their own sha256, every digest is a :class:`Digest`, sizes
are byte counts, and the channel, sequence and expiry that protect against
replaying an old bundle are present. A wrong shape is one :class:`BundleError`
naming the field.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from fleetctl.digest import Digest, DigestError, parse_digest, parse_hex
from fleetctl.errors import FleetError

FORMAT = "fleetctl-bundle/2"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
#: what is read of a bundle before its signature is checked
MAX_MANIFEST = 16 * 2**20
MAX_SIGNATURE = 64 * 2**10
_CHANNEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class BundleError(FleetError):
    """A bundle that cannot be trusted or read; nothing was touched."""

    exit_code = 2


@dataclass(frozen=True)
class Member:
    """A file in the bundle, as the manifest declares it."""

    sha256: Digest
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256.hex, "size": self.size}


@dataclass(frozen=True)
class BundleImage:
    """One platform image in the bundle, by the reference the plan pins."""

    reference: str                  # registry/repo@sha256:...
    manifest: Digest                # its digest (= the reference's)
    config: Digest
    layers: tuple[Digest, ...]
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"manifest": self.manifest, "config": self.config, "layers": list(self.layers),
                "size": self.size}


@dataclass(frozen=True)
class BundleManifest:
    """What a bundle holds and which release of which channel it is."""

    name: str
    channel: str
    sequence: int
    created: dt.datetime
    expires: dt.datetime
    images: dict[str, BundleImage]
    members: dict[str, Member]

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "name": self.name, "channel": self.channel,
                "sequence": self.sequence,
                "created": self.created.isoformat(timespec="seconds"),
                "expires": self.expires.isoformat(timespec="seconds"),
                "images": {r: i.to_json() for r, i in sorted(self.images.items())},
                "members": {n: m.to_json() for n, m in sorted(self.members.items())}}

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), indent=1, sort_keys=True).encode()

    @property
    def total_size(self) -> int:
        return sum(m.size for m in self.members.values())


def check_channel(channel: str) -> str:
    """A channel name: letters, digits, ``.``, ``_``, ``-``, at most 64."""
    if not _CHANNEL.fullmatch(channel):
        raise FleetError(f"channel {channel!r}: use letters, digits, '.', '_' and '-' "
                         f"(at most 64)", exit_code=2)
    return channel


def parse_manifest(path: Path, data: bytes) -> BundleManifest:
    """The manifest's bytes as a :class:`BundleManifest`; BundleError naming the field."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise BundleError(f"{path}: {MANIFEST} is damaged; copy the bundle again") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise BundleError(f"{path}: not a {FORMAT} bundle (format {found!r}); make it again "
                          f"with this fleetctl's 'bundle create'")
    field = _Fields(path, doc)
    try:
        members = {_member_name(path, name): _member(field.sub(f"members.{name}", value))
                   for name, value in field.mapping("members").items()}
        images = {ref: _image(ref, field.sub(f"images.{ref}", value))
                  for ref, value in field.mapping("images").items()}
        manifest = BundleManifest(
            name=field.text("name"), channel=check_channel(field.text("channel")),
            sequence=field.count("sequence"), created=field.time("created"),
            expires=field.time("expires"), images=images, members=members)
    except DigestError as exc:
        raise BundleError(str(exc)) from None
    except FleetError as exc:
        raise BundleError(f"{path}: {MANIFEST}: {exc}") from None
    for name, member in members.items():
        if name.startswith("blobs/") and name != f"blobs/sha256/{member.sha256.hex}":
            raise BundleError(f"{path}: {MANIFEST}: {name} is not named by its sha256 "
                              f"({member.sha256.hex}); do not use this bundle")
    for image in images.values():
        for digest in (image.manifest, image.config, *image.layers):
            if f"blobs/sha256/{digest.hex}" not in members:
                raise BundleError(f"{path}: {MANIFEST}: image {image.reference} needs blob "
                                  f"{digest}, which the bundle does not list")
    return manifest


def _member_name(path: Path, name: str) -> str:
    parts = PurePosixPath(name).parts
    if not name or name.startswith("/") or ".." in parts or "." in name.split("/") \
            or name in (MANIFEST, SIGNATURE) or "\\" in name or "\0" in name:
        raise BundleError(f"{path}: {MANIFEST}: member {name!r} is not a plain relative path")
    return name


def _member(field: _Fields) -> Member:
    return Member(parse_hex(field.doc.get("sha256"), f"{field.where}.sha256"),
                  field.count("size"))


def _image(reference: str, field: _Fields) -> BundleImage:
    digest = parse_digest(field.doc.get("manifest"), f"{field.where}.manifest")
    if not reference.endswith(f"@{digest}"):
        raise FleetError(f"{field.where}: the reference does not end in @{digest}")
    layers = field.doc.get("layers")
    if not isinstance(layers, list):
        raise FleetError(f"{field.where}.layers: expected a list of digests")
    return BundleImage(reference, digest,
                       parse_digest(field.doc.get("config"), f"{field.where}.config"),
                       tuple(parse_digest(d, f"{field.where}.layers") for d in layers),
                       field.count("size"))


class _Fields:
    """Typed reads of one JSON object, errors naming the field's path."""

    def __init__(self, path: Path, doc: Any, where: str = "") -> None:
        if not isinstance(doc, dict):
            raise FleetError(f"{where}: expected an object")
        self.path, self.doc, self.where = path, doc, where

    def sub(self, where: str, doc: Any) -> _Fields:
        return _Fields(self.path, doc, where)

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def text(self, key: str) -> str:
        value = self.doc.get(key)
        if not isinstance(value, str) or not value:
            raise FleetError(f"{self._name(key)}: expected a non-empty string")
        return value

    def count(self, key: str) -> int:
        value = self.doc.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise FleetError(f"{self._name(key)}: expected a whole number >= 0")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.doc.get(key)
        if not isinstance(value, dict):
            raise FleetError(f"{self._name(key)}: expected an object")
        return value

    def time(self, key: str) -> dt.datetime:
        try:
            value = dt.datetime.fromisoformat(self.text(key))
        except ValueError:
            raise FleetError(f"{self._name(key)}: expected an ISO 8601 time") from None
        if value.tzinfo is None:
            raise FleetError(f"{self._name(key)}: the time has no UTC offset")
        return value
