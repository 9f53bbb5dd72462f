"""The rollout engine against in-memory devices and a fake clock: every phase of a host
and every branch of the failure policy, without SSH. The lab tests are the end-to-end
proof; these pin down the engine's decisions (and fail when one of them changes)."""

from __future__ import annotations

import dataclasses
import itertools
import os
import socket
import subprocess
from pathlib import Path

import pytest

from fleetctl.catalog.packages import load_package
from fleetctl.errors import FleetError
from fleetctl.facts.hostfacts import parse_probe
from fleetctl.inventory.model import Host
from fleetctl.plan import Plan, PlanEntry, preflight
from fleetctl.rollout import engine as rollout
from fleetctl.rollout.context import Context, Options
from fleetctl.rollout.journal import Journal
from fleetctl.state import StateDB

from ..fakedevice import SAMPLE, FakeClock, FakeDevice

OLD = "127.0.0.1:5000/acme/app@sha256:" + "0" * 64
NEW = "127.0.0.1:5000/acme/app@sha256:" + "1" * 64
PACKAGE = """\
name: app
image: acme/app
versions: [{version: "2.0", default: true}, "1.0"]
health: {http: "http://{{ check_address }}:8080/health", interval: 2s, timeout: 10s, retries: 2}
"""
TEMPLATE = "services:\n  app:\n    image: {{ image }}\n"
_ids = itertools.count()


class Fleet:
    """Devices h1..hN running app 1.0 (OLD), a plan to 2.0 (NEW), and the engine's
    context wired to them."""

    def __init__(self, tmp_path: Path, count: int) -> None:
        folder = tmp_path / "catalog" / "app"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "compose.yml.j2").write_text(TEMPLATE)
        (folder / "package.yml").write_text(PACKAGE)
        self.package = load_package(folder / "package.yml")
        self.names = [f"h{i}" for i in range(1, count + 1)]
        self.devices = {n: FakeDevice(n, versions={OLD[-71:]: "1.0", NEW[-71:]: "2.0"})
                        for n in self.names}
        for device in self.devices.values():
            device.install("r-old", OLD, "1.0")
        from fleetctl.catalog.packages import Catalog

        self.clock = FakeClock()
        db = StateDB(tmp_path / f"state{next(_ids)}")
        self.ctx = Context(Journal(db), db, Catalog([self.package], tmp_path / "catalog"),
                           {n: Host(n, {"site": "s"}, ["g"], "test") for n in self.names},
                           sleep=self.clock.sleep, clock=self.clock,
                           connect=lambda host, timeout: self.devices[host].connect())

    def plan(self) -> Plan:
        entries = [PlanEntry(n, "app", "upgrade", "2.0 fits", version="2.0", tag="2.0",
                             target=NEW, digest=NEW.rpartition("@")[2], current=OLD,
                             current_digest=OLD.rpartition("@")[2], current_version="1.0",
                             l4t="36.4.3", module="orin-nano")
                   for n in self.names]
        return Plan(["app:2.0"], ["app"], entries)

    def deploy(self, **options) -> rollout.RolloutRecord:
        record = rollout.start(self.ctx, f"r{next(_ids)}", self.plan(),
                               Options(**{"canaries": ["h1"], **options}))
        return rollout.run(self.ctx, record)

    def phases(self, record) -> dict[str, str]:
        return {s.host: s.phase for s in self.ctx.journal.get(record.id).hosts}

    def runs(self) -> dict[str, str]:
        """Which image each device runs: 'old', 'new' or 'nothing'."""
        return {n: {OLD: "old", NEW: "new"}[d.running.image] if d.running else "nothing"
                for n, d in self.devices.items()}


def test_a_healthy_rollout_commits_canary_first_then_the_rest(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 3)
    record = fleet.deploy(steps=["1", "100%"])
    assert record.status == "completed" and record.steps == [["h1"], ["h2", "h3"]]
    assert fleet.phases(record) == {"h1": "committed", "h2": "committed", "h3": "committed"}
    assert fleet.runs() == {"h1": "new", "h2": "new", "h3": "new"}
    device = fleet.devices["h1"]
    assert (device.current, device.previous, device.lock) == (record.id, "r-old", None)
    assert device.steps[:3] == ["lock", "releases", "stage"]
    assert "result=committed" in device.audit[-1]


