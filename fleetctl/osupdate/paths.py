"""Which way a Jetson can go to a target L4T release, or why it cannot. Pure.

- **apt** within a major release (R36.3 -> R36.4): the NVIDIA apt source's ``rXX.Y``
  switched, ``apt-get update``, ``apt-get dist-upgrade`` of the ``nvidia-l4t-*``
  packages, a reboot that applies the bootloader capsule. No automatic way back on a
  real device (R36.4 and later have bootloader rollback protection).
- **image** across a major release (R35.5+ -> R36): NVIDIA's image-based OTA payload
  (``l4t_generate_ota_package.sh``) written into the other rootfs slot by
  ``nv_ota_start.sh``, a reboot into that slot; the way back is the old slot.
- **blocked**, with the reason and the fix.

Facts: ``../shared/design/next-facts.md`` (NVIDIA's update documentation and forum).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fleetctl.facts.hostfacts import HostFacts
from fleetctl.facts.jetson import supports
from fleetctl.facts.osfacts import OSFacts

#: the least free space on / for an apt update (community scripts check 5 GB)
APT_FREE_MB = 5 * 1024
#: the least free space for an image-based payload when its size is not known
IMAGE_FREE_MB = 8 * 1024
#: JetPack 5 -> 6 over the air only from R35.5.0 on (NVIDIA forum t/345680)
IMAGE_FROM = (35, 5, 0)


def release(text: str) -> tuple[int, int, int]:
    """``36.4.4`` (or ``36.4``) as numbers; ValueError otherwise."""
    parts = text.strip().lstrip("rR").split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{text!r} is not an L4T release such as 36.4.4")
    numbers = [int(p) for p in parts] + [0] * (3 - len(parts))
    return numbers[0], numbers[1], numbers[2]


def shown(version: tuple[int, int, int]) -> str:
    return ".".join(str(p) for p in version)


@dataclass
class OSPath:
    """One host's way to the target: ``apt``, ``image``, ``current`` (already there) or
    ``blocked``; the reasons it is blocked, and what to know before going."""

    host: str
    kind: str
    current: str | None
    target: str
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return self.kind == "blocked"

    def to_json(self) -> dict[str, object]:
        return {"host": self.host, "path": self.kind, "current": self.current,
                "target": self.target, "reasons": self.reasons, "notes": self.notes}


def os_path(host: str, facts: HostFacts, os: OSFacts, target: str,
            payload_specs: list[str] | None = None,
            payload_mb: int | None = None) -> OSPath:
    """The way ``host`` can go to ``target``; ``payload_specs`` are the board specs an
    image-based payload supports (its ``ota_board_specs.conf``), when one is given."""
    goal = release(target)
    path = OSPath(host, "blocked", facts.l4t, shown(goal))
    if not facts.l4t:
        path.reasons.append("not a Jetson, or its L4T release could not be read")
        return path
    now = release(facts.l4t)
    if now == goal:
        path.kind = "current"
        return path
    if now > goal:
        path.reasons.append(f"R{shown(now)} is newer than R{shown(goal)}: L4T is not "
                            f"downgraded over the air (R36.4 and later have bootloader "
                            f"rollback protection); reflash to go back")
        return path
    if now[0] == 32:
        path.reasons.append("JetPack 4 (R32) cannot be updated over the air to JetPack 5 "
                            "or 6: reflash")
        return path
    runs = supports(shown(goal), facts.soc)
    if runs is not True:
        module = facts.module_short or facts.soc or "this module"
        path.reasons.append(f"R{goal[0]} does not support {module}: stay on "
                            f"R{now[0]}" if runs is False else
                            f"the module could not be read (no device-tree SoC), so R{goal[0]} "
                            f"cannot be checked to support it")
        return path
    if now[0] == goal[0]:
        return _apt(path, os)
    if (now[0], goal[0]) != (35, 36):
        path.reasons.append(f"no over-the-air path from R{now[0]} to R{goal[0]}: reflash")
        return path
    if now < IMAGE_FROM:
        path.reasons.append(f"JetPack 5 goes to 6 over the air only from R35.5.0: upgrade "
                            f"to R35.5 or later first (R{shown(now)} -> R35.6.0 over apt, "
                            f"then R35.6.0 -> R{shown(goal)} image-based)")
        return path
    return _image(path, os, payload_specs, payload_mb)


def _apt(path: OSPath, os: OSFacts) -> OSPath:
    if os.apt_release is None:
        path.reasons.append("no NVIDIA apt source (/etc/apt/sources.list.d/"
                            "nvidia-l4t-apt-source.list): this root filesystem is not "
                            "updated with apt; use an image-based payload")
    _common_checks(path, os, APT_FREE_MB)
    if not path.reasons:
        path.kind = "apt"
        path.notes.append("no automatic rollback on this path (bootloader rollback "
                          "protection from R36.4); a failed host stops the rollout")
    return path


def _image(path: OSPath, os: OSFacts, payload_specs: list[str] | None,
           payload_mb: int | None) -> OSPath:
    if os.ab is None:
        path.reasons.append("nvbootctrl did not answer: the boot slots cannot be checked")
    elif os.ab == "no A/B":
        path.reasons.append("rootfs A/B is disabled (nvbootctrl is-unified-enabled: 69): "
                            "an image-based update needs a second rootfs slot; reflash "
                            "with ROOTFS_AB=1")
    if os.slots_bootable is False:
        broken = [f"{n} ({s})" for n, s in sorted(os.slots.items()) if s != "normal"]
        path.reasons.append(f"slot {', '.join(broken)} is not bootable: nvbootctrl "
                            f"dump-slots-info; fix it before switching slots")
    if os.root_fstype == "overlay":
        path.reasons.append("the root filesystem is an overlay: nv_ota_start.sh cannot "
                            "write the other slot from it")
    if payload_specs is not None and os.board_spec not in payload_specs:
        path.reasons.append(f"board {os.board_spec or 'unknown'} is not in the payload's "
                            f"ota_board_specs.conf; make a payload for this board")
    _common_checks(path, os, (payload_mb or 0) * 2 + 1024 if payload_mb else IMAGE_FREE_MB)
    if not path.reasons:
        path.kind = "image"
        path.notes.append(f"rollback: back to slot {os.bootloader_slot or 'the current'} "
                          f"and R{path.current}")
        if payload_specs is None:
            path.notes.append("needs the OTA payload for this board "
                              "(l4t_generate_ota_package.sh); pass it with --payload")
    return path


def _common_checks(path: OSPath, os: OSFacts, free_mb: int) -> None:
    if os.root_read_only:
        path.reasons.append("the root filesystem is mounted read-only")
    if os.root_free_mb is not None and os.root_free_mb < free_mb:
        path.reasons.append(f"{os.root_free_mb:,} MB free on / (/var/cache/apt), "
                            f"{free_mb:,} MB needed")
    if os.fw_version and path.current and release(os.fw_version) != release(path.current):
        status = f" (last_attempt_status {os.last_attempt_status})" \
            if os.last_attempt_status else ""
        path.reasons.append(f"firmware R{os.fw_version} does not match the root "
                            f"filesystem's R{path.current}: a capsule was not applied"
                            f"{status}; fix the firmware first")
    if os.capsule_status in (2, 3):
        what = "installed but its firmware failed to boot" if os.capsule_status == 2 \
            else "failed to install"
        path.reasons.append(f"the last capsule update {what} (nvbootctrl capsule update "
                            f"status {os.capsule_status})")
