"""Staged rollouts: run a plan step by step, each host through lock, preflight, stage,
activate, gate, then commit or revert, and unlock; the failure policy decides
after each step whether to go on. Every transition is written to the journal
before the next one starts, so :func:`resume` and :func:`rollback_rollout` can
pick up from any point.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fleetctl import device
from fleetctl.blobstore import BlobStore
from fleetctl.catalog import Catalog, Package, parse_duration
from fleetctl.compose import RenderContext, render_compose, render_text
from fleetctl.delivery import (
    Delivered,
    ImageParts,
    RateLimit,
    Seed,
    clean,
    declared_size,
    deliver_direct,
    deliver_from_seed,
    delivery_mode,
    image_parts,
    load,
    local_tag,
    stage_for_peers,
    survey,
)
from fleetctl.errors import FleetError
from fleetctl.facts import PROBE_SCRIPT, HostFacts, ProbeOutputError, parse_probe
from fleetctl.hosttests import HostTests
from fleetctl.inventory import Host
from fleetctl.journal import FINAL_HOST_PHASES, HostState, Journal, RolloutRecord, operator
from fleetctl.plan import Plan, PlanEntry, current_container, preflight
from fleetctl.playbook import reload as reload_playbook
from fleetctl.playbook import window_closed
from fleetctl.secrets import redact
from fleetctl.ssh import Connection, HostKeyPolicy, SSHFailure, connect
from fleetctl.state import StateDB
from fleetctl.strategy import FailurePolicy, batches, order_canaries_first
from fleetctl.targets import host_key_policy, target_for
from fleetctl.typed import build, expect

WORKERS = 16
#: the version of :meth:`Options.to_json`; a change of fields bumps it, and
#: :meth:`Options.from_json` reads every earlier one
OPTIONS_SCHEMA = 1
#: seconds a package's testinfra tests get even when the health wait used up the gate
TESTS_MIN_TIME = 60.0
FAILED = ("failed", "reverted", "revert-failed")


@dataclass
class Options:
    """How a rollout runs (stored in the journal so resume runs it the same way)."""

    steps: list[str] = field(default_factory=lambda: ["1", "100%"])
    max_failures: str = "1"
    failure_scope: str = "step"
    unreachable: str = "deferred"
    canaries: list[str] = field(default_factory=list)
    pause: str | None = None          # "5m", "manual" or None
    gate_timeout: float | None = None
    keep_releases: int = 3
    rollback_all: bool = False
    break_lock: bool = False
    connect_timeout: float = 5.0
    window: dict[str, Any] | None = None      # maintenance window (playbook.Window JSON)
    playbook: dict[str, str] | None = None    # {path, sha256}: env, vars, health overrides
    delivery: str | None = None       # "registry" or "ssh"; None: each host's fleetctl_delivery
    via_seed: bool = False            # ssh delivery: one host per site gets the blobs once
    stage_only: bool = False          # deliver and stage on every target, change nothing
    bundle: str | None = None         # an unpacked bundle: its catalog, blobs only from it

    @property
    def policy(self) -> FailurePolicy:
        return FailurePolicy(self.max_failures, self.failure_scope, self.unreachable)

    def to_json(self) -> dict[str, Any]:
        """The options as the journal stores them, with their schema version."""
        return {"schema": OPTIONS_SCHEMA, **asdict(self)}

    @classmethod
    def from_json(cls, doc: Any, where: str = "journal options") -> Options:
        """Options read back from the journal, each field's type checked; journals
        written before the schema version (schema 0) hold the same fields."""
        doc = dict(expect(doc, (dict,), where))
        schema = doc.pop("schema", 0)
        if schema not in (0, OPTIONS_SCHEMA):
            raise FleetError(f"{where}: schema {schema!r} is newer than this fleetctl "
                             f"({OPTIONS_SCHEMA}); use the fleetctl that wrote it",
                             exit_code=2)
        return build(cls, doc, where)


@dataclass
class Context:
    """What a running rollout needs beside its journal record."""

    journal: Journal
    db: StateDB
    catalog: Catalog
    hosts: dict[str, Host]
    host_key_policy: str | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    #: (host, timeout) -> an open connection; None: SSH to the inventory host
    connect: Callable[[str, float], Connection] | None = None
    package_vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    blobs: BlobStore | None = None                      # images for ssh delivery
    limits: dict[str, RateLimit] = field(default_factory=dict)     # site -> uplink cap


def with_delivery(ctx: Context, options: Options, plan: Plan) -> Context:
    """The context with the blob store and the per-site rate limits ssh delivery uses,
    and a bundle's catalog when the rollout deploys one."""
    from fleetctl.catalog import load_catalog
    from fleetctl.registry import blob_fetcher

    if options.bundle:
        ctx = replace(ctx, catalog=load_catalog(Path(options.bundle) / "packages"))
    fetch = None if options.bundle else blob_fetcher(ctx.db)
    return replace(ctx, blobs=BlobStore(ctx.db.dir / "blobs", fetch),
                   limits={site: RateLimit(rate) for site, rate in plan.bandwidth.items()})


