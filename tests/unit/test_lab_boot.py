"""The lab bootloader at power-on (lab/boot.py): the slot that boots, and the capsule."""

from fleetctl.lab.boot import BootState, power_on

R35 = BootState(firmware={"A": "35.6.0"})


def test_the_active_slot_boots_and_takes_its_capsule() -> None:
    armed = BootState(active="B", firmware={"A": "35.6.0"})
    booted = power_on(armed, "36.4.3", slot_fails=False, capsule_fails=False)
    assert (booted.current, booted.active) == ("B", "B")
    assert booted.firmware == {"A": "35.6.0", "B": "36.4.3"}
    assert booted.last_attempt_status == 0
    assert BootState.parse(booted.text()) == booted


def test_a_new_slot_that_fails_falls_back_and_is_marked_unbootable() -> None:
    armed = BootState(active="B", firmware={"A": "35.6.0"})
    back = power_on(armed, "36.4.3", slot_fails=True, capsule_fails=False)
    assert (back.current, back.active, back.status["B"]) == ("A", "A", "unbootable")
    assert back.firmware == {"A": "35.6.0"}          # the capsule never ran


def test_a_capsule_not_applied_leaves_the_firmware_with_6162() -> None:
    same = power_on(R35, "35.6.0", slot_fails=False, capsule_fails=True)
    assert (same.firmware, same.last_attempt_status) == ({"A": "35.6.0"}, 6162)
    applied = power_on(R35, "35.6.1", slot_fails=False, capsule_fails=False)
    assert applied.firmware == {"A": "35.6.1"}
    assert power_on(R35, None, slot_fails=True, capsule_fails=True) == R35
