"""The plan: for each host and package, the image it will run (pinned by digest),
the action, the reason, the bytes to pull and the preflight checks.

:func:`plan_host` is pure (facts, package, registry images in; a
:class:`PlanEntry` out). :func:`make_plan` is the edge that asks the registries,
once per (registry, repository), whatever the number of hosts. A plan file
records its inputs (facts times, tag digests) so a deploy can refuse a stale one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from fleetctl.catalog.autotag import Candidate, choose, merge_local, tag_reject_reason
from fleetctl.catalog.imageref import (
    ImageRef,
    PlatformImage,
    TagKey,
    parse_reference,
    with_registry,
)
from fleetctl.catalog.packages import Catalog, Package, Request, requirement_kind
from fleetctl.catalog.registry import RegistryClient
from fleetctl.digest import optional_digest, parse_digest
from fleetctl.errors import FleetError, InputError
from fleetctl.facts.hostfacts import Container, HostFacts
from fleetctl.facts.probe import ProbeResult
from fleetctl.sizes import parse_rate
from fleetctl.state import StateDB
from fleetctl.typed import build, expect

SCHEMA = 1
#: A pulled image takes about twice its compressed size on disk.
UNPACK_FACTOR = 2
ACTIONS = ("install", "upgrade", "downgrade", "noop", "blocked")
MAX_PLAN_FILE = 64 * 2**20


@dataclass
class Check:
    """One preflight check on a host."""

    name: str
    ok: bool
    detail: str


@dataclass
class PlanEntry:
    """What happens to one package on one host."""

    host: str
    package: str
    action: str
    reason: str
    version: str | None = None
    tag: str | None = None
    target: str | None = None          # name@digest, what the host pulls and runs
    digest: str | None = None
    source: str | None = None          # "registry" or "local"
    pull_bytes: int = 0
    current: str | None = None         # image the host runs now
    current_digest: str | None = None
    current_version: str | None = None
    current_release: str | None = None
    checks: list[Check] = field(default_factory=list)
    rejected: list[dict[str, str | None]] = field(default_factory=list)
    facts_at: float = 0.0
    l4t: str | None = None             # the host's class, for picking canaries
    module: str | None = None
    site: str | None = None            # the host's ``site`` variable

    @property
    def blocked(self) -> bool:
        return self.action == "blocked"


@dataclass
class Plan:
    """A reviewable plan: entries per host and package, with the inputs it used."""

    requests: list[str]
    packages: list[str]
    entries: list[PlanEntry]
    created_at: float = field(default_factory=time.time)
    registry: dict[str, dict[str, Any]] = field(default_factory=dict)  # endpoint/repo:tag ->
    unreachable: dict[str, str] = field(default_factory=dict)          # host -> reason
    bandwidth: dict[str, float] = field(default_factory=dict)          # site -> bytes/s

    def to_json(self) -> dict[str, Any]:
        """The plan file's form (no secrets: facts times and digests only)."""
        return {"schema": SCHEMA, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any) -> Plan:
        """A plan from its JSON form, every field and digest checked; InputError naming
        the field otherwise."""
        expect(data, (dict,), "plan")
        if data.get("schema") != SCHEMA:
            raise InputError(f"schema: {data.get('schema')!r} is not {SCHEMA}")
        doc = {k: v for k, v in data.items() if k != "schema"}
        return build(cls, doc, "", {"entries": _entries, "registry": _seen_tags})

    def downgrades(self) -> list[PlanEntry]:
        """Entries that move a host to an older version than it runs."""
        return [e for e in self.entries if e.action == "downgrade"]

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> Plan:
        """A plan file; InputError naming the file when it is not one."""
        try:
            if path.stat().st_size > MAX_PLAN_FILE:
                raise InputError(f"{path}: larger than {MAX_PLAN_FILE:,} bytes; not a plan")
            return cls.from_json(json.loads(path.read_bytes()))
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror}") from None
        except (ValueError, RecursionError) as exc:
            raise InputError(f"{path}: not JSON ({str(exc)[:80]}); make a plan with "
                             f"'fleetctl plan ... --out {path}'") from None
        except InputError as exc:
            raise InputError(f"{path}: {exc}; make a plan with 'fleetctl plan ... "
                             f"--out {path}'") from None


