"""An ``os upgrade`` rollout against in-memory Jetsons and a fake clock: each host's L4T
update over apt (lock, stage, install, reboot, wait, verify), its app redeployed in the
same host step, and every way it fails (stage, install, a reboot that never ends, a
capsule that is not applied), with the canary stopping the rollout."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from fleetctl.plan import Plan, PlanEntry
from fleetctl.rollout import engine as rollout
from fleetctl.rollout.context import Options

from ..fakedevice import FakeOS
from .test_engine import Fleet

_ids = itertools.count()


class OSFleet(Fleet):
    """Devices h1..hN on R36.3.0 running app 1.0 (OLD); a plan to R36.4.3 with app 2.0
    (NEW, its image for the new release) after it."""

    def __init__(self, tmp_path: Path, count: int) -> None:
        super().__init__(tmp_path, count)
        for device in self.devices.values():
            device.os = FakeOS()

    def plan(self) -> Plan:
        entries = []
        for app in super().plan().entries:
            entries += [PlanEntry(app.host, "l4t", "upgrade", "R36.3.0 -> R36.4.3 by apt",
                                  version="36.4.3", source="apt", current_version="36.3.0",
                                  l4t="36.3.0", module="orin-nano"), app]
        return Plan(["l4t:36.4.3"], ["l4t", "app"], entries)

    def upgrade(self, **options) -> rollout.RolloutRecord:
        record = rollout.start(self.ctx, f"os{next(_ids)}", self.plan(),
                               Options(**{"canaries": ["h1"], "reboot_timeout": 60.0,
                                          **options}))
        return rollout.run(self.ctx, record)

    def state(self, record, host: str, package: str):
        return next(s for s in self.ctx.journal.get(record.id).hosts
                    if s.host == host and s.package == package)

    def l4t(self) -> dict[str, str]:
        return {n: d.os.l4t for n, d in self.devices.items()}


def test_each_host_is_updated_rebooted_verified_then_its_app_redeployed(tmp_path: Path
                                                                       ) -> None:
    fleet = OSFleet(tmp_path, 2)
    record = fleet.upgrade(steps=["1", "100%"])
    assert record.kind == "os" and record.status == "completed"
    assert fleet.l4t() == {"h1": "36.4.3", "h2": "36.4.3"}
    assert fleet.runs() == {"h1": "new", "h2": "new"}
    h1 = fleet.devices["h1"]
    assert (h1.os.firmware, h1.os.reboots, h1.locks, h1.lock) == ("36.4.3", 1, {}, None)
    steps = h1.steps
    assert steps[:5] == ["lock", "os_stage_apt", "os_install_apt", "os_reboot", "os_booted"]
    assert steps.index("os_booted") < steps.index("stage")    # the app after the update
    assert fleet.state(record, "h1", "l4t").phase == "committed"
    [done] = [e["detail"] for e in fleet.ctx.journal.events(record.id)
              if (e["host"], e["package"], e["phase"]) == ("h1", "l4t", "committed")]
    assert "R36.4.3 over apt from R36.3.0" in done and "firmware R36.4.3" in done
    assert any("package=l4t" in line and "result=committed" in line for line in h1.audit)


def test_a_failed_stage_changes_nothing_and_stops_the_rollout(tmp_path: Path) -> None:
    fleet = OSFleet(tmp_path, 3)
    fleet.devices["h1"].fail_step["os_stage_apt"] = (
        "E: You don't have enough free space in /var/cache/apt/archives/. (0 MB free on "
        "/var/cache/apt)")
    record = fleet.upgrade()
    assert record.status == "failed"
    assert fleet.l4t() == {"h1": "36.3.0", "h2": "36.3.0", "h3": "36.3.0"}
    assert fleet.runs() == {"h1": "old", "h2": "old", "h3": "old"}
    assert "os_install_apt" not in fleet.devices["h1"].steps
    assert fleet.devices["h2"].steps == []          # never touched
    l4t, app = fleet.state(record, "h1", "l4t"), fleet.state(record, "h1", "app")
    assert (l4t.phase, app.phase) == ("failed", "skipped")
    assert l4t.error.startswith("stage: os_stage_apt: E: You don't have enough free space")
    assert "nothing changed on the host" in l4t.error
    assert fleet.state(record, "h2", "l4t").phase == "cancelled"


def test_a_failed_install_says_there_is_no_way_back(tmp_path: Path) -> None:
    fleet = OSFleet(tmp_path, 2)
    fleet.devices["h1"].fail_step["os_install_apt"] = (
        "E: Sub-process /usr/bin/dpkg exited unexpectedly (5000 MB free on /var/cache/apt)")
    record = fleet.upgrade()
    state = fleet.state(record, "h1", "l4t")
    assert record.status == "failed" and state.phase == "failed"
    assert "dpkg exited unexpectedly" in state.error
    assert "apt has no way back" in state.error and "dpkg --configure -a" in state.error
    assert "os_reboot" not in fleet.devices["h1"].steps


def test_a_reboot_that_never_ends_fails_the_host_after_the_timeout(tmp_path: Path) -> None:
    fleet = OSFleet(tmp_path, 2)
    fleet.devices["h1"].os.hangs = True
    started = fleet.clock.now
    record = fleet.upgrade(reboot_timeout=30.0)
    state = fleet.state(record, "h1", "l4t")
    assert record.status == "failed" and state.phase == "failed"
    assert state.error.startswith("did not come back within 30s of its reboot")
    assert 30 <= fleet.clock.now - started < 40
    assert fleet.state(record, "h1", "app").phase == "skipped"
    assert fleet.devices["h2"].steps == []


def test_a_capsule_not_applied_fails_the_host_with_its_status(tmp_path: Path) -> None:
    fleet = OSFleet(tmp_path, 2)
    fleet.devices["h1"].os.capsule_fails = True
    record = fleet.upgrade()
    state = fleet.state(record, "h1", "l4t")
    assert record.status == "failed" and state.phase == "failed"
    assert "last_attempt_status 6162 (capsule not applied)" in state.error
    assert "do not reboot it" in state.error
    assert fleet.runs()["h1"] == "old"          # its app stays as it was


class Died(Exception):
    """The controller process ending (killed) while it waits."""


def test_resume_after_the_controller_died_in_the_reboot_verifies_and_goes_on(
        tmp_path: Path) -> None:
    fleet = OSFleet(tmp_path, 1)
    record = rollout.start(fleet.ctx, "os-resume", fleet.plan(),
                           Options(reboot_timeout=60.0, steps=["100%"]))
    device = fleet.devices["h1"]

    def die(seconds: float) -> None:
        raise Died

    with pytest.raises(Died):      # it dies while the host boots (its first wait)
        rollout.run(dataclasses.replace(fleet.ctx, sleep=die), record)
    assert fleet.state(record, "h1", "l4t").phase == "rebooting"
    fleet.ctx.journal.set_status(record.id, "interrupted")
    resumed = rollout.resume(fleet.ctx, record.id)
    assert resumed.status == "completed"
    assert device.steps.count("os_install_apt") == 1 and device.os.reboots == 1
    assert (device.os.l4t, fleet.runs()["h1"]) == ("36.4.3", "new")


def test_rollback_undoes_a_stage_only_update(tmp_path: Path) -> None:
    fleet = OSFleet(tmp_path, 1)
    staged = fleet.upgrade(stage_only=True)
    assert fleet.state(staged, "h1", "l4t").phase == "ready"
    assert fleet.devices["h1"].os.staged == "36.4.3"
    back = rollout.rollback_rollout(fleet.ctx, staged.id)
    assert back.status == "rolled-back" and fleet.devices["h1"].os.staged is None
    assert fleet.state(back, "h1", "l4t").phase == "rolled-back"


def test_rollback_of_an_installed_update_brings_the_app_back_and_says_l4t_stays(
        tmp_path: Path) -> None:
    fleet = OSFleet(tmp_path, 1)
    done = fleet.upgrade()
    back = rollout.rollback_rollout(fleet.ctx, done.id)
    l4t = fleet.state(back, "h1", "l4t")
    assert back.status == "failed" and "not on: h1" in back.message
    assert l4t.phase == "committed" and "no way back over apt" in l4t.error
    assert (fleet.runs()["h1"], fleet.devices["h1"].os.l4t) == ("old", "36.4.3")
