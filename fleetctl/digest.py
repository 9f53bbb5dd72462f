"""Content digests, parsed once where they enter: ``sha256:`` and 64 lower-case hex
digits, nothing else.

Registries, bundles, plan files, the journal and devices all hand fleetctl
strings that claim to be digests; those strings become file names on the
controller and words in device commands. :func:`parse_digest` is the one gate
they pass: anything else is a :class:`DigestError` naming where it came from.
"""

from __future__ import annotations

import hashlib
import re

from fleetctl.errors import InputError

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class DigestError(InputError):
    """A value that should be a sha256 digest is not one."""

    exit_code = 2


class Digest(str):
    """``sha256:<64 hex>``, checked. Use :func:`parse_digest` to make one."""

    __slots__ = ()

    @property
    def hex(self) -> str:
        """The 64 hex digits (a blob's file name)."""
        return self[7:]


def parse_digest(value: object, source: str) -> Digest:
    """``value`` as a :class:`Digest`; DigestError naming ``source`` otherwise."""
    if isinstance(value, Digest):
        return value
    if isinstance(value, str) and _DIGEST.fullmatch(value):
        return Digest(value)
    shown = repr(value) if len(repr(value)) <= 90 else repr(value)[:87] + "..."
    raise DigestError(f"{source}: {shown} is not a digest (sha256: and 64 hex digits); "
                      f"refusing it")


def optional_digest(value: object, source: str) -> Digest | None:
    """None stays None; anything else must be a digest."""
    return None if value is None else parse_digest(value, source)


def parse_hex(value: object, source: str) -> Digest:
    """A blob's file name (64 hex digits) as its digest."""
    return parse_digest(f"sha256:{value}" if isinstance(value, str) else value, source)


def sha256_of(data: bytes) -> Digest:
    """The digest of ``data``."""
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())