def ssh_delivery(ctx: Context, options: Options, host: str) -> bool:
    """Whether ``host`` gets its images over SSH rather than from a registry."""
    return delivery_mode(host, ctx.hosts[host].vars, options.delivery) == "ssh"


def with_playbook(ctx: Context, options: Options) -> Context:
    """The context with the overrides of the playbook the rollout runs, if any. Env and
    vars are read from the playbook again rather than stored: they may hold secrets."""
    if not options.playbook:
        return ctx
    book = reload_playbook(options.playbook["path"], options.playbook["sha256"])
    catalog, package_vars = book.apply(ctx.catalog)
    return replace(ctx, catalog=catalog, package_vars=package_vars)


class HostLost(Exception):
    """The connection to a host broke mid-way."""


def start(ctx: Context, rollout_id: str, plan: Plan, options: Options) -> RolloutRecord:
    """Record a new rollout of ``plan`` (steps, canaries first), take the fleet lock."""
    targeted = list(dict.fromkeys(e.host for e in plan.entries
                                  if e.action not in ("noop", "blocked")))
    classes = {e.host: (e.l4t, e.module) for e in plan.entries}
    step_sizes = ["100%"] if options.stage_only else options.steps
    first = batches(targeted, step_sizes)[0] if targeted else []
    ordered = order_canaries_first(targeted, classes, len(first), options.canaries)
    steps = batches(ordered, step_sizes)
    step_of = {h: i for i, hosts in enumerate(steps) for h in hosts}
    states = []
    for entry in plan.entries:
        phase = "skipped" if entry.blocked else "noop" if entry.action == "noop" else \
            "pending"
        states.append(HostState(entry.host, entry.package, step_of.get(entry.host, -1), phase,
                                from_digest=entry.current_digest,
                                from_version=entry.current_version,
                                to_digest=entry.digest, to_version=entry.version,
                                to_release=rollout_id,
                                error=entry.reason if entry.blocked else None))
    ctx.journal.create(rollout_id, "deploy", " ".join(plan.requests), plan.packages, steps,
                       options.to_json(), plan.to_json(), states, targeted,
                       options.break_lock)
    return ctx.journal.get(rollout_id)


