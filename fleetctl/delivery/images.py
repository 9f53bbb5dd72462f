"""Image delivery over SSH, for hosts that cannot (or should not) pull from a registry.

A host gets only the blobs it lacks: a layer whose chain id is already in the
engine's layer store is never sent (``docker load`` does not read it either).
Blobs land in a staging folder on the host as ``<hex>.part``, appended to from
where the last attempt stopped, and are renamed only once their sha256 matches,
so a broken link resumes instead of starting over. The staged blobs are then
put together as a ``docker save`` archive and loaded under a local tag that
names the manifest digest (``repo:sha256-<hex>``), since a loaded image has no
registry digest of its own; the loaded image's id must equal the manifest's
config digest.

With a seed, one host of a site receives the site's blobs once and serves them
to the other hosts of the site over its LAN (``fleetctl/delivery/seed.py``), so the
uplink carries each blob once per site. The controller's sending rate is capped
per site (``fleetctl_bandwidth``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import paramiko

from fleetctl.catalog.compose import RELEASES_ROOT
from fleetctl.delivery.blobstore import BlobStore
from fleetctl.device import StepFailed, run_step
from fleetctl.digest import Digest, parse_digest
from fleetctl.errors import FleetError
from fleetctl.shell import command, quote
from fleetctl.ssh import Connection, SSHFailure

#: where blobs wait on a device until they are loaded
STAGING = f"{RELEASES_ROOT}/.images"
CHUNK = 64 * 1024
LOAD_TIMEOUT = 900.0
MODES = ("registry", "ssh")
#: the largest manifest or config fleetctl reads
MAX_JSON = 4 * 2**20
#: the device side of seeding: serves staged blobs, fetches them from a seed
SEED_SCRIPT = (resources.files("fleetctl.delivery") / "seed.py").read_text()



# -- pure -------------------------------------------------------------------------------------

def chain_ids(diff_ids: list[str]) -> list[str]:
    """The layer store's ids of a stack of layers: the first layer's diff id, then
    ``sha256(parent chain id + " " + diff id)`` for each layer above it."""
    chains: list[str] = []
    for diff_id in diff_ids:
        chains.append(diff_id if not chains else
                      "sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest())
    return chains


def local_tag(reference: str) -> str:
    """The tag a delivered image gets: ``registry/repo@sha256:<hex>`` becomes
    ``registry/repo:sha256-<hex>`` (the cosign convention), so it names its digest
    (read back by :func:`fleetctl.facts.hostfacts.digest_from_tag`)."""
    name, _, digest = reference.partition("@")
    if not digest.startswith("sha256:"):
        raise ValueError(f"{reference!r} is not pinned by a sha256 digest")
    return f"{name}:sha256-{digest[7:]}"


def delivery_mode(host: str, host_vars: dict, override: str | None) -> str:
    """``registry`` or ``ssh`` for a host: ``override`` (the command line), else its
    ``fleetctl_delivery`` variable, else ``registry``."""
    mode = override or str(host_vars.get("fleetctl_delivery") or "registry")
    if mode not in MODES:
        where = "--delivery" if override else f"host {host}: fleetctl_delivery"
        raise FleetError(f"{where}: {mode!r} is not one of {', '.join(MODES)}", exit_code=2)
    return mode


@dataclass(frozen=True)
class ImageParts:
    """What makes up one platform image: its manifest, config and layers."""

    reference: str                          # registry/repo@sha256:...
    config: Digest
    layers: tuple[tuple[Digest, int], ...]  # (digest, size), bottom first
    diff_ids: tuple[Digest, ...]

    @property
    def manifest(self) -> Digest:
        return Digest(self.reference.rpartition("@")[2])

    @property
    def tag(self) -> str:
        return local_tag(self.reference)

    def save_manifest(self) -> bytes:
        """``manifest.json`` of a ``docker save`` archive of this image, the blobs
        under ``blobs/sha256/`` (gzipped layers load as they are)."""
        return json.dumps([{
            "Config": f"blobs/sha256/{self.config.hex}",
            "RepoTags": [self.tag],
            "Layers": [f"blobs/sha256/{d.hex}" for d, _ in self.layers],
        }]).encode()


class RateLimit:
    """A token bucket shared by every transfer to one site: ``rate`` bytes/s."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self.clock, self.sleep = clock, sleep
        self.lock = threading.Lock()
        self.next_free = clock()

    def take(self, size: int) -> None:
        """Wait until ``size`` more bytes may go out."""
        if not self.rate:
            return
        with self.lock:
            now = self.clock()
            start = max(now, self.next_free)
            self.next_free = start + size / self.rate
        if start > now:
            self.sleep(start - now)