def test_a_failed_gate_reverts_the_canary_and_never_commits(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 3)
    fleet.devices["h1"].unhealthy.add(NEW.rpartition("@")[2])
    record = fleet.deploy(steps=["1", "100%"])
    assert record.status == "failed"
    assert fleet.phases(record) == {"h1": "reverted", "h2": "cancelled", "h3": "cancelled"}
    assert fleet.runs() == {"h1": "old", "h2": "old", "h3": "old"}
    assert "commit" not in fleet.devices["h1"].steps
    assert fleet.devices["h1"].current == "r-old"
    assert fleet.devices["h2"].steps == []          # never touched
    [canary] = [s for s in fleet.ctx.journal.get(record.id).hosts if s.host == "h1"]
    assert canary.error.startswith("gate: not healthy within 10s")


def test_a_crash_loop_fails_the_gate_at_once(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 2)
    fleet.devices["h1"].crashing.add(NEW.rpartition("@")[2])
    started = fleet.clock.now
    record = fleet.deploy()
    assert fleet.phases(record)["h1"] == "reverted" and fleet.clock.now - started < 10
    assert "crash-looping" in record.hosts[0].error


@pytest.mark.parametrize(("rollback_all", "first"), [(False, "new"), (True, "old")])
def test_rollback_all_reverts_earlier_steps_too(tmp_path: Path, rollback_all: bool,
                                                first: str) -> None:
    fleet = Fleet(tmp_path, 3)
    fleet.devices["h2"].unhealthy.add(NEW.rpartition("@")[2])
    record = fleet.deploy(steps=["1", "1", "1"], rollback_all=rollback_all)
    assert record.status == "failed" and record.steps == [["h1"], ["h2"], ["h3"]]
    assert fleet.runs() == {"h1": first, "h2": "old", "h3": "old"}
    assert fleet.phases(record)["h1"] == ("rolled-back" if rollback_all else "committed")


@pytest.mark.parametrize(("scope", "status", "h4"), [("step", "completed", "new"),
                                                     ("cumulative", "failed", "old")])
def test_failure_scope_counts_per_step_or_in_all(tmp_path: Path, scope: str, status: str,
                                                 h4: str) -> None:
    fleet = Fleet(tmp_path, 4)
    for host in ("h2", "h3"):
        fleet.devices[host].unhealthy.add(NEW.rpartition("@")[2])
    record = fleet.deploy(steps=["1", "1", "1", "1"], max_failures="2", failure_scope=scope)
    assert record.status == status
    assert fleet.runs()["h4"] == h4


def test_a_percentage_is_breached_only_when_exceeded(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 4)
    fleet.devices["h2"].unhealthy.add(NEW.rpartition("@")[2])
    record = fleet.deploy(steps=["1", "100%"], max_failures="34%")   # 1 of 3 = 33%
    assert record.status == "completed"
    assert fleet.phases(record)["h2"] == "reverted"


def test_a_failed_stage_changes_nothing_running(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 2)
    fleet.devices["h1"].fail_step["stage"] = "write /opt/fleetctl: no space left on device"
    record = fleet.deploy()
    assert fleet.phases(record) == {"h1": "failed", "h2": "cancelled"}
    assert fleet.runs() == {"h1": "old", "h2": "old"}
    assert "no space left on device" in record.hosts[0].error
    assert "activate" not in fleet.devices["h1"].steps


def test_an_unreachable_host_is_deferred_then_resumed(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 3)
    fleet.devices["h3"].unreachable = True
    record = fleet.deploy(steps=["1", "100%"])
    assert record.status == "incomplete"
    assert fleet.phases(record) == {"h1": "committed", "h2": "committed", "h3": "deferred"}
    fleet.devices["h3"].unreachable = False
    resumed = rollout.resume(fleet.ctx, record.id)
    assert resumed.status == "completed" and fleet.runs()["h3"] == "new"


