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


def _l4t_key(l4t: str) -> str:
    """``36.4`` -> ``36.4.0``: the tables key every release by major.minor.patch."""
    parts = l4t.strip().lstrip("rR").split(".")
    return ".".join(([*parts, "0", "0"])[:3])


#: L4T -> JetPack (NVIDIA's release notes, as tabulated by jetson_stats)
JETPACK = {
    "39.2.0": "7.2", "39.0.0": "7.2 EA", "38.4.0": "7.1", "38.2.2": "7.0", "38.2.1": "7.0",
    "38.2.0": "7.0", "38.1.0": "7.0 EA", "36.5.0": "6.2.2", "36.4.7": "6.2.1", "36.4.4": "6.2.1",
    "36.4.3": "6.2", "36.4.2": "6.1.1", "36.4.0": "6.1", "36.3.0": "6.0", "36.2.0": "6.0 DP",
    "36.0.0": "6.0 EA", "35.6.4": "5.1.6", "35.6.3": "5.1.5", "35.6.2": "5.1.5",
    "35.6.1": "5.1.5", "35.6.0": "5.1.4", "35.5.0": "5.1.3", "35.4.1": "5.1.2",
    "35.3.1": "5.1.1", "35.3.0": "5.1.1 PRE", "35.2.1": "5.1", "35.1.0": "5.0.2",
    "34.1.1": "5.0.1 DP", "34.1.0": "5.0 DP", "34.0.1": "5.0 PRE-DP", "32.7.6": "4.6.6",
    "32.7.5": "4.6.5", "32.7.4": "4.6.4", "32.7.3": "4.6.3", "32.7.2": "4.6.2",
    "32.7.1": "4.6.1", "32.6.1": "4.6", "32.5.2": "4.5.1", "32.5.1": "4.5.1", "32.5.0": "4.5",
    "32.4.4": "4.4.1", "32.4.3": "4.4", "32.4.2": "4.4 DP", "32.3.1": "4.3", "32.2.3": "4.2.3",
    "32.2.1": "4.2.2", "32.2.0": "4.2.1", "32.1.0": "4.2", "31.1.0": "4.1.1", "31.0.2": "4.1",
    "31.0.1": "4.0",
}

#: L4T major -> Ubuntu release of its root filesystem
UBUNTU = {39: "24.04", 38: "24.04", 36: "22.04", 35: "20.04", 34: "20.04", 32: "18.04"}


def jetpack_for_l4t(l4t: str | None) -> str | None:
    """JetPack release of an L4T version (``"36.4.3"`` -> ``"6.2"``); None when unknown.

    An unknown L4T stays unknown: no guess at the newest JetPack.
    """
    return JETPACK.get(_l4t_key(l4t)) if l4t else None


def cuda_for_l4t(l4t: str | None) -> str | None:
    """CUDA that ships with an L4T release, as ``major.minor``; None when unknown.

    JetPack 4 and 5 ship CUDA on the host (10.2, 11.4); JetPack 6 ships 12.2 to
    12.6 by release; JetPack 7 ships 13.0 (r38) and 13.2 (r39).
    """
    if not l4t:
        return None
    major, minor, _ = (int(p) for p in _l4t_key(l4t).split("."))
    if major >= 39:
        return "13.2"
    if major == 38:
        return "13.0"
    if major == 36:
        return {2: "12.2", 3: "12.4"}.get(minor, "12.6" if minor >= 4 else None)
    if major in (34, 35):
        return "11.4"
    if major == 32:
        return "10.2"
    return None


def ubuntu_for_l4t(l4t: str | None) -> str | None:
    """Ubuntu release of an L4T root filesystem (``"36.4.3"`` -> ``"22.04"``)."""
    return UBUNTU.get(int(_l4t_key(l4t).split(".")[0])) if l4t else None