def run(ctx: Context, record: RolloutRecord) -> RolloutRecord:
    """Run (or continue) a rollout to its end, a breach, or a manual pause."""
    options = Options.from_json(record.options, f"rollout {record.id}: options")
    plan = Plan.from_json(record.plan)
    ctx = with_playbook(with_delivery(ctx, options, plan), options)
    journal = ctx.journal
    policy = options.policy
    if options.via_seed:
        seed_sites(ctx, record, plan, options)
    failed_so_far = done_so_far = 0
    for index, step_hosts in enumerate(record.steps):
        states = _states(journal, record.id)
        todo = [h for h in step_hosts
                if any(s.phase not in FINAL_HOST_PHASES for s in states.get(h, []))]
        closed = window_closed(options.window) if todo else None
        if closed:
            journal.set_status(record.id, "paused", f"paused before step {index + 1}: {closed}"
                               f"; continue then with 'fleetctl rollout resume {record.id}'",
                               current_step=index)
            return journal.get(record.id)
        journal.set_status(record.id, "running", current_step=index)
        outcomes = parallel(lambda h: _deploy_host(ctx, record, plan, options, h), todo)
        states = _states(journal, record.id)
        # a host lost mid-way (after activate, before commit or revert) is in an unknown
        # state: it counts as unreachable, and the rollout goes no further without it
        unknown = [h for h in step_hosts if _host_outcome(states[h]) == "in-flight"]
        failed = [h for h in step_hosts if _host_outcome(states[h]) in FAILED
                  or (policy.unreachable == "failed" and
                      _host_outcome(states[h]) in ("deferred", "in-flight"))]
        failed_so_far += len(failed)
        done_so_far += len(step_hosts)
        scope_failed, scope_hosts = ((len(failed), len(step_hosts)) if policy.scope == "step"
                                     else (failed_so_far, done_so_far))
        if policy.breached(scope_failed, scope_hosts):
            return _stop(ctx, record, plan, options, index, failed)
        if unknown:
            lost = "; ".join(f"{h} ({_lost_phase(states[h])})" for h in unknown)
            journal.set_status(record.id, "incomplete", f"step {index + 1} stopped: the "
                               f"connection to {lost} was lost mid-way, so its state is "
                               f"unknown; 'fleetctl rollout resume {record.id}' checks it "
                               f"and goes on, 'fleetctl rollback {record.id}' undoes it",
                               current_step=index)
            journal.unlock(record.id)
            return journal.get(record.id)
        if outcomes and index < len(record.steps) - 1 and options.pause:
            if options.pause == "manual":
                journal.set_status(record.id, "paused", f"paused after step {index + 1}; "
                                   f"continue with 'fleetctl rollout promote {record.id}'",
                                   current_step=index + 1)
                return journal.get(record.id)
            ctx.sleep(parse_duration(options.pause))
    states = _states(journal, record.id)
    deferred = [h for h, s in states.items() if _host_outcome(s) == "deferred"]
    if deferred:
        journal.set_status(record.id, "incomplete", f"{len(deferred)} hosts deferred "
                           f"(unreachable): {', '.join(deferred)}; retry with 'fleetctl rollout "
                           f"resume {record.id}'", current_step=len(record.steps))
    else:
        journal.set_status(record.id, "completed", _summary(states),
                           current_step=len(record.steps))
    journal.unlock(record.id)
    return journal.get(record.id)


def _states(journal: Journal, rollout_id: str) -> dict[str, list[HostState]]:
    result: dict[str, list[HostState]] = {}
    for state in journal.get(rollout_id).hosts:
        result.setdefault(state.host, []).append(state)
    return result


def _host_outcome(states: list[HostState]) -> str:
    """One word for a host across its packages: the worst phase wins."""
    phases = {s.phase for s in states}
    for phase in ("revert-failed", "reverted", "failed", "deferred", "rolled-back"):
        if phase in phases:
            return phase
    if phases - set(FINAL_HOST_PHASES):
        return "in-flight"
    return "committed" if "committed" in phases else sorted(phases)[0]


def _lost_phase(states: list[HostState]) -> str:
    """Where a host's deploy stopped: ``ollama activated``."""
    return ", ".join(f"{s.package} {s.phase}" for s in states
                     if s.phase not in FINAL_HOST_PHASES)


def _summary(states: dict[str, list[HostState]]) -> str:
    counts: dict[str, int] = {}
    for host_states in states.values():
        outcome = _host_outcome(host_states)
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))


def parallel(work: Callable[[str], Any], hosts: list[str]) -> list[Any]:
    """``work(host)`` for every host, several at a time, results in order."""
    if not hosts:
        return []
    with ThreadPoolExecutor(min(WORKERS, len(hosts))) as pool:
        return list(pool.map(work, hosts))


def connect_host(ctx: Context, host: str, timeout: float) -> Connection:
    """A verified connection to an inventory host (SSHFailure with the reason), through
    the context's ``connect`` when it has one (a fake device in tests)."""
    if ctx.connect is not None:
        return ctx.connect(host, timeout)
    inventory_host = ctx.hosts[host]
    mode = host_key_policy(inventory_host.vars, ctx.host_key_policy)
    return connect(target_for(inventory_host), policy=HostKeyPolicy(mode, ctx.db.known_hosts),
                   timeout=timeout)


