"""``fleetctl status``: per host, what each package runs (version, digest, state, health,
restarts, uptime) and how its health check answers right now, with the device's RAM,
GPU load and temperature from tegrastats. One SSH connection per host: the status probe
and the health checks over it; an unreachable host is marked with when it was last seen.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from fleetctl.catalog.compose import RenderContext, render_text
from fleetctl.catalog.packages import Catalog
from fleetctl.facts.appstatus import STATUS_SCRIPT, AppContainer, parse_status
from fleetctl.facts.hostfacts import ProbeOutputError
from fleetctl.facts.probe import WORKERS
from fleetctl.facts.tegrastats import TegraStats
from fleetctl.inventory.model import Host
from fleetctl.inventory.targets import host_key_policy, target_for
from fleetctl.ssh import Connection, HostKeyPolicy, SSHFailure, connect
from fleetctl.state import StateDB


@dataclass(frozen=True)
class AppStatus:
    """One package's container on a host, and its health check now."""

    container: AppContainer
    check_status: int | None = None     # the health URL's HTTP status (0: no answer)
    check_ms: float | None = None
    #: the latest canary analysis here, from the journal: its probe requests' latency
    #: and error ratio, and the other metrics ({rollout_id, at, detail})
    analysis: dict[str, Any] | None = None

    @property
    def healthy(self) -> bool:
        """Running, and its health check answered 2xx."""
        return self.container.state == "running" and self.check_status is not None and \
            200 <= self.check_status < 300

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self.container), "check_status": self.check_status,
                "check_ms": self.check_ms, "analysis": self.analysis}


@dataclass(frozen=True)
class HostStatus:
    """One host: reachable or why not, its apps, its device numbers."""

    host: str
    reachable: bool
    error: str | None = None
    last_seen: float | None = None      # unreachable: when a probe last reached it
    apps: list[AppStatus] = field(default_factory=list)
    mem_total_mb: int | None = None
    mem_available_mb: int | None = None
    tegrastats: TegraStats | None = None
    jetpack: str | None = None          # from the facts cache
    module: str | None = None

    def to_json(self) -> dict[str, Any]:
        stats = self.tegrastats
        return {"host": self.host, "reachable": self.reachable, "error": self.error,
                "last_seen": self.last_seen, "jetpack": self.jetpack, "module": self.module,
                "mem_total_mb": self.mem_total_mb, "mem_available_mb": self.mem_available_mb,
                "tegrastats": stats.values() if stats else None,
                "apps": [app.to_json() for app in self.apps]}


def fleet_status(hosts: list[Host], catalog: Catalog, db: StateDB, *,
                 policy: str | None = None, timeout: float = 5.0,
                 analyses: dict[tuple[str, str], dict[str, Any]] | None = None,
                 on_result: Callable[[HostStatus], None] = lambda _: None
                 ) -> list[HostStatus]:
    """Every host's status, in inventory order, several hosts at a time; ``analyses``
    (the journal's latest per host and package) joined to the apps."""
    def one(host: Host) -> HostStatus:
        result = host_status(host, catalog, db, policy, timeout)
        for i, app in enumerate(result.apps):
            found = (analyses or {}).get((host.name, app.container.package))
            if found:
                result.apps[i] = replace(app, analysis={
                    "rollout": found["rollout_id"], "at": found["at"],
                    "detail": found["detail"]})
        on_result(result)
        return result

    with ThreadPoolExecutor(min(WORKERS, max(1, len(hosts)))) as pool:
        return list(pool.map(one, hosts))


def host_status(host: Host, catalog: Catalog, db: StateDB, policy: str | None,
                timeout: float) -> HostStatus:
    """One host's status over one SSH connection."""
    cached = db.load_facts(host.name)
    facts = cached.facts if cached else None
    known = {"jetpack": facts.jetpack if facts else None,
             "module": facts.module if facts else None}
    mode = host_key_policy(host.vars, policy)
    try:
        with connect(target_for(host), policy=HostKeyPolicy(mode, db.known_hosts),
                     timeout=timeout) as conn:
            device = parse_status(conn.run(STATUS_SCRIPT, command_timeout=timeout * 4).stdout)
            apps = [_app(conn, host, catalog, c) for c in device.containers
                    if not c.name.startswith("fleetctl-keep-") and c.state != "created"]
    except SSHFailure as exc:
        return HostStatus(host.name, False, f"{exc.reason}: {exc.detail}",
                          cached.probed_at if cached else None, **known)
    except ProbeOutputError as exc:
        return HostStatus(host.name, False, f"garbage output: {exc}", **known)
    return HostStatus(host.name, True, apps=apps, mem_total_mb=device.mem_total_mb,
                      mem_available_mb=device.mem_available_mb,
                      tegrastats=device.tegrastats, **known)


def _app(conn: Connection, host: Host, catalog: Catalog, c: AppContainer) -> AppStatus:
    package = catalog.packages.get(c.package)
    if package is None or not package.health.http or c.state != "running":
        return AppStatus(c)
    render = RenderContext.for_host(package, host.name, host.vars, c.release, c.version)
    answer = conn.http_request("GET", render_text(render, package.health.http), timeout=5,
                               limit=65536)
    return AppStatus(c, answer.status, answer.seconds * 1000)
