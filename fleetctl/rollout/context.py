"""Rollout options (as stored in the journal), the context a rollout runs in, and what
every step needs: connections, live facts, template values.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from fleetctl.catalog.compose import RenderContext
from fleetctl.catalog.packages import Catalog, Package
from fleetctl.delivery.blobstore import BlobStore
from fleetctl.delivery.images import MODES, RateLimit, delivery_mode
from fleetctl.durations import parse_duration
from fleetctl.errors import FleetError, InputError
from fleetctl.facts.hostfacts import PROBE_SCRIPT, HostFacts, ProbeOutputError, parse_probe
from fleetctl.inventory.model import Host
from fleetctl.inventory.targets import host_key_policy, target_for
from fleetctl.plan import Plan
from fleetctl.rollout.hosttests import TestPool
from fleetctl.rollout.journal import Journal
from fleetctl.rollout.playbook import reload as reload_playbook
from fleetctl.rollout.strategy import FailurePolicy, parse_policy, parse_steps
from fleetctl.ssh import Connection, HostKeyPolicy, SSHFailure, connect
from fleetctl.state import StateDB
from fleetctl.typed import build, expect

WORKERS = 16
#: the version of :meth:`Options.to_json`; a change of fields bumps it, and
#: :meth:`Options.from_json` reads every earlier one
OPTIONS_SCHEMA = 1


T = TypeVar("T")


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
    analysis: bool = True             # False: health gate only (--no-analysis)
    reboot_timeout: float = 600.0     # OS updates: how long a rebooting host may take
    payload: str | None = None        # OS updates: the image-based OTA payload file

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


def duration_option(value: str | float | None, flag: str) -> float | None:
    """A duration a person wrote (``30s``, ``5m``) in seconds; InputError naming ``flag``."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise InputError(f"{flag} {value!r} should be a duration such as 30s or 5m") from None


def written_options(*, steps: str | list[str] = "1,100%", max_failures: str | int = "1",
                    failure_scope: str = "step", unreachable: str = "deferred",
                    canaries: list[str] | None = None, pause: str | None = None,
                    gate_timeout: str | float | None = None, keep: int = 3,
                    rollback_all: bool = False, break_lock: bool = False,
                    connect_timeout: float = 5.0, delivery: str | None = None,
                    via_seed: bool = False, stage_only: bool = False,
                    reboot_timeout: str | float = 600.0, **more: Any) -> Options:
    """Rollout options from the values a person writes (``1,50%,100%``, ``5m``), each
    checked; InputError naming the option otherwise."""
    policy = parse_policy(max_failures, failure_scope, unreachable)
    if pause not in (None, "manual"):
        duration_option(pause, "--pause")
    if delivery is not None and delivery not in MODES:
        raise InputError(f"--delivery {delivery!r} should be one of {', '.join(MODES)}")
    return Options(
        steps=parse_steps(steps) if isinstance(steps, str) else list(steps),
        max_failures=policy.max_failures, failure_scope=policy.scope,
        unreachable=policy.unreachable, canaries=list(canaries or []), pause=pause,
        gate_timeout=duration_option(gate_timeout, "--gate-timeout"), keep_releases=keep,
        rollback_all=rollback_all, break_lock=break_lock, connect_timeout=connect_timeout,
        delivery=delivery, via_seed=via_seed, stage_only=stage_only,
        reboot_timeout=duration_option(reboot_timeout, "--reboot-timeout") or 600.0, **more)


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
    tests: TestPool | None = None      # children that run package tests; None: one each

    def site_limit(self, site: str | None) -> RateLimit:
        """The uplink cap shared by everything sent to ``site`` (none unless set)."""
        return self.limits.setdefault(site or "-", RateLimit(None))


def with_delivery(ctx: Context, options: Options, plan: Plan) -> Context:
    """The context with the blob store and the per-site rate limits ssh delivery uses,
    and a bundle's catalog when the rollout deploys one."""
    from fleetctl.catalog.packages import load_catalog
    from fleetctl.catalog.registry import blob_fetcher

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


def live_facts(conn: Connection) -> HostFacts:
    """The host's facts right now (the plan's may be stale)."""
    return run_parsed(conn, PROBE_SCRIPT, parse_probe)


def run_parsed(conn: Connection, script: str, parse: Callable[[str], T]) -> T:
    """Run a probe script on the host and parse its answer; garbage is an SSHFailure
    (the host answered, but not with the probe's sections)."""
    result = conn.run(script, command_timeout=60)
    try:
        return parse(result.stdout)
    except ProbeOutputError as exc:
        raise SSHFailure("garbage output", str(exc)) from None


def render_context(ctx: Context, package: Package, host: str, release: str,
                   facts: HostFacts, version: str | None = None,
                   image: str | None = None) -> RenderContext:
    """Template values for one release of ``package`` on ``host`` (the image only
    matters when rendering a compose file; checks need the rest)."""
    return RenderContext.for_host(package, host, ctx.hosts[host].vars, release, version, image,
                                  facts.to_json(), ctx.package_vars.get(package.name))