def _deploy_host(ctx: Context, record: RolloutRecord, plan: Plan, options: Options,
                 host: str) -> str:
    """Every package of the plan on one host, in dependency order; returns the outcome."""
    journal = ctx.journal
    entries = [e for e in plan.entries if e.host == host]
    states = {s.package: s for s in _states(journal, record.id)[host]}
    pending = [e for e in entries if states[e.package].phase not in FINAL_HOST_PHASES]
    if not pending:
        return "done"
    conn = _connect_or_defer(ctx, record, host, options, [(e.package, "deferred")
                                                          for e in pending], "")
    if conn is None:
        return "deferred"
    with conn:
        for position, entry in enumerate(pending):
            try:
                outcome = _deploy_package(ctx, conn, record, options, entry,
                                          states[entry.package])
            except SSHFailure as exc:
                phase = _state(journal, record.id, host, entry.package).phase
                # "locked": only the device lock (this rollout's) and staged blobs exist
                journal.set_host(record.id, host, entry.package,
                                 "deferred" if phase in ("pending", "deferred", "locked")
                                 else phase,
                                 error=f"connection lost: {exc.reason}: {exc.detail}")
                return "deferred"
            except (device.StepFailed, FleetError) as exc:
                # a step outside stage/activate/gate failed (lock, commit, audit): nothing
                # running was changed before commit; after it the journal keeps the phase
                phase = _state(journal, record.id, host, entry.package).phase
                journal.set_host(record.id, host, entry.package,
                                 "failed" if phase in ("pending", "deferred", "locked")
                                 else phase, error=str(exc))
                outcome = "failed"
            if outcome not in ("committed", "noop", "ready"):
                for later in pending[position + 1:]:
                    journal.set_host(record.id, host, later.package, "skipped",
                                     error=f"not deployed: {entry.package} {outcome}")
                return outcome
    return "committed"


def _connect_or_defer(ctx: Context, record: RolloutRecord, host: str, options: Options,
                      phases: list[tuple[str, str]], prefix: str) -> Connection | None:
    """Connect, or record why not on each (package, phase) and return None."""
    try:
        return connect_host(ctx, host, options.connect_timeout)
    except SSHFailure as exc:
        for package, phase in phases:
            ctx.journal.set_host(record.id, host, package, phase,
                                 error=f"{prefix}{exc.reason}: {exc.detail}")
        return None


def _state(journal: Journal, rollout_id: str, host: str, package: str) -> HostState:
    """The journal's current record of one host and package."""
    return next(s for s in journal.get(rollout_id).hosts
                if s.host == host and s.package == package)


def _deploy_package(ctx: Context, conn: Connection, record: RolloutRecord, options: Options,
                    entry: PlanEntry, state: HostState) -> str:
    journal = ctx.journal
    package = ctx.catalog.get(entry.package)
    rid, host, name = record.id, entry.host, entry.package
    holder = device.lock(conn, name, rid, operator(), options.break_lock)
    facts = live_facts(conn)
    if state.phase in ("pending", "deferred"):
        current, _, _ = device.releases(conn, name)
        running = current_container(facts, package)
        journal.set_host(rid, host, name, "locked",
                         f"device lock taken{f' (broke {holder})' if holder else ''}",
                         from_release=current, error=None,
                         from_digest=running.digest if running else None,
                         from_version=running.version if running else None)
        state = _state(journal, rid, host, name)
        if running and running.digest == entry.digest and running.release:
            _finish(ctx, conn, record, state, "noop", "already at the target digest")
            return "noop"
        if state.from_digest != entry.current_digest:
            return _fail(ctx, conn, record, state, f"host changed since the plan: runs "
                         f"{state.from_digest or 'nothing'}, the plan expected "
                         f"{entry.current_digest or 'nothing'}; plan again")
    if state.phase == "reverting":
        return _revert(ctx, conn, record, state, facts, package, options, state.error or "")
    present = any(i.digest == entry.digest for i in facts.images)
    failed_checks = [c for c in preflight(facts, package, 0 if present else entry.pull_bytes)
                     if not c.ok]
    if failed_checks and state.phase == "locked":
        return _fail(ctx, conn, record, state, "preflight: " + "; ".join(
            f"{c.name}: {c.detail}" for c in failed_checks))
    over_ssh = ssh_delivery(ctx, options, host)
    image = local_tag(entry.target) if over_ssh else entry.target
    render = render_context(ctx, package, host, rid, facts, entry.version, image)
    if state.phase == "locked":
        try:
            parts, delivered = _deliver(ctx, conn, entry) if over_ssh else (None, None)
            pulled = device.stage(conn, name, rid, render_compose(render), image,
                                  entry.digest, parts.config if parts else "")
        except (device.StepFailed, FleetError) as exc:
            return _fail(ctx, conn, record, state, str(exc))
        detail = (f"over SSH: {delivered.describe()}" if delivered else
                  "image pulled" if pulled else "image already on the host")
        if options.stage_only:
            _finish(ctx, conn, record, state, "ready", f"staged, nothing running changed; "
                    f"{detail}")
            return "ready"
        journal.set_host(rid, host, name, "staged", detail)
        state.phase = "staged"
    if state.phase == "staged":
        try:
            device.activate(conn, name, rid, device.compose_command(facts))
        except device.StepFailed as exc:
            return _revert(ctx, conn, record, state, facts, package, options, str(exc))
        journal.set_host(rid, host, name, "activated", "containers started")
        state.phase = "activated"
    ok, detail = gate(conn, package, rid, render, options.gate_timeout, ctx.sleep,
                      host_tests(ctx, conn, package, entry, rid), ctx.clock)
    if not ok:
        return _revert(ctx, conn, record, state, facts, package, options, f"gate: {detail}")
    previous = device.commit(conn, name, rid, options.keep_releases)
    journal.set_host(rid, host, name, "committed", f"healthy: {detail}"
                     + (f"; previous release {previous} kept" if previous else ""))
    write_audit(ctx, conn, record, state, "committed")
    return "committed"


