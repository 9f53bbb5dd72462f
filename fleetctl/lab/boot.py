"""What a lab Jetson's bootloader does at power-on: which rootfs slot boots, and what
becomes of a staged UEFI capsule. Pure: :class:`BootState` is stored in the host's
firmware folder (``/sys/firmware/fleetlab-boot`` inside it), where the lab's
``nvbootctrl`` reads and writes it as shell assignments.

- An update makes the other slot *active* (``nvbootctrl set-active-boot-slot``); at the
  next boot it becomes *current*, unless it fails to boot: then, its retries used up,
  the bootloader marks it unbootable and boots the old slot again (NVIDIA's rootfs A/B
  fallback).
- A capsule in the ESP updates the booted slot's firmware (each slot has its own with
  unified A/B), or is not applied: the firmware stays, ``last_attempt_status`` 6162.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

#: the state file, in the host's firmware folder
BOOT_STATE = "fleetlab-boot"
SLOTS = ("A", "B")
CAPSULE_NOT_APPLIED = 6162


@dataclass(frozen=True)
class BootState:
    """The bootloader's view: booted and next slots, each slot's status and firmware."""

    current: str = "A"
    active: str = "A"
    status: dict[str, str] = field(default_factory=lambda: {"A": "normal", "B": "normal"})
    firmware: dict[str, str] = field(default_factory=dict)     # slot -> L4T release
    last_attempt_status: int = 0

    def text(self) -> str:
        """The state as ``nvbootctrl`` sources it."""
        return (f"current={self.current}\nactive={self.active}\n"
                f"slot0={self.status['A']}\nslot1={self.status['B']}\n"
                f"fwA={self.firmware.get('A', '')}\nfwB={self.firmware.get('B', '')}\n"
                f"last_attempt_status={self.last_attempt_status}\n")

    @classmethod
    def parse(cls, text: str) -> BootState:
        values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        return cls(values.get("current", "A"), values.get("active", "A"),
                   {"A": values.get("slot0", "normal"), "B": values.get("slot1", "normal")},
                   {s: values[f"fw{s}"] for s in SLOTS if values.get(f"fw{s}")},
                   int(values.get("last_attempt_status", "0") or 0))


def power_on(state: BootState, capsule: str | None, *, slot_fails: bool,
             capsule_fails: bool) -> BootState:
    """The state after a boot: the slot that boots, and the firmware after ``capsule``
    (the release a staged capsule carries, or None)."""
    booted = state
    if state.active != state.current:
        if slot_fails:
            status = {**state.status, state.active: "unbootable"}
            booted = replace(state, active=state.current, status=status)
            capsule = None          # the new slot's bootloader never ran
        else:     # the new slot's bootloader copy starts as the old slot's
            booted = replace(state, current=state.active, firmware={
                state.active: state.firmware.get(state.current, ""), **state.firmware})
    if capsule is None:
        return booted
    if capsule_fails:
        return replace(booted, last_attempt_status=CAPSULE_NOT_APPLIED)
    return replace(booted, firmware={**booted.firmware, booted.current: capsule},
                   last_attempt_status=0)
