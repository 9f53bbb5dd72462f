"""The device script is sent one step at a time: each step's part must be whole
shell (checked by ``sh -n``) and carry the helpers it calls."""

import re
import subprocess

import pytest

from fleetctl.device import DEVICE_SCRIPT, FUNCTIONS, script_for

STEPS = sorted(n[3:] for n in FUNCTIONS if n.startswith("do_"))


def test_every_function_of_the_file_is_found() -> None:
    assert len(FUNCTIONS) == len(re.findall(r"^[a-z_]+\(\) \{", DEVICE_SCRIPT, re.M))
    assert {"lock", "stage", "commit", "survey", "load"} <= set(STEPS)


@pytest.mark.parametrize("step", STEPS)
def test_a_step_alone_is_valid_shell(step: str) -> None:
    script = script_for(step)
    assert subprocess.run(["sh", "-n"], input=f"{script}\ndo_{step}\n", text=True).returncode == 0
    assert len(script) < len(DEVICE_SCRIPT) / 2


def test_helpers_come_with_the_steps_that_call_them() -> None:
    assert "swap() {" in script_for("commit") and "swap() {" in script_for("switch")
    assert "compose_up() {" in script_for("activate") and "swap() {" not in script_for("lock")
    assert "size_of() {" in script_for("survey")
