"""One host's L4T (OS) update, the first entry of its host step in an ``os upgrade``
rollout: lock, preflight (live), stage, install, reboot, wait for SSH, verify. The
host's apps follow as ordinary entries of the same host step, on the new release.

The apt way has no way back (bootloader rollback protection from R36.4): a host that
fails after its install stays failed, with what to do, and the failure policy stops
the rollout. What is undone is a stage that was not installed.
"""

from __future__ import annotations

from fleetctl import device
from fleetctl.device import StepFailed
from fleetctl.facts.hostfacts import ProbeOutputError
from fleetctl.facts.osfacts import OS_SCRIPT, OSFacts, parse_os_facts
from fleetctl.osupdate.paths import os_path
from fleetctl.osupdate.plan import OS_PACKAGE
from fleetctl.osupdate.verify import update_problems
from fleetctl.plan import PlanEntry
from fleetctl.rollout.audit import fail, finish, write_audit
from fleetctl.rollout.context import Context, Options, connect_host, live_facts
from fleetctl.rollout.journal import HostState, RolloutRecord, operator
from fleetctl.ssh import Connection, SSHFailure

#: how often a rebooting host is tried again
REBOOT_POLL = 1.0


def read_os(conn: Connection) -> OSFacts:
    """The host's OS-update state right now (``os.sh``)."""
    result = conn.run(OS_SCRIPT, command_timeout=60)
    try:
        return parse_os_facts(result.stdout)
    except ProbeOutputError as exc:
        raise SSHFailure("garbage output", str(exc)) from None


def update_l4t(ctx: Context, conn: Connection | None, record: RolloutRecord,
               options: Options, entry: PlanEntry, state: HostState
               ) -> tuple[str, Connection | None]:
    """Take the host to the entry's L4T release from wherever the journal says it is
    (``conn`` is None only while it reboots); (outcome, the connection to go on with: a
    new one after the reboot, None when the host did not come back)."""
    journal, rid, host = ctx.journal, record.id, entry.host
    target = entry.version or ""
    if state.phase != "rebooting":
        assert conn is not None
    if state.phase in ("pending", "deferred"):
        holder = device.lock(conn, OS_PACKAGE, rid, operator(), options.break_lock)
        facts, os = live_facts(conn), read_os(conn)
        journal.set_host(rid, host, OS_PACKAGE, "locked",
                         f"device lock taken{f' (broke {holder})' if holder else ''}",
                         from_version=facts.l4t, error=None)
        state = _state(ctx, rid, host)
        path = os_path(host, facts, os, target)
        if path.kind == "current":
            finish(ctx, conn, record, state, "noop", f"already on R{target}")
            return "noop", conn
        if path.kind != entry.source:
            why = "; ".join(path.reasons) or f"the way is now {path.kind}"
            return fail(ctx, conn, record, state, f"preflight: {why}"), conn
        if entry.source != "apt":
            return fail(ctx, conn, record, state, "image-based updates are not available "
                        "in this fleetctl yet; use apt within a major release"), conn
    if state.phase == "locked":
        try:
            staged = device.stage_apt(conn, OS_PACKAGE, target)
        except StepFailed as exc:
            return fail(ctx, conn, record, state, f"stage: {exc}; nothing was installed "
                        f"and NVIDIA's apt source is as it was"), conn
        detail = f"nvidia-l4t-* {staged} downloaded over apt; nothing installed"
        if options.stage_only:
            finish(ctx, conn, record, state, "ready", detail)
            return "ready", conn
        journal.set_host(rid, host, OS_PACKAGE, "staged", detail)
        state.phase = "staged"
    if state.phase == "staged":
        try:
            installed = device.install_apt(conn, OS_PACKAGE, target)
        except StepFailed as exc:
            error = (f"install: {exc}; the host is between R{state.from_version} and "
                     f"R{target} and apt has no way back: run 'dpkg --configure -a' on "
                     f"it and 'apt-get dist-upgrade', then 'fleetctl audit'; or reflash it")
            journal.set_host(rid, host, OS_PACKAGE, "failed", error=error)
            write_audit(ctx, conn, record, state, f"failed ({error})")
            return "failed", conn
        journal.set_host(rid, host, OS_PACKAGE, "activated",
                         f"nvidia-l4t-core {installed} installed; the bootloader capsule "
                         f"applies at the reboot")
        state.phase = "activated"
    if state.phase == "activated":
        device.reboot(conn, OS_PACKAGE)
        journal.set_host(rid, host, OS_PACKAGE, "rebooting",
                         f"waiting up to {options.reboot_timeout:.0f}s for it to answer again")
        state.phase = "rebooting"
        conn.close()
        conn = None
    back = _wait_for_boot(ctx, host, options, conn)
    if back is None:
        journal.set_host(rid, host, OS_PACKAGE, "failed", error=(
            f"did not come back within {options.reboot_timeout:.0f}s of its reboot: its "
            f"state is unknown (its device lock stays); power it on or check its console, "
            f"then 'fleetctl audit --limit {host}' shows where it is"))
        return "failed", None
    return _verify(ctx, back, record, state, target), back


def _verify(ctx: Context, conn: Connection, record: RolloutRecord, state: HostState,
            target: str) -> str:
    facts, os = live_facts(conn), read_os(conn)
    problems = update_problems(target, facts, os)
    if problems:
        return fail(ctx, conn, record, state, "after the reboot: " + "; ".join(problems))
    finish(ctx, conn, record, state, "committed",
           f"R{state.from_version} -> R{target} over apt; firmware R{os.fw_version or '-'}; "
           f"Docker and the nvidia runtime up")
    return "committed"


def _wait_for_boot(ctx: Context, host: str, options: Options,
                   conn: Connection | None) -> Connection | None:
    """A connection to ``host`` once it booted again, or None after the reboot
    timeout."""
    deadline = ctx.clock() + options.reboot_timeout
    while True:
        try:
            conn = conn or connect_host(ctx, host, options.connect_timeout)
            if device.booted(conn, OS_PACKAGE):
                return conn
        except (SSHFailure, StepFailed):
            pass
        if conn is not None:
            conn.close()
            conn = None
        if ctx.clock() >= deadline:
            return None
        ctx.sleep(REBOOT_POLL)


def _state(ctx: Context, rollout_id: str, host: str) -> HostState:
    return next(s for s in ctx.journal.get(rollout_id).hosts
                if s.host == host and s.package == OS_PACKAGE)


def undo_l4t(ctx: Context, conn: Connection, record: RolloutRecord, state: HostState) -> None:
    """Undo what can be undone of a host's L4T update: a stage (the apt source back);
    an install cannot be undone over apt, which the journal says."""
    journal = ctx.journal
    if state.phase in ("locked", "staged", "ready"):
        device.unstage_apt(conn, OS_PACKAGE)
        journal.set_host(record.id, state.host, OS_PACKAGE, "rolled-back",
                         f"nothing was installed; NVIDIA's apt source back at "
                         f"R{state.from_version}")
        write_audit(ctx, conn, record, state, "rolled-back")
        return
    journal.set_host(record.id, state.host, OS_PACKAGE, state.phase, error=(
        f"stays on R{state.to_version}: L4T has no way back over apt (bootloader "
        f"rollback protection); reflash the host to go back"))