def _entries(value: Any, where: str) -> list[PlanEntry]:
    entries = []
    for index, item in enumerate(expect(value, (list,), where)):
        at = f"{where}[{index}]"
        entry = build(PlanEntry, item, at, {
            "checks": lambda v, w: [build(Check, c, f"{w}[{i}]")
                                    for i, c in enumerate(expect(v, (list,), w))],
            "digest": optional_digest, "current_digest": optional_digest})
        if entry.action not in ACTIONS:
            raise InputError(f"{at}.action: {entry.action!r} is not one of {', '.join(ACTIONS)}")
        if entry.target is not None and not (entry.digest and
                                             entry.target.endswith(f"@{entry.digest}")):
            raise InputError(f"{at}.target: {entry.target!r} is not pinned by its digest")
        if entry.pull_bytes < 0:
            raise InputError(f"{at}.pull_bytes: {entry.pull_bytes} is negative")
        entries.append(entry)
    return entries


def _seen_tags(value: Any, where: str) -> dict[str, dict[str, Any]]:
    seen = {}
    for key, item in expect(value, (dict,), where).items():
        at = f"{where}[{key!r}]"
        expect(item, (dict,), at)
        seen[key] = {"digest": parse_digest(item.get("digest"), f"{at}.digest"),
                     "size": expect(item.get("size", 0), (int,), f"{at}.size")}
    return seen


def check_plan(plan: Plan, allow_downgrade: bool = False) -> bool:
    """Whether the plan changes any host. FleetError (exit 1) when its request matched
    no host that can take it, with the reasons; InputError when it downgrades hosts and
    that is not allowed."""
    if not any(e.action not in ("noop", "blocked") for e in plan.entries):
        if plan.entries and all(e.blocked for e in plan.entries):
            reasons = sorted({f"{e.host}: {e.reason}" for e in plan.entries})
            raise FleetError(f"no host can take {' '.join(plan.requests)}: "
                             f"{'; '.join(reasons[:3])}"
                             + (f" (and {len(reasons) - 3} more)" if len(reasons) > 3
                                else ""))
        return False
    refuse_downgrades(plan, allow_downgrade)
    return True


def refuse_downgrades(plan: Plan, allow: bool) -> None:
    """A plan that moves hosts to older versions needs ``--allow-downgrade``."""
    found = plan.downgrades()
    if found and not allow:
        first = found[0]
        raise InputError(f"the plan downgrades {len(found)} host(s), e.g. {first.host}: "
                         f"{first.package} {first.current_version} -> {first.version}; pass "
                         f"--allow-downgrade if that is what you want")


def l4t_bound(package: Package) -> bool:
    """Whether the package's images are built per L4T (it has an L4T requirement)."""
    return any(requirement_kind(spec)[0] == "l4t" for spec in package.requires)


def current_container(facts: HostFacts, package: Package) -> Container | None:
    """The container fleetctl deployed for ``package`` on the host, if any."""
    return next((c for c in facts.containers if c.package == package.name), None)


def local_candidates(facts: HostFacts, package: Package) -> list[Candidate]:
    """Images of the package's repository already in the host's engine (any registry)."""
    repository = parse_reference(package.image).repository
    found = []
    for image in facts.images:
        if parse_reference(image.repository).repository == repository:
            found.append(Candidate(image.tag, image.digest, facts.docker_arch, "local", 0))
    return found


def registry_candidates(images: Iterable[PlatformImage]) -> list[Candidate]:
    return [Candidate(i.tag, i.digest, i.arch, "registry", i.size) for i in images]


