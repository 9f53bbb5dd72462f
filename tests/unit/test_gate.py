"""The health gate against a fake device and a fake clock: ``start_period`` gives a slow
starter its time, a crash loop fails at once, package tests only run after health."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fleetctl.catalog.compose import RenderContext
from fleetctl.catalog.packages import Health, load_catalog
from fleetctl.rollout.gate import gate
from fleetctl.ssh import Result

from ..fakedevice import FakeClock

ROOT = Path(__file__).resolve().parents[2]


class FakeDevice:
    """Answers the gate's device steps: the release's container, running, restarted
    ``restarts`` times; its HTTP check answers 200 from ``healthy_at`` on."""

    def __init__(self, clock: FakeClock, healthy_at: float, restarts: int = 0) -> None:
        self.clock, self.healthy_at, self.restarts = clock, healthy_at, restarts
        self.gets = 0
        self.health = "none"
        self.docker_healthy_at: float | None = None     # Docker's check: starting until

    def run(self, script: str, **_: object) -> Result:
        if script.rstrip().endswith("do_check"):        # the package's health command
            ok = self.clock() >= self.healthy_at
            return Result("ready\n", "", 0) if ok else Result("", "not ready\n", 1)
        assert "do_containers" in script
        health = self.health if self.docker_healthy_at is None else \
            "healthy" if self.clock() >= self.docker_healthy_at else "starting"
        return Result(f"/ollama-1|running|{health}|{self.restarts}|r1\n", "", 0)

    def http_get(self, url: str, timeout: float = 5.0):
        self.gets += 1
        return (200, "{}") if self.clock() >= self.healthy_at else (0, "refused")


class Tests:
    """Package tests that record that they ran."""

    ran = False

    def run(self, timeout: float) -> tuple[bool, str]:
        Tests.ran = True
        return True, "testinfra: 1 passed"


def setup(start_period: float, healthy_at: float, restarts: int = 0):
    ollama = load_catalog(ROOT / "packages").get("ollama")
    package = replace(ollama, health=Health(http="http://{{ check_address }}:11434/",
                                            interval=2.0, timeout=10.0, retries=3,
                                            start_period=start_period))
    render = RenderContext(package, "0.7.0", "img", "r1", "a1", "0.0.0.0", {}, {})
    clock = FakeClock(0.0)
    return package, render, clock, FakeDevice(clock, healthy_at, restarts)


def test_start_period_gives_a_slow_starter_its_time() -> None:
    package, render, clock, device = setup(start_period=30, healthy_at=25)
    ok, detail = gate(device, package, "r1", render, None, clock.sleep, clock=clock)
    assert ok, detail
    assert detail == "http://127.0.0.1:11434/ answered 3 times in a row"
    assert 29 <= clock.now <= 31


def test_without_start_period_the_same_starter_fails_at_the_timeout() -> None:
    package, render, clock, device = setup(start_period=0, healthy_at=25)
    Tests.ran = False
    ok, detail = gate(device, package, "r1", render, None, clock.sleep, Tests(), clock)
    assert not ok and detail.startswith("not healthy within 10s: GET http://127.0.0.1:11434/")
    assert not Tests.ran                # tests never run on a failed health check


def test_a_crash_loop_fails_at_once() -> None:
    package, render, clock, device = setup(start_period=30, healthy_at=0, restarts=2)
    ok, detail = gate(device, package, "r1", render, None, clock.sleep, clock=clock)
    assert not ok and "crash-looping" in detail and clock.now == 0


def test_unhealthy_after_a_restart_is_a_crash_loop() -> None:
    package, render, clock, device = setup(start_period=0, healthy_at=0, restarts=1)
    device.health = "unhealthy"
    ok, detail = gate(device, package, "r1", render, None, clock.sleep, clock=clock)
    assert not ok and "crash-looping" in detail


def test_docker_unhealthy_without_a_restart_fails_at_once() -> None:
    package, render, clock, device = setup(start_period=0, healthy_at=0)
    device.health = "unhealthy"
    assert gate(device, package, "r1", render, None, clock.sleep, clock=clock) == \
        (False, "Docker reports the container unhealthy")


def test_docker_health_starting_holds_the_gate() -> None:
    package, render, clock, device = setup(start_period=0, healthy_at=0)
    device.health = "starting"
    ok, detail = gate(device, package, "r1", render, None, clock.sleep, clock=clock)
    assert (ok, detail) == (False, "not healthy within 10s: Docker health check starting")
    assert device.gets == 6             # the package's check passed all along


def test_the_package_check_counts_while_docker_s_check_starts() -> None:
    package, render, clock, device = setup(start_period=0, healthy_at=0)
    device.docker_healthy_at = 3
    ok, detail = gate(device, package, "r1", render, None, clock.sleep, clock=clock)
    assert (ok, detail) == (True, "http://127.0.0.1:11434/ answered 3 times in a row")
    assert clock.now == 4               # checks at 0 and 2 (Docker starting), 4
    device.healthy_at, device.docker_healthy_at = 5, 13
    ok, detail = gate(device, package, "r1", render, None, clock.sleep, clock=clock)
    assert (ok, detail) == (True, "http://127.0.0.1:11434/ answered 5 times in a row")
    assert clock.now == 14              # failed at 4, passed from 6, Docker healthy at 14


def test_tests_run_once_health_holds_and_their_verdict_is_the_gate_s() -> None:
    package, render, clock, device = setup(start_period=0, healthy_at=0)
    ok, detail = gate(device, package, "r1", render, None, clock.sleep, Tests(), clock)
    assert (ok, detail) == (True, "http://127.0.0.1:11434/ answered 3 times in a row; "
                                  "testinfra: 1 passed")

    class Failing:
        def run(self, timeout: float) -> tuple[bool, str]:
            return False, "testinfra: 1 failed: test_x.py::test_y - assert False"

    assert gate(device, package, "r1", render, None, clock.sleep, Failing(), clock) == \
        (False, "testinfra: 1 failed: test_x.py::test_y - assert False")


def test_a_health_command_counts_like_an_http_check() -> None:
    package, render, clock, device = setup(start_period=0, healthy_at=4)
    package = replace(package, health=replace(package.health, http=None,
                                              command="ollama list"))
    ok, detail = gate(device, package, "r1", render, None, clock.sleep, clock=clock)
    assert (ok, detail) == (True, "running 3 times in a row")
    assert clock.now == 8               # failed at 0 and 2, then 4, 6, 8
    device.healthy_at = 1000
    ok, detail = gate(device, package, "r1", render, None, clock.sleep, clock=clock)
    assert not ok and detail == "not healthy within 10s: ollama list: check: not ready"


def test_checks_start_every_interval_however_long_a_check_takes() -> None:
    package, render, clock, device = setup(start_period=0, healthy_at=0)
    starts: list[float] = []
    answer = device.http_get

    def slow_get(*args: object, **kwargs: object):
        starts.append(clock.now)
        clock.sleep(0.5)                # the check itself takes half the interval
        return answer(*args, **kwargs)

    device.http_get = slow_get
    assert gate(device, package, "r1", render, None, clock.sleep, clock=clock)[0]
    assert starts == [0.0, 2.0, 4.0] and clock.now == 4.5