def test_unreachable_counted_as_failed_stops_the_rollout(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 3)
    fleet.devices["h1"].unreachable = True
    record = fleet.deploy(steps=["1", "100%"], unreachable="failed")
    assert record.status == "failed"
    assert fleet.phases(record) == {"h1": "deferred", "h2": "cancelled", "h3": "cancelled"}


def test_a_host_lost_after_activate_stops_the_rollout(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 3)
    fleet.devices["h1"].drop_after = "activate"
    record = fleet.deploy(steps=["1", "100%"])
    assert record.status == "incomplete" and "state is unknown" in record.message
    assert fleet.phases(record) == {"h1": "activated", "h2": "pending", "h3": "pending"}
    fleet.devices["h1"].drop_after = None
    resumed = rollout.resume(fleet.ctx, record.id)
    assert resumed.status == "completed"
    assert fleet.runs() == {"h1": "new", "h2": "new", "h3": "new"}


def test_a_host_lost_while_reverting_is_reverted_on_resume(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 3)
    device = fleet.devices["h1"]
    device.unhealthy.add(NEW.rpartition("@")[2])
    device.drop_after = "switch"                 # the old release is back, then the link goes
    record = fleet.deploy(steps=["1", "100%"])
    assert record.status == "incomplete" and "h1 (app reverting)" in record.message
    assert fleet.phases(record)["h1"] == "reverting" and fleet.runs()["h1"] == "old"
    device.drop_after = None
    before = fleet.clock.now
    resumed = rollout.resume(fleet.ctx, record.id)
    # resume goes on with the revert (the old release's gate, about 2 s), not the new
    # release's gate again (it would wait out its 10 s timeout first)
    assert fleet.clock.now - before <= 4
    assert resumed.status == "failed"            # the revert is finished, the policy judges
    assert fleet.phases(resumed) == {"h1": "reverted", "h2": "cancelled", "h3": "cancelled"}
    assert fleet.runs() == {"h1": "old", "h2": "old", "h3": "old"}
    assert device.lock is None and "result=reverted" in device.audit[-1]


def test_resume_is_refused_on_a_finished_rollout(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 2)
    record = fleet.deploy()
    with pytest.raises(FleetError, match="is completed: nothing to resume"):
        rollout.resume(fleet.ctx, record.id)


def test_a_manual_pause_then_promote(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 3)
    record = fleet.deploy(steps=["1", "100%"], pause="manual")
    assert record.status == "paused" and fleet.runs() == {"h1": "new", "h2": "old",
                                                          "h3": "old"}
    assert rollout.resume(fleet.ctx, record.id).status == "completed"


def test_rollback_of_a_rollout_returns_every_host(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 3)
    record = fleet.deploy(steps=["1", "100%"])
    undone = rollout.rollback_rollout(fleet.ctx, record.id)
    assert undone.status == "rolled-back"
    assert fleet.runs() == {"h1": "old", "h2": "old", "h3": "old"}
    assert all(d.current == "r-old" for d in fleet.devices.values())


def test_a_host_already_at_the_target_is_a_noop(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 2)
    fleet.devices["h2"].install("r-new", NEW, "2.0")
    plan = fleet.plan()
    record = rollout.run(fleet.ctx, rollout.start(fleet.ctx, "rn", plan,
                                                  Options(canaries=["h1"])))
    assert fleet.phases(record)["h2"] == "noop"
    assert fleet.devices["h2"].steps.count("stage") == 0
    assert [e["detail"] for e in fleet.ctx.journal.events(record.id)
            if e["host"] == "h2" and e["phase"] == "noop"] == ["already at the target digest"]
    assert record.status == "completed" and record.message == "1 committed, 1 noop"


def test_preflight_counts_the_image_size(tmp_path: Path) -> None:
    facts = parse_probe(SAMPLE)
    package = Fleet(tmp_path, 1).package
    assert all(c.ok for c in preflight(facts, package, 10 * 2**20))
    [disk] = [c for c in preflight(facts, package, 5 * 2**30) if c.name == "disk"]
    assert not disk.ok and "MiB needed" in disk.detail


