"""One host's L4T (OS) update, the first entry of its host step in an ``os upgrade``
rollout: lock, preflight (live), stage, activate, reboot, wait for SSH, verify. The
host's apps follow as ordinary entries of the same host step, on the new release.

- **apt**: stage downloads the packages, activate installs them. There is no way back
  (bootloader rollback protection from R36.4): a host that fails after its install
  stays failed, with what to do; the failure policy stops the rollout.
- **image**: stage sends the payload (resumable, its sha256 checked on the host) and
  runs ``nv_ota_start.sh``, which writes the other rootfs slot; activate makes that
  slot the next boot's. After the reboot the L4T entry is ``booted`` until the host's
  apps are done: it commits then, or, when the new slot did not verify or an app
  failed, the host goes back to its old slot (``reverted``), where its old apps are.
"""

from __future__ import annotations

from pathlib import Path

from fleetctl import device
from fleetctl.delivery.images import STAGING, send_blob, staged_bytes
from fleetctl.device import StepFailed
from fleetctl.digest import parse_digest
from fleetctl.facts.hostfacts import HostFacts
from fleetctl.facts.osfacts import OS_SCRIPT, OSFacts, parse_os_facts
from fleetctl.osupdate.paths import os_path
from fleetctl.osupdate.plan import OS_PACKAGE
from fleetctl.osupdate.verify import update_problems
from fleetctl.plan import PlanEntry
from fleetctl.rollout.audit import fail, finish, write_audit
from fleetctl.rollout.context import Context, Options, connect_host, live_facts, run_parsed
from fleetctl.rollout.journal import HostState, RolloutRecord, operator
from fleetctl.ssh import Connection, SSHFailure

#: how often a rebooting host is tried again
REBOOT_POLL = 1.0
#: the host variable naming NVIDIA's nv_ota_start.sh on the host
OTA_START_VAR = "fleetctl_nv_ota_start"


def read_os(conn: Connection) -> OSFacts:
    """The host's OS-update state right now (``os.sh``)."""
    return run_parsed(conn, OS_SCRIPT, parse_os_facts)


def update_l4t(ctx: Context, conn: Connection | None, record: RolloutRecord,
               options: Options, entry: PlanEntry, state: HostState
               ) -> tuple[str, Connection | None]:
    """Take the host to the entry's L4T release from wherever the journal says it is
    (``conn`` is None only while it reboots); (outcome, the connection to go on with: a
    new one after the reboot, None when the host did not come back)."""
    journal, rid, host = ctx.journal, record.id, entry.host
    target = entry.version or ""
    if state.phase in ("pending", "deferred"):
        assert conn is not None
        holder = device.lock(conn, OS_PACKAGE, rid, operator(), options.break_lock)
        facts, os = live_facts(conn), read_os(conn)
        journal.set_host(rid, host, OS_PACKAGE, "locked",
                         f"device lock taken{f' (broke {holder})' if holder else ''}",
                         from_version=facts.l4t, from_release=os.bootloader_slot, error=None)
        locked = ctx.journal.host_state(rid, host, OS_PACKAGE)   # with from_version/_release
        assert locked is not None
        state = locked
        path = os_path(host, facts, os, target)
        if path.kind == "current":
            finish(ctx, conn, record, state, "noop", f"already on R{target}")
            return "noop", conn
        if path.kind != entry.source:
            why = "; ".join(path.reasons) or f"the way is now {path.kind}"
            return fail(ctx, conn, record, state, f"preflight: {why}"), conn
    if state.phase == "locked":
        assert conn is not None
        try:
            detail = _stage(ctx, conn, options, entry)
        except StepFailed as exc:
            return fail(ctx, conn, record, state, f"stage: {exc}; nothing changed on the "
                        f"host (its running slot, release and apt source are as they "
                        f"were)"), conn
        if options.stage_only:
            finish(ctx, conn, record, state, "ready", detail)
            return "ready", conn
        journal.set_host(rid, host, OS_PACKAGE, "staged", detail)
        state.phase = "staged"
    if state.phase == "staged":
        assert conn is not None
        outcome = _activate(ctx, conn, record, entry, state)
        if outcome:
            return outcome, conn
        state.phase = "activated"
    if state.phase == "activated":
        assert conn is not None
        device.reboot(conn, OS_PACKAGE)
        journal.set_host(rid, host, OS_PACKAGE, "rebooting",
                         f"waiting up to {options.reboot_timeout:.0f}s for it to answer again")
        state.phase = "rebooting"
        conn.close()
        conn = None
    if state.phase == "reverting":
        return _back_on_old_slot(ctx, conn, record, options, state, "reverted",
                                 state.error or "")
    if state.phase == "booted":         # a resume after the reboot and the checks
        return "booted", conn or connect_host(ctx, host, options.connect_timeout)
    back = _wait_for_boot(ctx, host, options, conn)
    if back is None:
        journal.set_host(rid, host, OS_PACKAGE, "failed", error=(
            f"did not come back within {options.reboot_timeout:.0f}s of its reboot: its "
            f"state is unknown (its device lock stays); power it on or check its console, "
            f"then 'fleetctl audit --os --limit {host}' shows where it is"))
        return "failed", None
    return _verify(ctx, back, record, options, entry, state)