def preflight(facts: HostFacts, package: Package, pull_bytes: int) -> list[Check]:
    """What must hold on the host before the package can be deployed there."""
    checks = [Check("docker", facts.docker and not facts.docker_error,
                    (facts.docker_version and f"Docker {facts.docker_version}")
                    or facts.docker_error or "no Docker engine"),
              Check("compose", facts.compose != "none",
                    f"compose {facts.compose}" if facts.compose != "none"
                    else "no docker compose (v2 plugin or v1 binary); install one")]
    if facts.is_jetson:
        checks.append(Check("nvidia-runtime", facts.nvidia_runtime,
                            "nvidia runtime present" if facts.nvidia_runtime else
                            "Docker has no nvidia runtime; install nvidia-container-toolkit"))
    need = pull_bytes * UNPACK_FACTOR // 2**20 + package.min_free_disk_mb
    free = facts.disk_free_mb
    checks.append(Check("disk", free is not None and free >= need,
                        f"{free if free is not None else '?'} MiB free on the Docker root, "
                        f"{need} MiB needed"))
    if package.min_memory_mb:
        total = facts.memory_total_mb
        checks.append(Check("memory", total is not None and total >= package.min_memory_mb,
                            f"{total if total is not None else '?'} MiB, "
                            f"{package.min_memory_mb} MiB needed"))
    return checks


def _action(current_version: str | None, current_digest: str | None, version: str | None,
            digest: str) -> str:
    if current_digest is None and current_version is None:
        return "install"
    if current_digest == digest:
        return "noop"
    try:
        if current_version and version and Version(version) < Version(current_version):
            return "downgrade"
    except InvalidVersion:
        pass
    return "upgrade"


def plan_host(host: str, facts: HostFacts, package: Package, requested: str | None,
              images: list[PlatformImage], facts_at: float = 0.0,
              other_tags: Iterable[str] = ()) -> PlanEntry:
    """The plan for one package on one host. Pure.

    ``images`` are the registry's platform images; ``other_tags`` the tags whose
    manifests were not fetched because no target host could take them by name.
    """
    running = current_container(facts, package)
    entry = PlanEntry(host=host, package=package.name, action="blocked", reason="",
                      facts_at=facts_at, l4t=facts.l4t, module=facts.module_short)
    if running:
        entry.current, entry.current_digest = running.image, running.digest
        entry.current_version, entry.current_release = running.version, running.release
    candidates = merge_local(
        registry_candidates(images) + [Candidate(t, None, None, "registry") for t in other_tags],
        local_candidates(facts, package))
    choice = choose(facts, requires=package.requires, l4t_bound=l4t_bound(package),
                    requested=requested, default=package.default, candidates=candidates)
    entry.rejected = [asdict(r) for r in choice.rejected]
    if choice.candidate is None:
        entry.reason = choice.reason
        return entry
    chosen = choice.candidate
    entry.version, entry.tag, entry.digest = choice.version, chosen.tag, chosen.digest
    entry.source = chosen.source
    entry.pull_bytes = chosen.size if chosen.source == "registry" else 0
    entry.checks = preflight(facts, package, entry.pull_bytes)
    entry.reason = choice.reason
    action = _action(entry.current_version, entry.current_digest, choice.version,
                     chosen.digest or "")
    failed = [c for c in entry.checks if not c.ok]
    if failed and action != "noop":
        entry.reason = "preflight: " + "; ".join(f"{c.name}: {c.detail}" for c in failed)
        return entry
    entry.action = action
    if action == "noop":
        entry.reason = f"already runs {chosen.tag} ({chosen.digest[:19]})"
        entry.pull_bytes = 0
    return entry


def tag_may_fit(tag: str, facts: list[HostFacts], bound: bool) -> bool:
    """Whether a tag could fit any of these hosts by its name alone (so its manifest
    is worth fetching). Tags that no host could take are judged by name only."""
    return any(tag_reject_reason(host, tag, bound) is None for host in facts)


def registry_endpoint(host_vars: dict[str, Any], ref: ImageRef) -> ImageRef:
    """The package's image as this host gets it: from its site's mirror when set
    (``fleetctl_registry_mirror``), else from the image's own registry."""
    return with_registry(ref, host_vars.get("fleetctl_registry_mirror"))


