"""The health gate: containers running, Docker's health, the package's HTTP or command
check in a row, then its testinfra tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fleetctl import device
from fleetctl.catalog.compose import RenderContext, render_text
from fleetctl.catalog.packages import Package
from fleetctl.plan import PlanEntry
from fleetctl.rollout.context import Context
from fleetctl.rollout.hosttests import HostTests
from fleetctl.ssh import Connection

#: seconds a package's testinfra tests get even when the health wait used up the gate
TESTS_MIN_TIME = 60.0


def host_tests(ctx: Context, conn: Connection, package: Package, entry: PlanEntry,
               release: str) -> HostTests | None:
    """The package's testinfra tests for this host and release, if it ships any."""
    if not package.tests:
        return None
    return HostTests(package.tests, conn,
                     HostTests.release_env(package.name, release, entry.version, entry.target),
                     ctx.tests)


def gate(conn: Connection, package: Package, release: str, render: RenderContext,
         timeout: float | None, sleep: Callable[[float], None] = time.sleep,
         tests: HostTests | None = None,
         clock: Callable[[], float] = time.monotonic) -> tuple[bool, str]:
    """Wait until the release is healthy: its containers running, Docker's health
    check (if any) healthy, the package's HTTP or command check passing
    ``retries`` times in a row (a check starting every ``interval``, counted while
    Docker's check still starts), then its testinfra ``tests``. Fails at once on a
    crash loop, Docker's ``unhealthy`` or a failed test; otherwise after the
    package's ``start_period`` plus ``timeout`` (default: the package's)."""
    health = package.health
    limit = health.start_period + (timeout if timeout is not None else health.timeout)
    deadline = clock() + limit
    streak, problem = 0, "not checked yet"
    url = render_text(render, health.http) if health.http else None
    while True:
        # checks start every interval, however long one takes (as Kubernetes probes)
        next_check = clock() + health.interval
        states = [c for c in device.containers(conn, package.name) if c.release == release]
        # a container that restarted and is restarting again, or unhealthy after a
        # restart, is in a restart loop: say so rather than whichever Docker shows first
        crashed = [c for c in states if c.restarts >= 2 or c.state in ("exited", "dead")
                   or (c.restarts >= 1 and (c.state == "restarting"
                                            or c.health == "unhealthy"))]
        if crashed:
            c = crashed[0]
            return False, f"{c.name} is crash-looping ({c.state}, restarted {c.restarts} times)"
        if any(c.health == "unhealthy" for c in states):
            return False, "Docker reports the container unhealthy"
        starting = any(c.health == "starting" for c in states)
        if not states:
            problem = "no container of this release"
        elif any(c.state != "running" for c in states):
            problem = f"container {states[0].state}"
        elif url is not None:
            status, body = conn.http_get(url, timeout=5)
            problem = None if 200 <= status < 300 else f"GET {url}: {status or body}"
        elif health.command:
            ok, output = device.run_check(conn, package.name, health.command)
            problem = None if ok else f"{health.command}: {output}"
        else:
            problem = None
        streak = streak + 1 if problem is None else 0
        # the package's check counts while Docker's own still starts, but the gate
        # passes only once Docker has called the containers healthy too
        if streak >= health.retries and not starting:
            detail = (f"{url} answered" if url else "running") + \
                f" {streak} times in a row"
            if tests is None:
                return True, detail
            passed, summary = tests.run(max(deadline - clock(), TESTS_MIN_TIME))
            return passed, f"{detail}; {summary}" if passed else summary
        if clock() >= deadline:
            why = problem or "Docker health check starting"
            return False, f"not healthy within {limit:.0f}s: {why}"
        sleep(max(0.0, next_check - clock()))