def test_package_rollback_returns_to_the_previous_release(tmp_path: Path) -> None:
    from fleetctl.rollout.rollback import rollback_package

    fleet = Fleet(tmp_path, 2)
    fleet.deploy(steps=["100%"])
    record = rollback_package(fleet.ctx, fleet.package, ["h1", "h2"], None, None, False, 5.0)
    assert record.status == "rolled-back"
    assert fleet.runs() == {"h1": "old", "h2": "old"}
    assert all(d.current == "r-old" for d in fleet.devices.values())
    missing = rollback_package(fleet.ctx, fleet.package, ["h1"], "19990101T000000-dead", None,
                               False, 5.0)
    assert missing.status == "failed"
    assert "release 19990101T000000-dead is not on the device" in missing.hosts[0].error


def test_package_rollback_to_an_unhealthy_release_goes_back(tmp_path: Path) -> None:
    from fleetctl.rollout.rollback import rollback_package

    fleet = Fleet(tmp_path, 1)
    fleet.deploy(steps=["100%"])
    fleet.devices["h1"].unhealthy.add(OLD.rpartition("@")[2])
    record = rollback_package(fleet.ctx, fleet.package, ["h1"], None, None, False, 5.0)
    assert record.status == "failed" and "unhealthy" in record.hosts[0].error
    assert fleet.runs() == {"h1": "new"}


def test_a_device_locked_by_another_rollout_fails_unless_the_lock_is_broken(
        tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 1)
    fleet.devices["h1"].lock = "r-dead"
    record = fleet.deploy(steps=["100%"])
    [state] = fleet.ctx.journal.get(record.id).hosts
    assert (state.phase, fleet.runs()["h1"]) == ("failed", "old")
    assert state.error == ("lock: device lock held by rollout=r-dead owner=someone; pass "
                           "--break-lock if that rollout is dead")
    assert fleet.devices["h1"].steps == ["lock"]      # not ours: never unlocked
    record = fleet.deploy(steps=["100%"], break_lock=True)
    assert fleet.phases(record) == {"h1": "committed"}
    locked = [e["detail"] for e in fleet.ctx.journal.events(record.id) if e["phase"] == "locked"]
    assert locked == ["device lock taken (broke rollout=r-dead owner=someone)"]


def test_a_host_changed_since_the_plan_is_not_touched(tmp_path: Path) -> None:
    """The plan saw 1.0 on h1; someone deployed another build since: the engine stops
    there, names both, and stages nothing."""
    fleet = Fleet(tmp_path, 1)
    other = "127.0.0.1:5000/acme/app@sha256:" + "2" * 64
    fleet.devices["h1"].install("r-other", other, "1.1")
    record = fleet.deploy(steps=["100%"])
    [state] = fleet.ctx.journal.get(record.id).hosts
    assert state.phase == "failed"
    assert state.error == (f"host changed since the plan: runs sha256:{'2' * 64}, the plan "
                           f"expected sha256:{'0' * 64}; plan again")
    assert "stage" not in fleet.devices["h1"].steps
    assert (state.from_digest, state.from_version) == ("sha256:" + "2" * 64, "1.1")
    assert fleet.devices["h1"].lock is None


def test_the_journal_remembers_what_each_rollout_left_running(tmp_path: Path) -> None:
    """What audit's drift check reads: a committed host runs the new digest, a reverted
    one the old; history filters by host and package."""
    fleet = Fleet(tmp_path, 2)
    fleet.devices["h2"].unhealthy.add(NEW.rpartition("@")[2])
    record = fleet.deploy(steps=["100%"], max_failures="2")
    assert (record.status, record.message) == ("completed", "1 committed, 1 reverted")
    known = fleet.ctx.journal.last_known()
    assert known == {("h1", "app"): {"digest": NEW.rpartition("@")[2], "rollout": record.id},
                     ("h2", "app"): {"digest": OLD.rpartition("@")[2], "rollout": record.id}}
    assert [r["phase"] for r in fleet.ctx.journal.history(host="h2")] == ["reverted"]
    assert sorted(r["host"] for r in fleet.ctx.journal.history(package="app")) == ["h1", "h2"]
    assert fleet.ctx.journal.history(package="other") == []