#: module part number -> (name, short name used in --where module=...)
MODULES = {
    "p3834-0008": ("NVIDIA Jetson AGX Thor (Developer kit)", "agx-thor"),
    "p3767-0005": ("NVIDIA Jetson Orin Nano (Developer kit)", "orin-nano"),
    "p3767-0004": ("NVIDIA Jetson Orin Nano (4GB ram)", "orin-nano"),
    "p3767-0003": ("NVIDIA Jetson Orin Nano (8GB ram)", "orin-nano"),
    "p3767-0001": ("NVIDIA Jetson Orin NX (8GB ram)", "orin-nx"),
    "p3767-0000": ("NVIDIA Jetson Orin NX (16GB ram)", "orin-nx"),
    "p3701-0005": ("NVIDIA Jetson AGX Orin (64GB ram)", "agx-orin"),
    "p3701-0004": ("NVIDIA Jetson AGX Orin (32GB ram)", "agx-orin"),
    "p3701-0002": ("NVIDIA Jetson IGX Orin (Developer kit)", "igx-orin"),
    "p3701-0000": ("NVIDIA Jetson AGX Orin", "agx-orin"),
    "p3668-0003": ("NVIDIA Jetson Xavier NX (16GB ram)", "xavier-nx"),
    "p3668-0001": ("NVIDIA Jetson Xavier NX", "xavier-nx"),
    "p3668-0000": ("NVIDIA Jetson Xavier NX (Developer kit)", "xavier-nx"),
    "p2888-0008": ("NVIDIA Jetson AGX Xavier Industrial (32 GB ram)", "agx-xavier"),
    "p2888-0006": ("NVIDIA Jetson AGX Xavier (8 GB ram)", "agx-xavier"),
    "p2888-0005": ("NVIDIA Jetson AGX Xavier (64 GB ram)", "agx-xavier"),
    "p2888-0004": ("NVIDIA Jetson AGX Xavier (32 GB ram)", "agx-xavier"),
    "p2888-0003": ("NVIDIA Jetson AGX Xavier (32 GB ram)", "agx-xavier"),
    "p2888-0001": ("NVIDIA Jetson AGX Xavier (16 GB ram)", "agx-xavier"),
    "p3448-0003": ("NVIDIA Jetson Nano (2 GB ram)", "nano"),
    "p3448-0002": ("NVIDIA Jetson Nano module (16Gb eMMC)", "nano"),
    "p3448-0000": ("NVIDIA Jetson Nano (4 GB ram)", "nano"),
    "p3636-0001": ("NVIDIA Jetson TX2 NX", "tx2-nx"),
    "p3489-0888": ("NVIDIA Jetson TX2 (4 GB ram)", "tx2"),
    "p3489-0000": ("NVIDIA Jetson TX2i", "tx2"),
    "p3310-1000": ("NVIDIA Jetson TX2", "tx2"),
    "p2180-1000": ("NVIDIA Jetson TX1", "tx1"),
}

#: SoC -> (family, CUDA compute capability); matched on the SoC's prefix
SOCS = {
    "tegra264": ("thor", "11.0"), "tegra234": ("orin", "8.7"), "tegra194": ("xavier", "7.2"),
    "tegra186": ("tx2", "6.2"), "tegra210": ("tx1-nano", "5.3"), "tegra124": ("tk1", "3.2"),
}

#: L4T major release -> the SoC families it supports (Jetson Linux release notes: JetPack
#: 6 / R36 is for Orin alone, JetPack 5 / R35 for Xavier and Orin, R38 for Thor alone)
L4T_SOC_FAMILIES = {
    "32": ("tx1-nano", "tx2", "xavier"), "35": ("xavier", "orin"), "36": ("orin",),
    "38": ("thor",),
}

_PART = re.compile(r"p\d{4}-\d{4}")


def supports(l4t: str, soc: str | None) -> bool | None:
    """Whether L4T ``l4t`` runs on SoC ``soc`` (``tegra234``); None when not known."""
    families = L4T_SOC_FAMILIES.get(_l4t_key(l4t).split(".")[0])
    family = next((f for s, (f, _) in SOCS.items() if soc and soc.startswith(s)), None)
    if families is None or family is None:
        return None
    return family in families


def split_compatible(raw: str) -> list[str]:
    """The entries of a device-tree ``compatible`` property (NUL- or newline-separated)."""
    return [e.strip() for e in re.split(r"[\0\n]", raw) if e.strip()]


def module_from_compatible(text: str) -> dict[str, str | None]:
    """Module part number, name, short name, SoC and CUDA arch from ``compatible``.

    The module's part number is the ``+pXXXX-YYYY`` of the first entry (the
    first part names the carrier board), else a middle ``nvidia,pXXXX-YYYY``
    entry; the SoC is the last entry. Unknown parts keep their number, with
    ``name`` None.
    """
    entries = split_compatible(text)
    part = None
    if entries and "+" in entries[0]:
        found = _PART.search(entries[0].split("+", 1)[1])
        part = found.group(0) if found else None
    if part is None:
        for entry in entries[1:-1]:
            found = _PART.fullmatch(entry.split(",", 1)[-1])
            if found:
                part = found.group(0)
                break
    soc = entries[-1].split(",")[-1] if entries else None
    family, cuda_arch = next(((f, a) for s, (f, a) in SOCS.items() if soc and soc.startswith(s)),
                             (None, None))
    name, short = MODULES.get(part or "", (None, None))
    return {"part_number": part, "module": name, "module_short": short, "soc": soc,
            "soc_family": family, "cuda_arch": cuda_arch}


def strip_nul(raw: str) -> str:
    """A device-tree string without its trailing NUL(s) and whitespace."""
    return raw.replace("\0", "").strip()


def docker_arch(machine: str | None) -> str | None:
    """Docker's name for an architecture: ``x86_64`` -> ``amd64``, ``aarch64`` -> ``arm64``."""
    if not machine:
        return None
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)