def _deliver(ctx: Context, conn: Connection, entry: PlanEntry) -> tuple[ImageParts, Delivered]:
    """The entry's image onto the host over its SSH connection (if it is not there)."""
    assert ctx.blobs is not None and entry.target
    parts = image_parts(ctx.blobs, entry.target)
    limit = ctx.limits.setdefault(entry.site or "-", RateLimit(None))
    return parts, deliver_direct(conn, entry.host, [parts], ctx.blobs, limit)


def seed_sites(ctx: Context, record: RolloutRecord, plan: Plan, options: Options) -> None:
    """Before the first step, per site: one host (the first in rollout order) gets every
    blob the site's hosts lack over the uplink, once, and loads its own images; the
    others fetch theirs from it over the LAN. A host this fails for is left to get its
    image over its own SSH connection at its step."""
    states = _states(ctx.journal, record.id)
    order = {h: i for i, h in enumerate(h for step in record.steps for h in step)}
    sites: dict[str, dict[str, list[PlanEntry]]] = {}
    for e in plan.entries:
        if (e.target and e.host in order and ssh_delivery(ctx, options, e.host)
                and any(s.package == e.package and s.phase in ("pending", "deferred")
                        for s in states[e.host])):
            sites.setdefault(e.site or "-", {}).setdefault(e.host, []).append(e)
    parallel(lambda site: _seed_site(ctx, record, options, site,
                                     dict(sorted(sites[site].items(),
                                                 key=lambda item: order[item[0]]))),
             [site for site, hosts in sites.items() if len(hosts) > 1])


def _seed_site(ctx: Context, record: RolloutRecord, options: Options, site: str,
               hosts: dict[str, list[PlanEntry]]) -> None:
    assert ctx.blobs is not None
    store, journal = ctx.blobs, ctx.journal
    images = {h: [image_parts(store, e.target) for e in entries if e.target]
              for h, entries in hosts.items()}
    every_image = [image for found in images.values() for image in found]

    def note(host: str, phase: str, detail: str) -> None:
        for entry in hosts[host]:
            journal.note(record.id, host, entry.package, phase, detail)

    conns: dict[str, Connection] = {}
    for host, conn in zip(hosts, parallel(lambda h: _try_connect(ctx, h, options), list(hosts)),
                          strict=True):
        if isinstance(conn, Connection):
            conns[host] = conn
        else:
            note(host, "delivery", f"not reached for seeding ({conn}); it gets its image "
                                   f"itself at its step")
    if len(conns) < 2:
        for conn in conns.values():
            conn.close()
        return
    seed_host, *peers = conns
    seed_conn = conns[seed_host]
    try:
        needs = dict(zip(conns, parallel(lambda h: survey(conns[h], images[h]), list(conns)),
                         strict=True))
        blobs = {d: store.ensure(ref, d, max_size=declared_size(every_image, d))
                 for need in needs.values() for d, ref in need.blobs.items()}
        limit = ctx.limits.setdefault(site, RateLimit(None))
        sent, resumed = stage_for_peers(seed_conn, blobs, limit)
        for image in needs[seed_host].images:
            load(seed_conn, image)
        note(seed_host, "delivery", f"seed of site {site}: {len(blobs)} blobs, {sent:,} bytes "
                                    f"sent over SSH" + (f" ({resumed:,} staged before)"
                                                        if resumed else ""))
        seed = Seed(seed_conn, ctx.hosts[seed_host].vars.get("ansible_host") or
                    seed_conn.target.address)
        try:
            def fetch(peer: str) -> None:
                try:
                    done = deliver_from_seed(conns[peer], peer, images[peer], seed, seed_host)
                    note(peer, "delivery", done.describe())
                except (device.StepFailed, SSHFailure) as exc:
                    note(peer, "delivery", f"from seed {seed_host} failed ({exc}); it gets "
                                           f"its image itself at its step")
            parallel(fetch, peers)
        finally:
            seed.close()
        clean(seed_conn, list(blobs))
    except (device.StepFailed, SSHFailure, FleetError) as exc:
        note(seed_host, "delivery", f"seeding site {site} failed ({exc}); each host gets "
                                    f"its image itself at its step")
    finally:
        for conn in conns.values():
            conn.close()