def _stage(ctx: Context, conn: Connection, options: Options, entry: PlanEntry) -> str:
    """Stage the update; what was done (StepFailed: nothing changed)."""
    target = entry.version or ""
    if entry.source == "apt":
        staged = device.stage_apt(conn, OS_PACKAGE, target)
        return f"nvidia-l4t-* {staged} downloaded over apt; nothing installed"
    if not options.payload or entry.digest is None:
        raise StepFailed("image-based: the rollout has no OTA payload (--payload)")
    digest = parse_digest(entry.digest, "plan: l4t digest")
    have = staged_bytes(conn, digest)
    sent = send_blob(conn, Path(options.payload), digest, have, ctx.site_limit(entry.site))
    ota_start = str(ctx.hosts[entry.host].vars.get(OTA_START_VAR, "nv_ota_start.sh"))
    slot = device.stage_image(conn, OS_PACKAGE, STAGING, digest.hex, ota_start)
    resumed = f", resumed after {have:,} bytes" if have and sent else ""
    return (f"payload {digest[:19]} on the host ({sent:,} bytes sent{resumed}); "
            f"nv_ota_start.sh wrote slot {'AB'[slot]}, which boots only once activated")


def _activate(ctx: Context, conn: Connection, record: RolloutRecord, entry: PlanEntry,
              state: HostState) -> str | None:
    """Install (apt) or arm the new slot (image); an outcome when that failed."""
    journal, rid, host, target = ctx.journal, record.id, entry.host, entry.version or ""
    if entry.source == "image":
        new = _other(state.from_release)
        device.next_slot(conn, OS_PACKAGE, new)
        journal.set_host(rid, host, OS_PACKAGE, "activated",
                         f"slot {new} boots next (R{target})")
        return None
    try:
        installed = device.install_apt(conn, OS_PACKAGE, target)
    except StepFailed as exc:
        error = (f"install: {exc}; the host is between R{state.from_version} and "
                 f"R{target} and apt has no way back: run 'dpkg --configure -a' on it and "
                 f"'apt-get dist-upgrade', then 'fleetctl audit --os'; or reflash it")
        journal.set_host(rid, host, OS_PACKAGE, "failed", error=error)
        write_audit(ctx, conn, record, state, f"failed ({error})")
        return "failed"
    journal.set_host(rid, host, OS_PACKAGE, "activated",
                     f"nvidia-l4t-core {installed} installed; the bootloader capsule "
                     f"applies at the reboot")
    return None


def _verify(ctx: Context, conn: Connection, record: RolloutRecord, options: Options,
            entry: PlanEntry, state: HostState) -> tuple[str, Connection | None]:
    """Check the host after its reboot: apt commits; image is ``booted`` (its apps next),
    or goes back to its old slot."""
    target = entry.version or ""
    facts, os = live_facts(conn), read_os(conn)
    problems = update_problems(target, facts, os)
    if entry.source == "apt":
        if problems:
            return fail(ctx, conn, record, state, "after the reboot: " +
                        "; ".join(problems)), conn
        finish(ctx, conn, record, state, "committed",
               _on(facts, os, f"over apt from R{state.from_version}"))
        return "committed", conn
    old, slots = state.from_release, ", ".join(f"slot {n}: {s}" for n, s in
                                                sorted(os.slots.items()))
    if os.bootloader_slot == old:       # the new slot did not boot: the bootloader fell back
        error = (f"slot {_other(old)} did not boot: the bootloader went back to slot {old} "
                 f"(R{facts.l4t}; {slots}); the host runs what it ran before")
        ctx.journal.set_host(record.id, state.host, OS_PACKAGE, "reverted", error=error)
        write_audit(ctx, conn, record, state, f"reverted ({error})")
        return "reverted", conn
    if problems:
        return _back_on_old_slot(ctx, conn, record, options, state, "reverted",
                                 "after the reboot: " + "; ".join(problems))
    ctx.journal.set_host(record.id, state.host, OS_PACKAGE, "booted",
                         _on(facts, os, f"on slot {os.bootloader_slot} (from slot {old}, "
                                        f"R{state.from_version}); its apps next"))
    return "booted", conn