# -- images in the controller's blob store ------------------------------------------------------

def image_parts(store: BlobStore, reference: str) -> ImageParts:
    """The parts of a pinned image, its manifest and config read from ``store`` (fetched
    into it first when missing); every digest in them checked."""
    name, _, pinned = reference.rpartition("@")
    digest = parse_digest(pinned, f"image {reference}")
    source = f"manifest of {name}@{digest}"
    manifest = _json_object(store.ensure(reference, digest, manifest=True, max_size=MAX_JSON),
                            source)
    try:
        config_digest = parse_digest((manifest.get("config") or {}).get("digest"), source)
        layers = tuple((parse_digest(layer.get("digest"), source), _size(layer, source))
                       for layer in manifest.get("layers") or [])
    except AttributeError:
        raise FleetError(f"{source}: not a single-platform image manifest",
                         exit_code=2) from None
    config = _json_object(store.ensure(reference, config_digest, max_size=MAX_JSON),
                          f"config {config_digest} of {name}")
    rootfs = config.get("rootfs")
    diff_ids = tuple(parse_digest(d, f"config {config_digest} of {name}")
                     for d in (rootfs.get("diff_ids") or [] if isinstance(rootfs, dict) else []))
    if len(diff_ids) != len(layers):
        raise FleetError(f"{reference}: {len(layers)} layers but {len(diff_ids)} diff ids "
                         f"in its config", exit_code=2)
    return ImageParts(f"{name}@{digest}", config_digest, layers, diff_ids)


def _json_object(path: Path, source: str) -> dict:
    try:
        value = json.loads(path.read_bytes())
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise FleetError(f"{source}: not a JSON object", exit_code=2)
    return value


def _size(layer: dict, source: str) -> int:
    size = layer.get("size", 0)
    if not isinstance(size, int) or size < 0:
        raise FleetError(f"{source}: layer size {size!r} is not a byte count", exit_code=2)
    return size


# -- on a host ----------------------------------------------------------------------------------

@dataclass
class Need:
    """What one host lacks of the images it should get."""

    images: list[ImageParts]
    blobs: dict[Digest, str]        # digest -> the image reference it belongs to, to stage
    staged: dict[Digest, int]       # digest -> bytes already there (``.part`` or complete)
    present_layers: int             # layers skipped: their chain is in the layer store


def _call(conn: Connection, step: str, timeout: float = 120.0, **values: str) -> str:
    return run_step(conn, step, timeout, S=STAGING, **values)


def _ask(conn: Connection, queries: list[str]) -> dict[str, str]:
    """The host's answers to survey queries: ``kind:key`` -> value (only keys asked
    about; a device answers what it likes, so nothing else is kept)."""
    asked = {f"{kind}:{key}" for kind, key, *_ in (q.split(" ") for q in queries)}
    out = _call(conn, "survey", Q="\n".join(queries))
    answers = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    return {key: value for key, value in answers.items() if key in asked}


def _staged_bytes(answers: dict[str, str], digest: Digest) -> int:
    """Bytes of a blob the host says it has staged (garbage counts as none)."""
    value = answers.get(f"blob:{digest.hex}", "0")
    return int(value) if value.isdigit() and value.isascii() else 0


def staged_bytes(conn: Connection, digest: Digest) -> int:
    """How much of one blob the host has staged (all of it once sealed)."""
    return _staged_bytes(_ask(conn, [f"blob {digest.hex}"]), digest)