def _try_connect(ctx: Context, host: str, options: Options) -> Connection | str:
    try:
        return connect_host(ctx, host, options.connect_timeout)
    except SSHFailure as exc:
        return f"{exc.reason}: {exc.detail}"


def live_facts(conn: Connection) -> HostFacts:
    """The host's facts right now (the plan's may be stale)."""
    result = conn.run(PROBE_SCRIPT, command_timeout=60)
    try:
        return parse_probe(result.stdout)
    except ProbeOutputError as exc:
        raise SSHFailure("garbage output", str(exc)) from None


def render_context(ctx: Context, package: Package, host: str, release: str,
                   facts: HostFacts, version: str | None = None,
                   image: str | None = None) -> RenderContext:
    """Template values for one release of ``package`` on ``host`` (the image only
    matters when rendering a compose file; checks need the rest)."""
    host_vars = ctx.hosts[host].vars
    return RenderContext(package=package, version=version or "", image=image or "",
                         release=release, host=host,
                         service_address=str(host_vars.get("fleetctl_service_address",
                                                           "0.0.0.0")),
                         facts=facts.to_json(),
                         vars={**host_vars, **ctx.package_vars.get(package.name, {})})


def host_tests(ctx: Context, conn: Connection, package: Package, entry: PlanEntry,
               release: str) -> HostTests | None:
    """The package's testinfra tests for this host and release, if it ships any."""
    if not package.tests:
        return None
    return HostTests(package.tests, conn.target, (str(ctx.db.known_hosts),),
                     HostTests.release_env(package.name, release, entry.version, entry.target))


def gate(conn: Connection, package: Package, release: str, render: RenderContext,
         timeout: float | None, sleep: Callable[[float], None] = time.sleep,
         tests: HostTests | None = None,
         clock: Callable[[], float] = time.monotonic) -> tuple[bool, str]:
    """Wait until the release is healthy: its containers running, Docker's health
    check (if any) healthy, the package's HTTP or command check passing
    ``retries`` times in a row, then its testinfra ``tests``. Fails at once on a
    crash loop, Docker's ``unhealthy`` or a failed test; otherwise after the
    package's ``start_period`` plus ``timeout`` (default: the package's)."""
    health = package.health
    limit = health.start_period + (timeout if timeout is not None else health.timeout)
    deadline = clock() + limit
    streak, problem = 0, "not checked yet"
    url = urlsplit(render_text(render, health.http)) if health.http else None
    while True:
        states = [c for c in device.containers(conn, package.name) if c.release == release]
        crashed = [c for c in states if c.restarts >= 2 or c.state in ("exited", "dead")]
        if crashed:
            c = crashed[0]
            return False, f"{c.name} is crash-looping ({c.state}, restarted {c.restarts} times)"
        if any(c.health == "unhealthy" for c in states):
            return False, "Docker reports the container unhealthy"
        if not states:
            problem = "no container of this release"
        elif any(c.state != "running" for c in states):
            problem = f"container {states[0].state}"
        elif any(c.health == "starting" for c in states):
            problem = "Docker health check starting"
        elif url is not None:
            status, body = conn.http_get(url.hostname or "127.0.0.1", url.port or 80,
                                         url.path or "/", timeout=5)
            problem = None if 200 <= status < 300 else \
                f"GET {url.geturl()}: {status or body}"
        elif health.command:
            ok, output = device.run_check(conn, package.name, health.command)
            problem = None if ok else f"{health.command}: {output}"
        else:
            problem = None
        streak = streak + 1 if problem is None else 0
        if streak >= health.retries:
            detail = (f"{url.geturl()} answered" if url else "running") + \
                f" {streak} times in a row"
            if tests is None:
                return True, detail
            passed, summary = tests.run(max(deadline - clock(), TESTS_MIN_TIME))
            return passed, f"{detail}; {summary}" if passed else summary
        if clock() >= deadline:
            return False, f"not healthy within {limit:.0f}s: {problem}"
        sleep(health.interval)


