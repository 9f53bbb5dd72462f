"""The controller's content-addressed blob store (``<dir>/sha256/<hex>``).

A blob's name is its content's sha256, and the store is the one place blobs are
written: :meth:`BlobStore.write` hashes the bytes while it writes them to a
private partial file and renames that into place only when the hash is the
name it was asked for (and the size within the cap it was given). A mismatch
deletes the partial file and names the source, so bytes from a registry or a
bundle can never sit in the store under a digest they do not have.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from fleetctl.catalog.registry import BlobFetcher
from fleetctl.digest import Digest, parse_digest
from fleetctl.errors import FleetError


class BlobMismatch(FleetError):
    """Bytes that do not match the digest (or size) they were sent under; not kept."""

    exit_code = 2


def write_verified(final: Path, digest: Digest, chunks: Iterable[bytes], source: str,
                   max_size: int | None = None) -> Path:
    """Write ``chunks`` to ``final``, hashing them on the way: they go to a private
    partial file beside it, renamed into place only when their sha256 is ``digest``
    and they are at most ``max_size`` bytes. Otherwise the partial file is deleted
    and BlobMismatch names ``source``."""
    final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, partial = tempfile.mkstemp(prefix=f".{final.name[:16]}.", suffix=".part",
                                   dir=final.parent)
    hasher, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as sink:
            for chunk in chunks:
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise BlobMismatch(f"{source}: more than the {max_size:,} bytes declared "
                                       f"for {digest}; refusing it")
                hasher.update(chunk)
                sink.write(chunk)
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest:
            raise BlobMismatch(f"{source}: the bytes received are {actual}, not {digest}; "
                               f"not kept, do not use that source")
        os.replace(partial, final)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return final


class BlobStore:
    """Blobs by digest, filled from a bundle or, with ``fetch``, from registries."""

    def __init__(self, root: Path, fetch: BlobFetcher | None = None) -> None:
        self.root = root
        self.fetch = fetch
        self._lock = threading.Lock()

    def path(self, digest: Digest) -> Path:
        return self.root / "sha256" / parse_digest(digest, "blob store").hex

    def has(self, digest: Digest) -> bool:
        return self.path(digest).is_file()

    def write(self, digest: Digest, chunks: Iterable[bytes], source: str,
              max_size: int | None = None) -> Path:
        """Store the bytes of ``chunks`` as ``digest`` (see :func:`write_verified`)."""
        return write_verified(self.path(digest), Digest(digest), chunks, source, max_size)

    def ensure(self, reference: str, digest: Digest, manifest: bool = False,
               max_size: int | None = None) -> Path:
        """The blob's file, fetched first (and checked) when it is missing."""
        path = self.path(digest)
        if path.is_file():
            return path
        if self.fetch is None:
            raise FleetError(f"blob {digest} of {reference} is not in {self.root}; the bundle "
                             f"does not hold it", exit_code=2)
        with self._lock:
            if not path.is_file():
                self.write(digest, self.fetch(reference, digest, manifest),
                           f"registry of {reference}", max_size)
        return path