def survey(conn: Connection, images: list[ImageParts]) -> Need:
    """Ask the host which images it has, which layers (by chain id) and which blobs
    are staged, and how far."""
    chains = {image.reference: chain_ids(list(image.diff_ids)) for image in images}
    queries = []
    for image in images:
        queries.append(f"image {image.tag} {image.config}")
        queries += [f"chain {chain[7:]}" for chain in chains[image.reference]]
        queries += [f"blob {d.hex}" for d in (image.config, *(d for d, _ in image.layers))]
    answers = _ask(conn, queries)
    need = Need([], {}, {}, 0)
    for image in images:
        if answers.get(f"image:{image.tag}") == "yes":
            continue
        need.images.append(image)
        wanted = [image.config]
        for (digest, _), chain in zip(image.layers, chains[image.reference], strict=True):
            if answers.get(f"chain:{chain[7:]}") == "yes":
                need.present_layers += 1
            else:
                wanted.append(digest)
        for digest in wanted:
            need.blobs[digest] = image.reference
            staged = _staged_bytes(answers, digest)
            if staged:
                need.staged[digest] = staged
    return need


def send_blob(conn: Connection, path: Path, digest: Digest, offset: int, limit: RateLimit,
              timeout: float = 60.0) -> int:
    """Append the blob from ``offset`` to its ``.part`` file on the host, then check and
    seal it. Returns the bytes sent."""
    total = path.stat().st_size
    offset = min(offset, total)
    sent = 0
    if offset < total:
        part = f"{STAGING}/blobs/{digest.hex}.part"
        try:
            channel = conn.start(f"umask 077 && {command('mkdir', '-p', f'{STAGING}/blobs')} "
                                 f"&& {command('truncate', '-s', offset, part)} "
                                 f"&& cat >> {quote(part)}", timeout)
            with path.open("rb") as source:
                source.seek(offset)
                while chunk := source.read(CHUNK):
                    limit.take(len(chunk))
                    channel.sendall(chunk)
                    sent += len(chunk)
            channel.shutdown_write()
            status = channel.recv_exit_status()
            error = channel.makefile_stderr("rb").read().decode(errors="replace").strip()
            channel.close()
            if status == -1:        # the channel closed without an exit status
                raise EOFError("the connection dropped")
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SSHFailure("connection lost", f"{conn.target.address}: sending "
                             f"{digest[:19]} at byte {offset + sent} of {total}: "
                             f"{exc or type(exc).__name__}") from None
        if status != 0:
            raise StepFailed(f"stage {digest[:19]}: {error or f'exit {status}'}")
    _call(conn, "seal", H=digest.hex)
    return sent


def load(conn: Connection, image: ImageParts) -> None:
    """``docker load`` the staged blobs as the image's local tag; check its id."""
    _call(conn, "load", LOAD_TIMEOUT, MANIFEST=image.save_manifest().decode(),
          TAG=image.tag, CONFIG=image.config,
          BLOBS=" ".join(d.hex for d in (image.config, *(d for d, _ in image.layers))))


def clean(conn: Connection, digests: list[Digest]) -> None:
    """Remove staged blobs (the engine holds the loaded images now)."""
    if digests:
        _call(conn, "clean", H=" ".join(d.hex for d in digests))


@dataclass
class Delivered:
    """What delivery did on one host."""

    host: str
    images: int = 0
    sent: int = 0                   # bytes that reached the host (from the controller or seed)
    resumed: int = 0                # bytes that were already staged from an earlier try
    skipped_layers: int = 0
    seed: str | None = None         # the host it fetched from, with a seed

    def describe(self) -> str:
        if not self.images:
            return "images already on the host"
        parts = [f"{self.images} image{'s' * (self.images != 1)} loaded",
                 f"{self.sent:,} bytes " + (f"from seed {self.seed}" if self.seed
                                            else "sent over SSH")]
        if self.resumed:
            parts.append(f"resumed after {self.resumed:,} bytes staged before")
        if self.skipped_layers:
            parts.append(f"{self.skipped_layers} layer{'s' * (self.skipped_layers != 1)} "
                         "already on the host")
        return ", ".join(parts)