def _fail(ctx: Context, conn: Connection, record: RolloutRecord, state: HostState,
          error: str) -> str:
    """Nothing running changed: record the failure, unlock."""
    ctx.journal.set_host(record.id, state.host, state.package, "failed", error=error)
    write_audit(ctx, conn, record, state, f"failed ({error})")
    return "failed"


def _finish(ctx: Context, conn: Connection, record: RolloutRecord, state: HostState,
            phase: str, detail: str) -> None:
    ctx.journal.set_host(record.id, state.host, state.package, phase, detail)
    write_audit(ctx, conn, record, state, phase)


def _revert(ctx: Context, conn: Connection, record: RolloutRecord, state: HostState,
            facts: HostFacts, package: Package, options: Options, error: str) -> str:
    """Bring the release that ran before back (no pull) and check it is healthy again."""
    journal = ctx.journal
    journal.set_host(record.id, state.host, state.package, "reverting", error=error)
    try:
        device.switch_to(conn, package.name, state.from_release,
                         device.compose_command(facts), make_current=False)
        if state.from_release:
            render = render_context(ctx, package, state.host, state.from_release, facts,
                                    state.from_version)
            ok, detail = gate(conn, package, state.from_release, render, options.gate_timeout,
                              ctx.sleep, clock=ctx.clock)
            if not ok:
                raise device.StepFailed(f"previous release unhealthy: {detail}")
    except device.StepFailed as exc:
        journal.set_host(record.id, state.host, state.package, "revert-failed",
                         error=f"{error}; revert failed: {exc}")
        write_audit(ctx, conn, record, state, f"revert-failed ({error})")
        return "revert-failed"
    back = f"back on release {state.from_release}" if state.from_release else \
        "removed (nothing ran before)"
    journal.set_host(record.id, state.host, state.package, "reverted", back, error=error)
    write_audit(ctx, conn, record, state, f"reverted ({error})")
    return "reverted"


def write_audit(ctx: Context, conn: Connection, record: RolloutRecord, state: HostState,
                result: str) -> None:
    """Release the device lock and append the result to the device's audit log (a line
    that cannot be written, e.g. on a full disk, is noted in the journal instead)."""
    line = (f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} rollout={record.id} "
            f"package={state.package} from={state.from_digest or '-'} "
            f"to={state.to_digest or '-'} result={redact(result)} operator={operator()}")
    try:
        device.unlock(conn, state.package, record.id, line)
    except device.StepFailed as exc:
        ctx.journal.note(record.id, state.host, state.package, "audit-not-written", str(exc))


def _stop(ctx: Context, record: RolloutRecord, plan: Plan, options: Options, index: int,
          failed: list[str]) -> RolloutRecord:
    """The failure policy was breached at step ``index``: revert that step's committed
    hosts (and earlier steps' with ``rollback_all``), stop."""
    journal = ctx.journal
    steps = record.steps[:index + 1] if options.rollback_all else [record.steps[index]]
    hosts = [h for step in steps for h in step]
    states = _states(journal, record.id)
    to_undo = [h for h in hosts if any(s.phase == "committed" for s in states[h])]
    parallel(lambda h: _undo_host(ctx, record, options, h), to_undo)
    for state in journal.get(record.id).hosts:
        # an unreachable host counted as failed keeps its reason
        if state.phase in ("pending", "deferred") and state.host not in failed:
            journal.set_host(record.id, state.host, state.package, "cancelled",
                             error=f"not started: the rollout stopped at step {index + 1}")
    message = (f"stopped at step {index + 1} of {len(record.steps)}: failed on "
               f"{', '.join(failed)}; " + _summary(_states(journal, record.id)))
    journal.set_status(record.id, "failed", message)
    journal.unlock(record.id)
    return journal.get(record.id)