def make_plan(catalog: Catalog, requests: list[Request], results: list[ProbeResult],
              db: StateDB | None, *, ttl: float = 300.0,
              offline: dict[str, list[PlatformImage]] | None = None) -> Plan:
    """Plan every requested package (dependencies first) for every host that answered.
    With ``offline`` (per repository, e.g. a bundle's images) no registry is asked."""
    resolved = catalog.resolve(requests)
    answered = [r for r in results if r.facts is not None]
    plan = Plan([str(r) for r in requests], [p.name for p, _ in resolved], [],
                unreachable={r.host.name: f"{r.error}: {r.detail}".rstrip(": ")
                             for r in results if r.facts is None})
    clients: dict[str, RegistryClient] = {}
    wanted: dict[tuple[str, str], tuple[Package, list[HostFacts]]] = {}
    where: dict[tuple[str, str], ImageRef] = {}
    for package, _ in resolved:
        for result in answered:
            ref = registry_endpoint(result.host.vars, parse_reference(package.image))
            key = (package.name, ref.registry)
            where[(package.name, result.host.name)] = ref
            wanted.setdefault(key, (package, []))[1].append(result.facts)
            clients.setdefault(ref.registry, RegistryClient(ref.registry, db, ttl=ttl))

    skipped: dict[tuple[str, str], list[str]] = {}

    def fetch(key: tuple[str, str]) -> tuple[tuple[str, str], list[PlatformImage]]:
        package, hosts = wanted[key]
        repository = parse_reference(package.image).repository
        if offline is not None:
            skipped[key] = []
            return key, offline.get(repository, [])
        client = clients[key[1]]
        bound = l4t_bound(package)
        tags = client.tags(repository)
        skipped[key] = [t for t in tags if not tag_may_fit(t, hosts, bound)]
        return key, client.images_of(repository, [t for t in tags if t not in skipped[key]])

    with ThreadPoolExecutor(max(1, min(8, len(wanted)))) as pool:
        images = dict(pool.map(fetch, wanted))
    for (package_name, registry), found in images.items():
        repository = parse_reference(catalog.packages[package_name].image).repository
        for image in found:
            plan.registry[str(TagKey(registry, repository, image.tag, image.arch))] = {
                "digest": image.digest, "size": image.size}
    for package, version in resolved:
        for result in answered:
            ref = where[(package.name, result.host.name)]
            key = (package.name, ref.registry)
            entry = plan_host(result.host.name, result.facts, package, version, images[key],
                              result.probed_at, skipped[key])
            if entry.digest:
                entry.target = ref.pinned(entry.digest)
            entry.site = site_of(result.host.vars)
            plan.entries.append(entry)
    for result in answered:
        rate = site_bandwidth(result.host.name, result.host.vars)
        if rate is not None:
            site = site_of(result.host.vars)
            plan.bandwidth[site] = min(rate, plan.bandwidth.get(site, rate))
    return plan


def site_of(host_vars: dict[str, Any]) -> str:
    """The host's site: its ``site`` variable, ``-`` without one."""
    return str(host_vars.get("site") or "-")


def site_bandwidth(host: str, host_vars: dict[str, Any]) -> float | None:
    """``fleetctl_bandwidth`` (the site uplink, e.g. ``512kbit``) in bytes/s, if set."""
    value = host_vars.get("fleetctl_bandwidth")
    if value is None:
        return None
    try:
        return parse_rate(value)
    except ValueError as exc:
        raise InputError(f"host {host}: fleetctl_bandwidth: {exc}") from None


@dataclass(frozen=True)
class SiteTransfer:
    """What a plan sends over one site's uplink when every host pulls for itself."""

    site: str
    hosts: int
    bytes: int
    rate: float | None          # bytes/s, when the inventory says

    @property
    def seconds(self) -> float | None:
        return self.bytes / self.rate if self.rate else None


def transfer_by_site(plan: Plan) -> list[SiteTransfer]:
    """Bytes each site's hosts pull (blocked entries excluded), and the time at its rate."""
    totals: dict[str, tuple[set[str], int]] = {}
    for e in plan.entries:
        if e.blocked or not e.pull_bytes:
            continue
        hosts, size = totals.get(e.site or "-", (set(), 0))
        totals[e.site or "-"] = (hosts | {e.host}, size + e.pull_bytes)
    return [SiteTransfer(site, len(hosts), size, plan.bandwidth.get(site))
            for site, (hosts, size) in sorted(totals.items())]