def test_a_running_rollout_whose_controller_died_shows_as_interrupted(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 1)
    record = rollout.start(fleet.ctx, "ri", fleet.plan(), Options())
    ended = subprocess.Popen(["true"])
    ended.wait()
    here = socket.gethostname()
    for controller, shown in ((f"{here}:{ended.pid}", "interrupted"),
                              (f"{here}:{os.getpid()}", "running"),
                              (f"elsewhere:{ended.pid}", "running")):
        running = dataclasses.replace(record, status="running", controller=controller)
        assert running.shown_status == shown, controller


ANALYSIS = """\
analysis:
  baseline_hosts: 2
  metrics:
    - name: latency
      requests: {url: "http://{{ check_address }}:8080/work", rate: 5}
      interval: 2s
      count: 2
      success: p95_latency_ms <= 1.5 * baseline.p95_latency_ms
    - name: memory
      container: {}
      interval: 2s
      count: 2
      failure: restarts > 0
"""


def analysed(tmp_path: Path, count: int) -> Fleet:
    """A fleet whose package judges its canary by latency against the baseline."""
    fleet = Fleet(tmp_path, count)
    path = tmp_path / "catalog" / "app" / "package.yml"
    path.write_text(PACKAGE + ANALYSIS)
    from fleetctl.catalog.packages import Catalog

    fleet.package = load_package(path)
    fleet.ctx = dataclasses.replace(fleet.ctx, catalog=Catalog([fleet.package],
                                                               tmp_path / "catalog"))
    return fleet


def test_a_failed_analysis_reverts_the_canary(tmp_path: Path) -> None:
    fleet = analysed(tmp_path, 3)
    for device in fleet.devices.values():
        device.latency[NEW.rpartition("@")[2]] = 0.3         # the new release is slow
    record = fleet.deploy(steps=["1", "100%"])
    states = {s.host: s for s in fleet.ctx.journal.get(record.id).hosts}
    assert record.status == "failed"
    assert states["h1"].phase == "reverted"
    assert states["h1"].error == (
        "analysis failed: latency: p95_latency_ms <= 1.5 * baseline.p95_latency_ms failed: "
        "p95_latency_ms 300, baseline.p95_latency_ms 50 (10 samples); baseline: h2, h3")
    assert fleet.runs() == {"h1": "old", "h2": "old", "h3": "old"}
    # measured side by side, the canary and both baseline hosts: stopped after the first
    # of two intervals
    assert [fleet.devices[h].requests for h in ("h1", "h2", "h3")] == [10, 10, 10]


def test_a_good_canary_is_analysed_on_the_first_step_only(tmp_path: Path) -> None:
    fleet = analysed(tmp_path, 3)
    record = fleet.deploy(steps=["1", "100%"])
    assert record.status == "completed" and fleet.runs() == {h: "new" for h in fleet.names}
    details = [e["detail"] for e in fleet.ctx.journal.events(record.id)
               if e["phase"] == "committed"]
    assert sum("; analysis: 2 metrics passed" in d for d in details) == 1
    assert [fleet.devices[h].requests for h in ("h1", "h2", "h3")] == [20, 20, 20]


def test_no_baseline_pauses_for_promote_and_no_analysis_skips_it(tmp_path: Path) -> None:
    fleet = analysed(tmp_path, 1)
    record = fleet.deploy(steps=["1"])
    state = fleet.ctx.journal.get(record.id).hosts[0]
    assert (record.status, state.phase) == ("paused", "inconclusive")
    assert record.message.startswith("step 1: analysis inconclusive: latency: ")
    assert fleet.runs() == {"h1": "new"} and fleet.devices["h1"].lock == record.id
    promoted = rollout.resume(fleet.ctx, record.id)
    state = fleet.ctx.journal.get(record.id).hosts[0]
    assert (promoted.status, state.phase, state.error) == ("completed", "committed", None)
    assert fleet.devices["h1"].lock is None
    other = analysed(tmp_path / "other", 1)
    skipped = other.deploy(steps=["1"], analysis=False)
    assert skipped.status == "completed" and other.devices["h1"].requests == 0

