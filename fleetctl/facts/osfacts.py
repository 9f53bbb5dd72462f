"""What ``fleetctl os plan`` needs to know of a Jetson beyond its facts, read in one
round trip (``os.sh``): the release its NVIDIA apt source points at, its boot slots
(``nvbootctrl``), its firmware (the UEFI ESRT), its root filesystem and free space,
its board spec, its L4T packages (dpkg) and whether an update is under way. Everything
comes from the device and is parsed, never trusted: what does not parse stays None,
and the plan treats None as "cannot be checked".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources

from fleetctl.facts.hostfacts import split_sections

OS_SCRIPT = (resources.files("fleetctl.facts") / "os.sh").read_text()
_APT = re.compile(r"^\s*deb\s+\S+/jetson/(\S+)\s+r(\d+\.\d+)\s", re.MULTILINE)
_SLOT = re.compile(r"^slot:\s*(\d+),\s*status:\s*(\S+)", re.MULTILINE)
#: ``nvbootctrl is-unified-enabled`` exit codes
UNIFIED = {0: "unified A/B", 70: "rootfs A/B only", 69: "no A/B"}


@dataclass(frozen=True)
class OSFacts:
    """A host's OS-update state (None: absent or not readable)."""

    apt_release: str | None = None          # "36.4" from the apt source's rXX.Y
    apt_repos: tuple[str, ...] = ()         # "common", "t234"
    bootloader_slot: str | None = None      # "A" or "B": the slot the host booted from
    active_slot: str | None = None          # the slot the next boot uses
    capsule_status: int | None = None       # 0 none, 1 applied, 2 boot failed, 3 failed
    bsp_version: str | None = None          # nvbootctrl's "Current version"
    slots: dict[int, str] = field(default_factory=dict)   # slot -> status ("normal")
    ab: str | None = None                   # a value of UNIFIED
    fw_version: str | None = None           # the firmware's L4T release, from the ESRT
    last_attempt_status: int | None = None  # 0: the last capsule applied
    root_fstype: str | None = None
    root_read_only: bool | None = None
    root_free_mb: int | None = None         # where apt downloads (/var/cache/apt on /)
    board_spec: str | None = None           # TNSPEC of /etc/nv_boot_control.conf
    l4t_core: str | None = None             # dpkg's nvidia-l4t-core version
    dpkg_broken: str | None = None          # the packages dpkg --audit names (unfinished)
    updating: tuple[str, ...] = ()          # "apt-staged", "reboot-pending"

    @property
    def slots_bootable(self) -> bool | None:
        return all(s == "normal" for s in self.slots.values()) if self.slots else None


def parse_os_facts(output: str) -> OSFacts:
    """The OS probe's output; ProbeOutputError when it is not that."""
    s = split_sections(output)
    apt = _APT.findall(s.get("apt_source", ""))
    slots_text = s.get("slots", "")
    info = dict(_field(line) for line in slots_text.splitlines() if ":" in line)
    unified = _int(s.get("unified", ""))
    root = s.get("root_mount", "").split()
    return OSFacts(
        apt_release=apt[0][1] if apt else None,
        apt_repos=tuple(dict.fromkeys(repo for repo, _ in apt)),
        bootloader_slot=info.get("Current bootloader slot"),
        active_slot=info.get("Active bootloader slot"),
        capsule_status=_int(info.get("Capsule update status", "")),
        bsp_version=info.get("Current version"),
        slots={int(n): status for n, status in _SLOT.findall(slots_text)},
        ab=UNIFIED.get(unified) if unified is not None else None,
        fw_version=fw_release(s.get("fw_version", "")),
        last_attempt_status=_int(s.get("last_attempt_status", "")),
        root_fstype=root[0] if root else None,
        root_read_only="ro" in root[1].split(",") if len(root) > 1 else None,
        root_free_mb=_free_mb(s.get("root_df", "")),
        board_spec=_board_spec(s.get("boot_control", "")),
        l4t_core=_first_line(s.get("l4t_core", ""), 64),
        dpkg_broken=_dpkg_audit(s.get("dpkg_audit", "")),
        updating=tuple(w for w in s.get("updating", "").split()
                       if w in ("apt-staged", "reboot-pending")))


def fw_release(text: str) -> str | None:
    """The L4T release an ESRT ``fw_version`` encodes: ``(major << 16) | (minor << 8) |
    revision``, so 2294785 (0x230401) is 35.4.1."""
    value = _int(text)
    if value is None or not 0 < value < 1 << 24:
        return None
    return f"{value >> 16}.{(value >> 8) & 0xFF}.{value & 0xFF}"


def _first_line(text: str, limit: int) -> str | None:
    lines = text.strip().splitlines()
    return lines[0][:limit] if lines else None


def _dpkg_audit(text: str) -> str | None:
    """The packages ``dpkg --audit`` lists (its indented lines), or its first line."""
    names = [line.split()[0] for line in text.splitlines() if line.startswith(" ")
             and line.split()]
    return ", ".join(names)[:200] if names else _first_line(text, 200)


def _field(line: str) -> tuple[str, str]:
    key, _, value = line.partition(":")
    return key.strip(), value.strip()


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def _free_mb(df: str) -> int | None:
    lines = df.strip().splitlines()
    parts = lines[-1].split() if len(lines) >= 2 else []
    return int(parts[3]) // 1024 if len(parts) >= 4 and parts[3].isdigit() else None


def _board_spec(conf: str) -> str | None:
    """``TNSPEC 3767-300-0005-K.2-1-1-jetson-orin-nano-devkit-``: the board spec."""
    for line in conf.splitlines():
        key, _, value = line.strip().partition(" ")
        if key == "TNSPEC" and value.strip():
            return value.strip()
    return None
