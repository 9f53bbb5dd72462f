"""Jetson identity: pure parsers and tables for L4T, JetPack, CUDA and modules.

Everything here is a plain function of strings read from a host; nothing
touches the local machine, so the same code judges a remote Jetson, a lab host
or an x86 server.
"""

from __future__ import annotations

import re
from datetime import datetime

_RELEASE_LINE = re.compile(
    r"^# R(?P<major>\d+) \(release\), REVISION: (?P<minor>\d+)\.(?P<patch>\d+)"
    r"(?:, GCID: (?P<gcid>\d+))?(?:, BOARD: (?P<board>[^,]+))?"
    r"(?:, EABI: (?P<eabi>[^,]+))?(?:, DATE: (?P<date>.+))?"
)


def parse_nv_tegra_release(text: str) -> str:
    """Return the L4T version (``"36.4.3"``) from ``/etc/nv_tegra_release``.

    Only the first line is read, trailing NULs and whitespace are ignored.
    Raises ``ValueError`` when the line is not an L4T release line.
    """
    first = text.lstrip("\ufeff").split("\n", 1)[0].rstrip("\0 \r\t")
    match = _RELEASE_LINE.match(first)
    if not match:
        raise ValueError(f"not an L4T release line: {first[:80]!r}")
    return f"{match['major']}.{match['minor']}.{match['patch']}"


def release_line_date(text: str) -> datetime | None:
    """The ``DATE:`` of a release line as a datetime, or None when absent or odd."""
    match = _RELEASE_LINE.match(text.split("\n", 1)[0])
    if not match or not match["date"]:
        return None
    try:
        return datetime.strptime(" ".join(match["date"].split()), "%a %b %d %H:%M:%S UTC %Y")
    except ValueError:
        return None
