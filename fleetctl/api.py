"""fleetctl as a library: one :class:`Fleet` session over an inventory, a state
directory and a package catalog, running the pipeline

    inventory -> targets -> facts -> plan -> rollout -> journal and reports

Every step returns typed results (probe results, a :class:`~fleetctl.plan.Plan`, a
:class:`~fleetctl.rollout.journal.RolloutRecord`) and raises :class:`~fleetctl.errors.FleetError`
with a one-line message and an exit code for anything the caller can fix. Progress
reaches subscribers (:meth:`Fleet.subscribe`) as event dicts, the same ones the
command line's live table, ``--events`` file and ``--json`` report are made from.
The command line (:mod:`fleetctl.cli`) is this API plus argument parsing and
rendering; a dashboard or another controller drives the same calls::

    from fleetctl.api import Fleet, Selection

    fleet = Fleet(inventory=Path("inventory.yml"))
    plan = fleet.plan(["ollama:0.7.0"], Selection(group="factory-a"))
    record = fleet.deploy(plan, fleet.options(steps="1,50%,100%"))
    print(record.status)
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from fleetctl.catalog.imageref import PlatformImage, TagKey
from fleetctl.catalog.packages import Catalog, load_catalog, parse_request
from fleetctl.catalog.registry import RegistryClient
from fleetctl.delivery.bundle import Verified
from fleetctl.delivery.bundle_manifest import BundleManifest
from fleetctl.delivery.keys import generate_key, key_id, load_private_key, trust_key
from fleetctl.errors import FleetError, InputError
from fleetctl.facts import audit as audits
from fleetctl.facts.probe import ProbeResult, probe_hosts, probe_os, select_by_facts
from fleetctl.inventory.ansible import load_inventory
from fleetctl.inventory.ansible import redact as redact_vars
from fleetctl.inventory.export import ansible_list
from fleetctl.inventory.export import closed as closed_vars
from fleetctl.inventory.model import Host, Inventory
from fleetctl.inventory.targets import host_key_policy as check_policy
from fleetctl.inventory.targets import parse_where
from fleetctl.osupdate.paths import release
from fleetctl.osupdate.plan import OSPlan, plan_os
from fleetctl.plan import Plan, check_plan
from fleetctl.plan import make_plan as plan_hosts
from fleetctl.rollout.context import Context, Options, duration_option, written_options
from fleetctl.rollout.journal import Journal, RolloutRecord, new_rollout_id
from fleetctl.rollout.playbook import Playbook, load_playbook, window_closed
from fleetctl.secrets import redact as redact_secrets
from fleetctl.state import StateDB, default_state_dir
from fleetctl.telemetry.status import HostStatus, fleet_status
from fleetctl.telemetry.tracing import tracer_from_environment
from fleetctl.vault import load_vault

__all__ = ["WINDOW_CLOSED", "Audit", "Fleet", "HostStatus", "Listener", "NothingToDo",
           "OSPlan", "OpenedBundle", "Selection", "closed_vars", "generate_key", "key_id",
           "load_playbook", "load_private_key", "redact_secrets", "redact_vars", "trust_key"]

#: an event: {"at", "rollout", "host", "package", "phase", "detail"}
Listener = Callable[[dict[str, Any]], None]
#: exit status when a playbook's maintenance window is closed (nothing was touched)
WINDOW_CLOSED = 5


@dataclass(frozen=True)
class Selection:
    """Which hosts: an inventory group and/or an Ansible host pattern, then fact
    selectors (``l4t>=36.4``)."""

    group: str | None = None
    limit: str | None = None
    where: tuple[str, ...] = ()

    def required(self) -> Selection:
        """This selection, which must name hosts (a deploy never means "everything")."""
        if not self.group and not self.limit:
            raise InputError("say which hosts: --group G or --limit PATTERN")
        return self


@dataclass
class Audit:
    """What ``fleetctl audit`` reports: a row per host, totals and rule findings."""

    results: list[ProbeResult]
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    findings: list[audits.Finding]

    def to_json(self) -> dict[str, Any]:
        return {"hosts": self.rows, "summary": self.summary,
                "findings": [f.__dict__ for f in self.findings]}


@dataclass
class OpenedBundle:
    """A verified, unpacked bundle: its playbook and catalog, and the images the plan
    may choose from."""

    signed_by: str
    channel: str
    sequence: int
    note: str | None
    folder: Path
    offline: dict[str, list[PlatformImage]] = field(default_factory=dict)

    @property
    def playbook(self) -> Path:
        return self.folder / "playbook.yml"

    @property
    def packages(self) -> Path:
        return self.folder / "packages"


class NothingToDo(Exception):
    """Every host is already at its target (or unreachable): no rollout was started."""


class Fleet:
    """A session: an inventory, a state directory (journal, caches, keys) and a catalog,
    opened once for many calls. Thread-safe as the state database is."""

    def __init__(self, inventory: Path | None = None, state_dir: Path | None = None,
                 packages: Path | None = None, *, host_key_policy: str | None = None,
                 connect_timeout: float = 5.0, registry_ttl: float = 300.0,
                 vault_password_file: Path | None = None) -> None:
        if host_key_policy is not None:
            check_policy({}, host_key_policy)
        self.inventory_path = inventory
        self.vault_password_file = vault_password_file
        self.packages_path = packages
        self.host_key_policy = host_key_policy
        self.connect_timeout = connect_timeout
        self.registry_ttl = registry_ttl
        self.state_dir = state_dir or default_state_dir()
        self._listeners: list[Listener] = []

    # -- the session's inputs ------------------------------------------------------------------

    @cached_property
    def db(self) -> StateDB:
        """The state database (made, private, on first use)."""
        return StateDB(self.state_dir)

    @cached_property
    def journal(self) -> Journal:
        journal = Journal(self.db)
        journal.listeners = self._listeners     # subscribers before and after, one list
        tracer = tracer_from_environment(journal.get)      # OTEL_EXPORTER_OTLP_ENDPOINT
        if tracer is not None:
            self.subscribe(tracer)
            atexit.register(tracer.close)
        return journal

    @cached_property
    def inventory(self) -> Inventory:
        """The inventory, its vaulted parts opened with the vault password file (given,
        else ``$FLEETCTL_VAULT_PASSWORD_FILE`` or ``$ANSIBLE_VAULT_PASSWORD_FILE``)."""
        return load_inventory(self.inventory_path, load_vault(self.vault_password_file))

    @cached_property
    def catalog(self) -> Catalog:
        from fleetctl.catalog.packages import default_catalog_dir

        return load_catalog(self.packages_path or default_catalog_dir())

    def hosts(self, selection: Selection) -> list[Host]:
        """The inventory hosts a selection names (facts selectors not applied)."""
        return self.inventory.select(selection.limit, selection.group)

    def ansible_inventory(self, selection: Selection, *, redact: bool = False) -> dict:
        """The selected hosts as ``ansible-inventory --list`` prints them (secret-looking
        values as ``***`` with ``redact``)."""
        names = [h.name for h in self.hosts(selection)]
        return ansible_list(self.inventory, names, redact_vars if redact else dict)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Send every journal event to ``listener``; returns the call that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- facts ---------------------------------------------------------------------------------

    def probe(self, selection: Selection, *, refresh: bool = False, max_age: float = 300.0,
              on_result: Callable[[ProbeResult], None] = lambda _: None
              ) -> list[ProbeResult]:
        """Facts of the selected hosts (cached when fresh, probed otherwise), filtered by
        the selection's fact selectors; hosts that did not answer are kept, last."""
        selectors = [parse_where(w) for w in selection.where]
        results = probe_hosts(self.hosts(selection), self.db, refresh=refresh,
                              max_age=max_age, timeout=self.connect_timeout,
                              policy_override=self.host_key_policy, on_result=on_result)
        if not selectors:
            return results
        matched = select_by_facts(results, selectors)
        if not matched:
            raise InputError(f"--where {' '.join(selection.where)} matches none of the "
                             f"{len(results)} selected hosts that answered")
        return matched + [r for r in results if not r.ok]

    def audit(self, selection: Selection, rules: Path | None = None, *,
              refresh: bool = False, max_age: float = 300.0, os: bool = False,
              on_result: Callable[[ProbeResult], None] = lambda _: None) -> Audit:
        """Probe and judge: a row per host, totals, and findings (rules, drift from what
        the journal last left on each host); ``os``: also each Jetson's boot slots,
        firmware and update state (a second round trip), unfinished updates as
        findings."""
        checks = audits.load_rules(rules)
        results = self.probe(selection, refresh=refresh, max_age=max_age, on_result=on_result)
        rows = [audits.row(r) for r in results]
        found = audits.findings(results, checks, self.journal.last_known())
        if os:
            jetsons = [r for r in results if r.facts and r.facts.is_jetson]
            states = probe_os([r.host for r in jetsons], self.db, timeout=self.connect_timeout,
                              policy_override=self.host_key_policy)
            by_name = {row["host"]: row for row in rows}
            for result in jetsons:
                assert result.facts is not None
                os_facts, error = states[result.host.name]
                if os_facts is None:
                    by_name[result.host.name]["os_state"] = f"unknown: {error}"
                    continue
                by_name[result.host.name].update(audits.os_columns(result.facts, os_facts))
                found += [audits.Finding(result.host.name, "os", problem)
                          for problem in audits.os_problems(result.facts, os_facts)]
        return Audit(results, rows, audits.summary(results), found)

    def fleet_status(self, selection: Selection, *,
                     on_result: Callable[[HostStatus], None] = lambda _: None
                     ) -> list[HostStatus]:
        """How each selected host's apps and device are doing now: one SSH round trip
        per host (its health checks over the same connection)."""
        return fleet_status(self.hosts(selection), self.catalog, self.db,
                            policy=self.host_key_policy, timeout=self.connect_timeout,
                            analyses=self.journal.last_analyses(), on_result=on_result)

    def status_exposition(self, statuses: list[HostStatus]) -> str:
        """``statuses`` and the latest rollout (hosts by phase, analysis verdicts) in
        Prometheus's text exposition format."""
        from fleetctl.telemetry.prometheus import exposition

        latest = next(iter(self.journal.list(1)), None)
        verdicts = {}
        for event in self.journal.events(latest.id) if latest else []:
            if event["phase"] == "analysed":
                verdicts[(event["host"], event["package"])] = event["detail"].partition(":")[0]
        return exposition(statuses, latest, verdicts)

    # -- plans ---------------------------------------------------------------------------------

    def os_plan(self, target: str, selection: Selection, *,
                payload: Path | None = None, requests: list[str] | None = None,
                catalog: Catalog | None = None,
                on_result: Callable[[ProbeResult], None] = lambda _: None) -> OSPlan:
        """Per selected host, the way to L4T ``target`` (apt, image-based or blocked, with
        the reasons), its apps planned again for the new release (and ``requests``, a
        playbook's packages, as asked); ``payload``: the image-based OTA payload.
        :meth:`OSPlan.rollout_plan` is what :meth:`deploy` runs (with ``payload`` in
        the options)."""
        from fleetctl.osupdate.payload import read_payload

        try:
            release(target)
        except ValueError as exc:
            raise InputError(f"--to: {exc}") from None
        catalog = catalog or self.catalog
        wanted = [parse_request(r) for r in requests or []]
        catalog.resolve(wanted)
        results = self.probe(selection.required(), refresh=True, on_result=on_result)
        states = probe_os([r.host for r in results if r.ok], self.db,
                          timeout=self.connect_timeout, policy_override=self.host_key_policy)
        return plan_os(target, [(r, *states.get(r.host.name, (None, None))) for r in results],
                       catalog, self.db, ttl=self.registry_ttl,
                       payload=read_payload(payload) if payload else None, requests=wanted)

    def plan(self, requests: list[str], selection: Selection, *, refresh: bool = True,
             max_age: float = 0.0, catalog: Catalog | None = None,
             offline: dict[str, list[PlatformImage]] | None = None,
             on_result: Callable[[ProbeResult], None] = lambda _: None) -> Plan:
        """Probe the selected hosts and decide per host which image each package runs;
        ``offline``: the images to choose from instead of the registries'."""
        selection.required()
        catalog = catalog or self.catalog
        wanted = [parse_request(r) for r in requests]
        catalog.resolve(wanted)         # a bad request fails before any host is probed
        results = self.probe(selection, refresh=refresh, max_age=max_age, on_result=on_result)
        return plan_hosts(catalog, wanted, results, self.db, ttl=self.registry_ttl,
                          offline=offline)

    def read_plan(self, path: Path, request: str) -> Plan:
        """A plan file for ``request``, refused when a tag it saw has moved since."""
        plan = Plan.read(path)
        if plan.requests != [request]:
            raise InputError(f"{path} plans {' '.join(plan.requests)}, not {request}")
        clients: dict[str, RegistryClient] = {}
        for key, seen in plan.registry.items():
            at = TagKey.parse(key)
            client = clients.setdefault(at.registry,
                                        RegistryClient(at.registry, self.db, ttl=0))
            now = {i.arch: i.digest for i in client.images(at.repository, at.tag)}
            if now.get(at.arch) != seen["digest"]:
                raise InputError(f"{path} is stale: {at.repository}:{at.tag} ({at.arch}) now "
                                 f"points at {now.get(at.arch) or 'nothing'}, the plan has "
                                 f"{seen['digest']}; plan again")
        return plan

    def playbook_plan(self, book: Playbook, *, packages: Path | None = None,
                      offline: dict[str, list[PlatformImage]] | None = None,
                      on_result: Callable[[ProbeResult], None] = lambda _: None
                      ) -> tuple[Plan, Catalog]:
        """Probe a playbook's targets afresh and plan its packages (with its overrides
        checked against the catalog); with ``os:``, its L4T update and then the apps."""
        catalog = load_catalog(packages) if packages else self.catalog
        book.apply(catalog)     # an override naming a package not in the catalog fails now
        selection = Selection(book.group, book.pattern, book.where)
        if book.os_target:
            if offline is not None:
                raise InputError(f"{book.path}: an OS update cannot run from a bundle yet")
            return self.os_plan(book.os_target, selection, requests=book.requests,
                                payload=book.os_payload, catalog=catalog,
                                on_result=on_result).rollout_plan(), catalog
        plan = self.plan(book.requests, selection, catalog=catalog, offline=offline,
                         on_result=on_result)
        return plan, catalog

    # -- bundles -------------------------------------------------------------------------------

    def create_bundle(self, book: Playbook, out: Path, sign_key: Path, *,
                      channel: str = "default", sequence: int | None = None,
                      expires: str | float = "90d",
                      on_result: Callable[[ProbeResult], None] = lambda _: None
                      ) -> BundleManifest:
        """Plan a playbook and write one signed file with the plan, its packages and
        every image blob it needs (each once, checked against its digest)."""
        from fleetctl.catalog.registry import blob_fetcher
        from fleetctl.delivery.bundle import contents_for, create
        from fleetctl.delivery.bundle_manifest import check_channel

        key = load_private_key(sign_key)
        check_channel(channel)
        lifetime = duration_option(expires, "--expires")
        playbook = book.path
        plan, catalog = self.playbook_plan(book, on_result=on_result)
        entries = [e for e in plan.entries if not e.blocked and e.target]
        if not entries:
            raise InputError(f"{playbook}: no host can take any of its packages; nothing to "
                             f"bundle (see 'fleetctl run {playbook} --check')")
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        contents = contents_for(
            playbook, plan.to_json(), [catalog.get(p).path for p in plan.packages],
            [e.target for e in entries], book.name, channel,
            int(now.timestamp()) if sequence is None else sequence,
            now + dt.timedelta(seconds=lifetime or 0))
        return create(out, contents, blob_fetcher(self.db), key)

    def verify_bundle(self, path: Path, trust: list[Path], allow_downgrade: bool = False
                      ) -> tuple[Verified, str | None]:
        """Check a bundle (signature by a trusted key, every member, channel sequence and
        expiry) without unpacking it; (what was verified, a note when a downgrade was
        allowed)."""
        from fleetctl.delivery.bundle import check_fresh, verify
        from fleetctl.delivery.keys import trusted_keys

        checked = verify(path, trusted_keys(trust, self.state_dir))
        return checked, check_fresh(self.db, checked, allow_downgrade)

    def open_bundle(self, path: Path, trust: list[Path], allow_downgrade: bool
                    ) -> OpenedBundle:
        """Verify a bundle (signature by a trusted key, every member, its channel's
        sequence and expiry) while unpacking it into the state dir, and record it as
        accepted. Nothing else is touched before this succeeds."""
        from fleetctl.delivery.bundle import BundleError, accept, check_fresh, verify
        from fleetctl.delivery.keys import trusted_keys
        from fleetctl.statedir import private_dir

        try:
            with path.open("rb") as f:  # its manifest comes first: this names the bundle
                name = hashlib.sha256(f.read(1 << 20)).hexdigest()[:16]
        except OSError as exc:
            raise BundleError(f"{path}: {exc.strerror}") from None
        folder = private_dir(self.state_dir / "bundles") / name
        checked = verify(path, trusted_keys(trust, self.state_dir),
                         (folder, self.state_dir / "blobs"))
        note = check_fresh(self.db, checked, allow_downgrade)
        accept(self.db, checked)
        plan_doc = json.loads((folder / "plan.json").read_text())
        return OpenedBundle(checked.signed_by, checked.manifest.channel,
                            checked.manifest.sequence, note, folder,
                            checked.platform_images(plan_doc))

    # -- rollouts ------------------------------------------------------------------------------

    def options(self, **written: Any) -> Options:
        """Rollout options from the values a person writes (``1,50%,100%``, ``5m``), each
        checked (:func:`fleetctl.rollout.context.written_options` names them); InputError
        naming the option otherwise."""
        return written_options(connect_timeout=self.connect_timeout, **written)

    def playbook_options(self, book: Playbook, *, ignore_window: bool = False,
                         bundle: OpenedBundle | None = None, **flags: Any) -> Options:
        """A playbook's strategy and window as rollout options (``flags``: delivery,
        via_seed, stage_only, break_lock); FleetError, exit 5, when its window is
        closed."""
        window = book.window.to_json() if book.window and not ignore_window and \
            not flags.get("stage_only") else None
        closed = window_closed(window)
        if closed:
            raise FleetError(f"{book.path}: {closed}; run it then, or pass --ignore-window",
                             exit_code=WINDOW_CLOSED)
        return self.options(
            steps=list(book.steps), canaries=list(book.canary), pause=book.pause,
            max_failures=book.max_failures, failure_scope=book.failure_scope,
            unreachable=book.unreachable, gate_timeout=book.gate_timeout, keep=book.keep,
            rollback_all=book.rollback_all, window=window,
            **({"reboot_timeout": book.reboot_timeout} if book.reboot_timeout else {}),
            payload=str(book.os_payload) if book.os_payload else None,
            playbook={"path": str(book.path.resolve()), "sha256": book.sha256},
            bundle=str(bundle.folder) if bundle else None, **flags)

    @staticmethod
    def check_plan(plan: Plan, allow_downgrade: bool = False) -> bool:
        """Whether the plan changes any host (:func:`fleetctl.plan.check_plan`)."""
        return check_plan(plan, allow_downgrade)

    def deploy(self, plan: Plan, options: Options, *, allow_downgrade: bool = False
               ) -> RolloutRecord:
        """Roll a plan out; the journal record at its end (completed, failed, paused,
        incomplete). NothingToDo when every host is at its target; the errors of
        :meth:`check_plan` otherwise."""
        if not self.check_plan(plan, allow_downgrade):
            raise NothingToDo()
        from fleetctl.rollout import engine as rollout

        ctx = self._context()
        return self._done(rollout.run(ctx, rollout.start(ctx, new_rollout_id(), plan,
                                                          options)))

    def resume(self, rollout_id: str) -> RolloutRecord:
        """Continue an interrupted, paused (also: promote) or incomplete rollout."""
        from fleetctl.rollout import engine as rollout

        return self._done(rollout.resume(self._context(), rollout_id))

    promote = resume

    def rollback(self, rollout_id: str) -> RolloutRecord:
        """Undo a rollout on every host it touched (what each ran before, no pulls)."""
        from fleetctl.rollout import engine as rollout

        return self._done(rollout.rollback_rollout(self._context(), rollout_id))

    def rollback_package(self, package: str, selection: Selection, *, to: str | None = None,
                         gate_timeout: str | float | None = None,
                         break_lock: bool = False) -> RolloutRecord:
        """Put a package back to its previous release (or ``to``) on the selected hosts."""
        from fleetctl.rollout.rollback import rollback_package

        ctx = self._context()
        hosts = [h.name for h in self.hosts(selection.required())]
        return self._done(rollback_package(ctx, ctx.catalog.get(package), hosts, to,
                                           duration_option(gate_timeout, "--gate-timeout"),
                                           break_lock, self.connect_timeout))

    def status(self, rollout_id: str) -> RolloutRecord:
        return self.journal.get(rollout_id)

    def rollouts(self, limit: int = 20) -> list[RolloutRecord]:
        return self.journal.list(limit)

    def history(self, package: str | None = None, host: str | None = None
                ) -> list[dict[str, Any]]:
        return self.journal.history(package, host)

    def _context(self) -> Context:
        return Context(self.journal, self.db, self.catalog, self.inventory.hosts,
                       self.host_key_policy)

    def _done(self, record: RolloutRecord) -> RolloutRecord:
        """Hosts a rollout touched are probed afresh next time."""
        self.db.forget_facts(sorted({s.host for s in record.hosts}))
        return record

