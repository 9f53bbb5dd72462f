"""``fleetctl os plan``: per host the way to the target L4T (:mod:`.paths`), and for each
package it runs, the image it would run after the update. A host whose app would have
no image for the new release is blocked: it would come back on the new L4T with
nothing that fits it.

As a rollout plan (:meth:`OSPlan.rollout_plan`) each host has an ``l4t`` entry (action
``upgrade``, its way in ``source``: ``apt`` or ``image``) followed by its apps' entries
for the new release, deployed in the same host step after the update.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from fleetctl.catalog.imageref import PlatformImage
from fleetctl.catalog.packages import Catalog, Request
from fleetctl.facts.hostfacts import HostFacts
from fleetctl.facts.jetson import cuda_for_l4t, jetpack_for_l4t, ubuntu_for_l4t
from fleetctl.facts.osfacts import OSFacts
from fleetctl.facts.probe import ProbeResult
from fleetctl.osupdate.paths import OSPath, os_path
from fleetctl.osupdate.payload import Payload
from fleetctl.plan import Plan, PlanEntry, make_plan, site_of
from fleetctl.state import StateDB

#: the journal's and the plan's name for a host's OS (L4T) in a rollout
OS_PACKAGE = "l4t"


@dataclass
class OSPlan:
    """The paths of every host that answered, and why the others did not; ``entries``:
    the rollout's entries (per host its ``l4t`` entry, then its apps' on the new L4T)."""

    target: str
    paths: list[OSPath]
    unreachable: dict[str, str]
    entries: list[PlanEntry] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "hosts": [p.to_json() for p in self.paths],
                "unreachable": self.unreachable}

    def rollout_plan(self) -> Plan:
        """The plan a rollout runs: the ``l4t`` entries and the apps' entries."""
        apps = sorted({e.package for e in self.entries if e.package != OS_PACKAGE})
        return Plan([f"{OS_PACKAGE}:{self.target}"], [OS_PACKAGE, *apps], list(self.entries),
                    unreachable=dict(self.unreachable))


def after_update(facts: HostFacts, target: str) -> HostFacts:
    """The host's facts as they will be on ``target``: its L4T, JetPack, CUDA and
    Ubuntu; its local images built for the old release left out."""
    return replace(facts, l4t=target, jetpack=jetpack_for_l4t(target),
                   cuda=cuda_for_l4t(target), ubuntu=ubuntu_for_l4t(target), images=[])


def plan_os(target: str, results: list[tuple[ProbeResult, OSFacts | None, str | None]],
            catalog: Catalog, db: StateDB | None, *, ttl: float = 300.0,
            payload: Payload | None = None,
            offline: dict[str, list[PlatformImage]] | None = None,
            requests: list[Request] | None = None) -> OSPlan:
    """Each host's path to ``target``, its running packages planned again on it (against
    the registries, or ``offline`` images); ``requests`` (a playbook's packages) are
    deployed after the update as asked, whether the host runs them or not. ``payload``:
    the image-based payload (its board specs and size are checked; without it an
    image-based host is planned but cannot be rolled out)."""
    paths, unreachable, entries = [], {}, []
    for result, os_facts, error in results:
        name = result.host.name
        if result.facts is None or os_facts is None:
            unreachable[name] = error or f"{result.error}: {result.detail}".rstrip(": ")
            continue
        path = os_path(name, result.facts, os_facts, target,
                       list(payload.board_specs) if payload else None,
                       payload.size_mb if payload else None)
        apps = _check_apps(path, result, catalog, db, ttl, offline, requests or []) \
            if path.kind in ("apt", "image") else []
        paths.append(path)
        entries += [_os_entry(path, result, payload), *apps]
    return OSPlan(paths[0].target if paths else target, paths, unreachable, entries)


def _os_entry(path: OSPath, result: ProbeResult, payload: Payload | None) -> PlanEntry:
    """The host's ``l4t`` entry: ``upgrade`` by ``apt`` or ``image`` (with the payload's
    digest), ``noop``, ``blocked``."""
    assert result.facts is not None
    action = {"apt": "upgrade", "image": "upgrade", "current": "noop"}.get(path.kind,
                                                                          "blocked")
    reason = "; ".join(path.reasons) if path.blocked else \
        f"already on R{path.target}" if path.kind == "current" else \
        f"R{path.current} -> R{path.target} by {path.kind}" + \
        "".join(f"; {n}" for n in path.notes)
    if path.kind == "image" and payload is None:
        action, reason = "blocked", (f"R{path.current} -> R{path.target} is image-based: "
                                     f"pass the OTA payload for this board with --payload")
    return PlanEntry(host=path.host, package=OS_PACKAGE, action=action, reason=reason,
                     version=path.target, source=path.kind if action == "upgrade" else None,
                     digest=payload.digest if action == "upgrade" and path.kind == "image"
                     else None,
                     current_version=path.current, facts_at=result.probed_at,
                     l4t=result.facts.l4t, module=result.facts.module_short,
                     site=site_of(result.host.vars))


def _check_apps(path: OSPath, result: ProbeResult, catalog: Catalog, db: StateDB | None,
                ttl: float, offline: dict[str, list[PlatformImage]] | None,
                requests: list[Request]) -> list[PlanEntry]:
    """The entries of the apps the host runs, planned for the new release (the same
    version, or another when it has no image there), and of the ``requests``; the host
    blocked when one has no image there at all."""
    assert result.facts is not None
    after = replace(result, facts=after_update(result.facts, path.target))
    if path.kind == "image":          # the new slot starts with no containers
        after = replace(after, facts=replace(after.facts, containers=[]))
    running = {c.package: c.version for c in result.facts.containers
               if c.package in catalog.packages}
    entries = []
    for request in requests:      # with what they depend on, dependencies first
        for entry in make_plan(catalog, [request], [after], db, ttl=ttl,
                               offline=offline).entries:
            running.pop(entry.package, None)
            if any(e.package == entry.package for e in entries):
                continue
            if entry.blocked:
                path.kind = "blocked"
                path.reasons.append(f"after the update {entry.package} would have no image "
                                    f"for R{path.target}: {entry.reason}")
                continue
            path.notes.append(f"{entry.package} {entry.version} then runs {entry.tag}")
            entries.append(entry)
    for package, version in sorted(running.items()):
        entry = _entry(make_plan(catalog, [Request(package, version)], [after], db, ttl=ttl,
                                 offline=offline), package)
        if entry is not None and not entry.blocked:
            path.notes.append(f"{package} {version} then runs {entry.tag}")
            entries.append(entry)
            continue
        other = _entry(make_plan(catalog, [Request(package)], [after], db, ttl=ttl,
                                 offline=offline), package)
        if other is not None and not other.blocked:
            path.notes.append(f"{package} {version} has no image for R{path.target}: it "
                              f"then moves to {other.version} ({other.tag})")
            entries.append(other)
            continue
        why = entry.reason if entry is not None else "no plan"
        path.kind = "blocked"
        path.reasons.append(f"after the update {package} would have no image for "
                            f"R{path.target}: {why}")
    return [] if path.blocked else entries


def _entry(plan: Plan, package: str) -> PlanEntry | None:
    return next((e for e in plan.entries if e.package == package), None)