def _send_all(conn: Connection, paths: dict[Digest, Path], staged: dict[Digest, int],
              limit: RateLimit) -> tuple[int, int]:
    """Send each blob from where its staged copy ends; returns (sent, resumed)."""
    sent = resumed = 0
    for digest, path in paths.items():
        offset = staged.get(digest, 0)
        resumed += min(offset, path.stat().st_size)
        sent += send_blob(conn, path, digest, offset, limit)
    return sent, resumed


def declared_size(images: list[ImageParts], digest: Digest) -> int | None:
    """The size a layer's manifest declares (configs are capped by their own read)."""
    return next((size for image in images for d, size in image.layers if d == digest), None)


def deliver_direct(conn: Connection, host: str, images: list[ImageParts], store: BlobStore,
                   limit: RateLimit) -> Delivered:
    """Send the blobs the host lacks over its SSH connection and load its images."""
    need = survey(conn, images)
    done = Delivered(host, skipped_layers=need.present_layers)
    paths = {digest: store.ensure(reference, digest, max_size=declared_size(images, digest))
             for digest, reference in need.blobs.items()}
    done.sent, done.resumed = _send_all(conn, paths, need.staged, limit)
    for image in need.images:
        load(conn, image)
        done.images += 1
    clean(conn, list(need.blobs))
    return done


def stage_for_peers(conn: Connection, paths: dict[Digest, Path],
                    limit: RateLimit) -> tuple[int, int]:
    """Stage on a seed every blob its peers need (once); returns (sent, resumed)."""
    answers = _ask(conn, [f"blob {d.hex}" for d in paths])
    staged = {d: _staged_bytes(answers, d) for d in paths}
    return _send_all(conn, paths, staged, limit)


class Seed:
    """A blob server on a seed host, for as long as the SSH session that runs it."""

    def __init__(self, conn: Connection, address: str) -> None:
        self.address = address
        self.token = secrets.token_hex(16)
        try:
            self.channel = conn.start(command("python3", "-c", SEED_SCRIPT, "serve",
                                              f"{STAGING}/blobs", address), 30)
            self.channel.sendall(f"{self.token}\n".encode())   # never on argv (ps shows it)
            first = self.channel.makefile("rb").readline().decode().strip()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SSHFailure("seed failed", f"{address}: {exc or type(exc).__name__}") from None
        if not (first.startswith("port ") and first[5:].isdigit()):
            error = self.channel.makefile_stderr("rb").read().decode(errors="replace")
            raise StepFailed(f"seed on {address} did not start: "
                             f"{(error.strip().splitlines() or ['no output'])[-1]}")
        self.port = int(first.split()[1])

    def url(self) -> str:
        return f"http://{self.address}:{self.port}/{self.token}"

    def close(self) -> None:
        """Stop the server (it exits when its session's stdin closes)."""
        self.channel.close()


def deliver_from_seed(conn: Connection, host: str, images: list[ImageParts], seed: Seed,
                      seed_host: str) -> Delivered:
    """Fetch the blobs the host lacks from the site's seed over the LAN, then load."""
    need = survey(conn, images)
    done = Delivered(host, skipped_layers=need.present_layers, seed=seed_host)
    if need.blobs:
        wanted = [f"{d.hex}:{need.staged.get(d, 0)}" for d in need.blobs]
        out = conn.run(command("python3", "-c", SEED_SCRIPT, "fetch", seed.url(),
                               f"{STAGING}/blobs", *wanted),
                       command="sh -s", command_timeout=LOAD_TIMEOUT)
        if out.status != 0:
            lines = (out.stderr or out.stdout).strip().splitlines()
            raise StepFailed(f"fetch from seed {seed_host}: "
                             f"{lines[-1] if lines else f'exit {out.status}'}")
        done.sent = sum(int(words[2]) for words in map(str.split, out.stdout.splitlines())
                        if len(words) == 3 and words[0] == "fetched" and words[2].isdigit())
        done.resumed = sum(need.staged.values())
    for image in need.images:
        load(conn, image)
        done.images += 1
    clean(conn, list(need.blobs))
    return done