def _on(facts: HostFacts, os: OSFacts, how: str) -> str:
    return (f"R{facts.l4t} {how}; firmware R{os.fw_version or '-'}; Docker and the nvidia "
            f"runtime up")


def finish_l4t(ctx: Context, conn: Connection | None, record: RolloutRecord,
               options: Options, host: str, failed: str | None) -> Connection | None:
    """After the host's apps: a ``booted`` update commits, or (``failed``: which app, how)
    goes back to the old slot, where the old apps are."""
    state = ctx.journal.host_state(record.id, host, OS_PACKAGE)
    if state is None or state.phase != "booted":
        return conn
    conn = conn or connect_host(ctx, host, options.connect_timeout)
    if failed is None:
        finish(ctx, conn, record, state, "committed", f"R{state.to_version} and its apps "
               f"verified on slot {_other(state.from_release)}")
        return conn
    _, conn = _back_on_old_slot(ctx, conn, record, options, state, "reverted",
                                f"{failed} on R{state.to_version}")
    return conn


def _back_on_old_slot(ctx: Context, conn: Connection | None, record: RolloutRecord,
                      options: Options, state: HostState, phase: str, error: str
                      ) -> tuple[str, Connection | None]:
    """Boot the host's old slot again and check it is back on its old release."""
    journal, host, old = ctx.journal, state.host, state.from_release or "A"
    if state.phase != "reverting":
        journal.set_host(record.id, host, OS_PACKAGE, "reverting", f"back to slot {old}",
                         error=error)
        state.phase = "reverting"
        assert conn is not None
        device.next_slot(conn, OS_PACKAGE, old)
        device.reboot(conn, OS_PACKAGE)
        conn.close()
        conn = None
    back = _wait_for_boot(ctx, host, options, conn)
    if back is None:
        journal.set_host(record.id, host, OS_PACKAGE, "revert-failed", error=(
            f"{error}; did not come back within {options.reboot_timeout:.0f}s of the "
            f"switch back to slot {old}"))
        return "revert-failed", None
    facts, os = live_facts(back), read_os(back)
    if os.bootloader_slot != old or facts.l4t != state.from_version:
        journal.set_host(record.id, host, OS_PACKAGE, "revert-failed", error=(
            f"{error}; after the switch back it runs slot {os.bootloader_slot}, "
            f"R{facts.l4t}, not slot {old}, R{state.from_version}"))
        return "revert-failed", back
    journal.set_host(record.id, host, OS_PACKAGE, phase,
                     f"back on slot {old}, R{facts.l4t}, with what it ran before",
                     error=error)
    write_audit(ctx, back, record, state, f"{phase} ({error})")
    return phase, back


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


def _other(slot: str | None) -> str:
    return "A" if slot == "B" else "B"


def undo_l4t(ctx: Context, conn: Connection, record: RolloutRecord, options: Options,
             state: HostState) -> Connection | None:
    """Undo what can be undone of a host's L4T update: a stage (apt: the source back;
    image: nothing boots it), an image-based update (the old slot again); an apt
    install cannot be undone, which the journal says."""
    journal = ctx.journal
    image = state.to_digest is not None         # the payload's digest
    if state.phase in ("locked", "staged", "ready"):
        if not image:
            device.unstage_apt(conn, OS_PACKAGE)
        journal.set_host(record.id, state.host, OS_PACKAGE, "rolled-back",
                         f"nothing was installed; R{state.from_version} as it was")
        write_audit(ctx, conn, record, state, "rolled-back")
        return conn
    if image:
        _, back = _back_on_old_slot(ctx, conn, record, options, state, "rolled-back",
                                    "rolled back by the operator")
        return back
    journal.set_host(record.id, state.host, OS_PACKAGE, state.phase, error=(
        f"stays on R{state.to_version}: L4T has no way back over apt (bootloader "
        f"rollback protection); reflash the host to go back"))
    return conn
