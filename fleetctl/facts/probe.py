"""Probe hosts for facts: one SSH connection and one round trip each, in parallel.

Results come from the state database when they are fresh enough, else from the
hosts; a host that does not answer never stops the others and is reported with
its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fleetctl.facts.hostfacts import PROBE_SCRIPT, HostFacts, ProbeOutputError, parse_probe
from fleetctl.facts.osfacts import OS_SCRIPT, OSFacts, parse_os_facts
from fleetctl.inventory.model import Host
from fleetctl.inventory.targets import host_key_policy, target_for
from fleetctl.ssh import HostKeyPolicy, SSHFailure, run_script
from fleetctl.state import StateDB

#: threads: enough to hide network latency, few enough not to thrash 2 cores
WORKERS = 16


@dataclass
class ProbeResult:
    """One host's answer: facts, or why there are none."""

    host: Host
    facts: HostFacts | None
    error: str | None = None
    detail: str = ""
    seconds: float = 0.0
    probed_at: float = 0.0
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.facts is not None


def probe_one(host: Host, policy: HostKeyPolicy, timeout: float) -> ProbeResult:
    """Probe one host; every failure is folded into the result."""
    start = time.monotonic()
    when = time.time()
    try:
        result = run_script(target_for(host), PROBE_SCRIPT, policy=policy, timeout=timeout,
                            command_timeout=timeout * 6)
        facts = parse_probe(result.stdout)
    except SSHFailure as exc:
        return ProbeResult(host, None, exc.reason, exc.detail, time.monotonic() - start, when)
    except ProbeOutputError as exc:
        return ProbeResult(host, None, "garbage output", str(exc), time.monotonic() - start,
                           when)
    return ProbeResult(host, facts, seconds=time.monotonic() - start, probed_at=when)


def probe_hosts(hosts: Iterable[Host], db: StateDB, *, refresh: bool = False,
                max_age: float = 300.0, timeout: float = 5.0,
                policy_override: str | None = None,
                on_result: Callable[[ProbeResult], None] = lambda _: None) -> list[ProbeResult]:
    """Facts for every host, in inventory order: cached when fresh, probed otherwise."""
    hosts = list(hosts)
    results: dict[str, ProbeResult] = {}
    to_probe: list[Host] = []
    for host in hosts:
        cached = None if refresh else db.load_facts(host.name)
        if (cached and cached.facts and cached.error is None and cached.age <= max_age
                and cached.address == host.address):
            results[host.name] = ProbeResult(host, cached.facts, probed_at=cached.probed_at,
                                             cached=True)
            on_result(results[host.name])
        else:
            to_probe.append(host)

    def work(host: Host) -> ProbeResult:
        mode = host_key_policy(host.vars, policy_override)
        result = probe_one(host, HostKeyPolicy(mode, db.known_hosts), timeout)
        on_result(result)
        return result

    with ThreadPoolExecutor(min(WORKERS, max(1, len(to_probe)))) as pool:
        for result in pool.map(work, to_probe):
            results[result.host.name] = result
            db.save_facts(result.host.name, result.host.address, result.facts,
                          None if result.ok else f"{result.error}: {result.detail}",
                          result.probed_at)
    return [results[h.name] for h in hosts]


def select_by_facts(results: list[ProbeResult], where: list) -> list[ProbeResult]:
    """Results whose facts satisfy every ``--where`` selector (hosts without facts never do)."""
    return [r for r in results if r.facts and all(w.matches(r.facts) for w in where)]


def probe_os(hosts: Iterable[Host], db: StateDB, *, timeout: float = 5.0,
             policy_override: str | None = None) -> dict[str, tuple[OSFacts | None, str | None]]:
    """Each host's OS-update state (``os.sh``), or why there is none, by host name."""
    def work(host: Host) -> tuple[str, tuple[OSFacts | None, str | None]]:
        policy = HostKeyPolicy(host_key_policy(host.vars, policy_override), db.known_hosts)
        try:
            result = run_script(target_for(host), OS_SCRIPT, policy=policy, timeout=timeout,
                                command_timeout=timeout * 6)
            return host.name, (parse_os_facts(result.stdout), None)
        except SSHFailure as exc:
            return host.name, (None, f"{exc.reason}: {exc.detail}")
        except ProbeOutputError as exc:
            return host.name, (None, f"garbage output: {exc}")

    hosts = list(hosts)
    with ThreadPoolExecutor(min(WORKERS, max(1, len(hosts)))) as pool:
        return dict(pool.map(work, hosts))
