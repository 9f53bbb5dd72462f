"""An image-based OTA payload the operator hands fleetctl (``--payload``, made by NVIDIA's
``l4t_generate_ota_package.sh``): its sha256 (the device checks the copy it receives
against it) and the board specs it is made for, read from its
``ota_board_specs.conf`` with a size cap. A file that is not a gzipped tar with that
member is refused.
"""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path

from fleetctl.digest import Digest, parse_digest
from fleetctl.errors import InputError

#: the most of ota_board_specs.conf fleetctl reads
MAX_SPECS = 256 * 1024
SPECS = "ota_board_specs.conf"


@dataclass(frozen=True)
class Payload:
    """A payload file, hashed and its board specs read."""

    path: Path
    digest: Digest
    size: int
    board_specs: tuple[str, ...]

    @property
    def size_mb(self) -> int:
        return -(-self.size // 2**20)


def read_payload(path: Path) -> Payload:
    """Hash the payload and read its board specs; InputError naming the file otherwise."""
    try:
        with path.open("rb") as f:
            sha = hashlib.file_digest(f, "sha256")
        size = path.stat().st_size
        with tarfile.open(path, "r|gz") as archive:
            text = None
            for member in archive:
                if member.name.lstrip("./") == SPECS and member.isfile():
                    if member.size > MAX_SPECS:
                        raise InputError(f"{path}: {SPECS} is larger than {MAX_SPECS:,} "
                                         f"bytes; not an OTA payload")
                    extracted = archive.extractfile(member)
                    text = extracted.read(MAX_SPECS).decode("utf-8", "replace") \
                        if extracted else ""
                    break
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (tarfile.TarError, EOFError):
        raise InputError(f"{path}: not a gzipped tar; an OTA payload is the "
                         f"ota_payload_package.tar.gz l4t_generate_ota_package.sh makes") from None
    if text is None:
        raise InputError(f"{path}: no {SPECS} in it; not an OTA payload")
    specs = tuple(line.strip() for line in text.splitlines()
                  if line.strip() and not line.lstrip().startswith("#"))
    return Payload(path, parse_digest(f"sha256:{sha.hexdigest()}", str(path)), size, specs)