def _undo_host(ctx: Context, record: RolloutRecord, options: Options, host: str) -> str:
    """Return one host to what it ran before the rollout, packages in reverse order."""
    journal = ctx.journal
    states = [s for s in journal.get(record.id).hosts if s.host == host]
    undo = [s for s in reversed(states)
            if s.phase in ("committed", "locked", "staged", "activated", "reverting")]
    if not undo:
        return "nothing to undo"
    conn = _connect_or_defer(ctx, record, host, options, [(s.package, s.phase) for s in undo],
                             "rollback deferred: ")
    if conn is None:
        return "deferred"
    with conn:
        facts = live_facts(conn)
        for s in undo:
            package = ctx.catalog.get(s.package)
            try:
                device.lock(conn, s.package, record.id, operator(), options.break_lock)
                ours = any(c.release == record.id
                           for c in device.containers(conn, s.package))
                if s.phase != "committed" and not ours:
                    # the journal is written after each device step: a controller killed
                    # between the two leaves "staged" while the release already runs
                    detail = "nothing had changed"
                else:
                    device.switch_to(conn, s.package, s.from_release,
                                     device.compose_command(facts),
                                     make_current=s.phase == "committed")
                    detail = (f"back on release {s.from_release}" if s.from_release
                              else "removed (nothing ran before)")
                    if s.from_release:
                        ok, why = gate(conn, package, s.from_release,
                                       render_context(ctx, package, host, s.from_release,
                                                      facts, s.from_version),
                                       options.gate_timeout, ctx.sleep, clock=ctx.clock)
                        if not ok:
                            raise device.StepFailed(f"previous release unhealthy: {why}")
            except device.StepFailed as exc:
                journal.set_host(record.id, host, s.package, "revert-failed", error=str(exc))
                write_audit(ctx, conn, record, s, f"rollback failed ({exc})")
                continue
            journal.set_host(record.id, host, s.package, "rolled-back", detail)
            write_audit(ctx, conn, record, s, "rolled-back")
    return "rolled-back"


def resume(ctx: Context, rollout_id: str) -> RolloutRecord:
    """Continue a rollout from the journal: interrupted, paused, or with deferred hosts."""
    record = ctx.journal.get(rollout_id)
    status = record.shown_status
    if status == "running":
        raise FleetError(f"rollout {rollout_id} is still running ({record.controller})",
                         exit_code=3)
    if status not in ("interrupted", "paused", "incomplete"):
        raise FleetError(f"rollout {rollout_id} is {status}: nothing to resume; "
                         f"'fleetctl rollback {rollout_id}' undoes it", exit_code=2)
    hosts = sorted({s.host for s in record.hosts if s.phase not in ("skipped", "noop")})
    ctx.journal.claim(rollout_id, record.packages, hosts)
    return run(ctx, ctx.journal.get(rollout_id))


def rollback_rollout(ctx: Context, rollout_id: str) -> RolloutRecord:
    """Undo a rollout on every host it touched: back to what each ran before, no pulls."""
    record = ctx.journal.get(rollout_id)
    if record.shown_status == "running":
        raise FleetError(f"rollout {rollout_id} is still running ({record.controller}); stop "
                         f"it first", exit_code=3)
    options = Options.from_json(record.options, f"rollout {record.id}: options")
    ctx = with_playbook(with_delivery(ctx, options, Plan.from_json(record.plan)), options)
    hosts = list(dict.fromkeys(s.host for s in record.hosts))
    ctx.journal.claim(rollout_id, record.packages, hosts, break_lock=True)
    parallel(lambda h: _undo_host(ctx, record, options, h), hosts)
    final = ctx.journal.get(rollout_id)
    left = [s.host for s in final.hosts if s.phase in ("committed", "activated", "staged",
                                                        "locked", "revert-failed")]
    ctx.journal.set_status(rollout_id, "rolled-back" if not left else "failed",
                           "rolled back" + (f"; not on: {', '.join(sorted(set(left)))}"
                                            if left else ""))
    ctx.journal.unlock(rollout_id)
    return ctx.journal.get(rollout_id)

