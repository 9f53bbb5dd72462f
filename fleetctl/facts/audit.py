"""The fleet audit: a row per host, a summary, and findings from rules. Pure functions.

Rules come from a YAML file (``--rules``) or the defaults::

    min_jetpack: "6.0"            # hosts on an older JetPack are flagged (default: none)
    require_nvidia_runtime: true  # Jetsons whose Docker lacks the nvidia runtime (default)
    min_free_disk: 2g             # free space on the Docker root (default 512m)
    drift: true                   # hosts not running what the rollout journal says (default)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from fleetctl.errors import InputError
from fleetctl.facts.hostfacts import HostFacts
from fleetctl.facts.osfacts import OSFacts
from fleetctl.facts.probe import ProbeResult
from fleetctl.sizes import parse_size
from fleetctl.yamlfile import Located, load_yaml

RULE_KEYS = {"min_jetpack", "require_nvidia_runtime", "min_free_disk", "drift"}


@dataclass(frozen=True)
class Rules:
    """What the audit checks on every host that answered."""

    min_jetpack: str | None = None
    require_nvidia_runtime: bool = True
    min_free_disk_mb: int | None = 512
    drift: bool = True


@dataclass(frozen=True)
class Finding:
    """One rule a host breaks."""

    host: str
    rule: str
    message: str


def load_rules(path: Path | None) -> Rules:
    """Rules from a YAML file (errors name the file and line), or the defaults."""
    if path is None:
        return Rules()
    doc = load_yaml(path)
    if doc is None:
        return Rules()
    if not isinstance(doc, Located):
        raise InputError(f"{path}:1: audit rules are a mapping, e.g. 'min_jetpack: \"6.0\"'")
    line = doc.line_of
    unknown = sorted(set(doc) - RULE_KEYS, key=str)
    if unknown:
        raise InputError(f"{path}:{line(unknown[0])}: unknown rule {unknown[0]!r}; rules: "
                         f"{', '.join(sorted(RULE_KEYS))}")
    rules = Rules()
    min_jetpack = doc.get("min_jetpack", rules.min_jetpack)
    if min_jetpack is not None:
        try:
            Version(str(min_jetpack))
        except InvalidVersion:
            raise InputError(f"{path}:{line('min_jetpack')}: min_jetpack: {min_jetpack!r} is "
                             "not a version like \"6.0\"") from None
    runtime = doc.get("require_nvidia_runtime", rules.require_nvidia_runtime)
    if not isinstance(runtime, bool):
        raise InputError(f"{path}:{line('require_nvidia_runtime')}: require_nvidia_runtime: "
                         "should be true or false")
    disk = doc.get("min_free_disk")
    try:
        disk_mb = parse_size(disk) // 2**20 if disk is not None else rules.min_free_disk_mb
    except ValueError as exc:
        raise InputError(f"{path}:{line('min_free_disk')}: min_free_disk: {exc}") from None
    drift = doc.get("drift", rules.drift)
    if not isinstance(drift, bool):
        raise InputError(f"{path}:{line('drift')}: drift: should be true or false")
    return Rules(str(min_jetpack) if min_jetpack is not None else None, runtime, disk_mb,
                 drift)


def row(result: ProbeResult) -> dict:
    """One host as the audit shows it (also its JSON and CSV form)."""
    host, f = result.host, result.facts
    base = {"host": host.name, "address": host.address,
            "status": "ok" if result.ok else "unreachable",
            "reason": None if result.ok else f"{result.error}: {result.detail}",
            "probed_at": result.probed_at, "cached": result.cached}
    if f is None:
        return base
    apps = sorted({f"{c.package}:{c.version}" if c.version else c.package
                   for c in f.containers if c.package and c.state == "running"})
    return {**base, "platform": f.platform, "l4t": f.l4t, "jetpack": f.jetpack,
            "cuda": f.cuda, "ubuntu": f.ubuntu, "model": f.model, "module": f.module_short,
            "part_number": f.part_number, "soc": f.soc, "arch": f.docker_arch or f.machine,
            "memory_mb": f.memory_total_mb, "disk_free_mb": f.disk_free_mb,
            "docker": f.docker_version if f.docker else (f.docker_error and "down") or None,
            "runtime": ("nvidia (default)" if f.default_runtime == "nvidia" else "nvidia")
            if f.nvidia_runtime else None,
            "compose": f.compose, "apps": apps}


def os_columns(facts: HostFacts, os: OSFacts) -> dict:
    """The OS-update columns of ``audit --os``: boot slots, firmware, and the host's
    update state (``ok``, or what is unfinished or does not match)."""
    slot = os.bootloader_slot or "-"
    if os.active_slot and os.active_slot != os.bootloader_slot:
        slot += f" (next {os.active_slot})"
    return {"slot": slot if os.bootloader_slot else None, "firmware": os.fw_version,
            "capsule_status": os.last_attempt_status, "l4t_core": os.l4t_core,
            "os_state": "; ".join(os_problems(facts, os)) or "ok"}


def os_problems(facts: HostFacts, os: OSFacts) -> list[str]:
    """What is unfinished or inconsistent in a host's OS: an update under way, dpkg
    unfinished, a capsule that failed, firmware or dpkg not matching the release."""
    problems = [{"apt-staged": "mid-update: NVIDIA's apt source moved by an unfinished "
                               "fleetctl os upgrade",
                 "reboot-pending": "mid-update: installed, reboot pending"}[w]
                for w in os.updating]
    if os.dpkg_broken:
        problems.append(f"dpkg unfinished: {os.dpkg_broken} (dpkg --audit)")
    if os.last_attempt_status not in (None, 0):
        problems.append(f"capsule failed (last_attempt_status {os.last_attempt_status})")
    problems += [f"slot {n} {status}" for n, status in sorted(os.slots.items())
                 if status != "normal"]
    if os.fw_version and facts.l4t and os.fw_version != facts.l4t:
        problems.append(f"firmware R{os.fw_version} but rootfs R{facts.l4t}")
    if os.l4t_core and facts.l4t and not os.l4t_core.startswith(f"{facts.l4t}-"):
        problems.append(f"dpkg nvidia-l4t-core {os.l4t_core} but nv_tegra_release "
                        f"R{facts.l4t}")
    return problems


def summary(results: list[ProbeResult]) -> dict:
    """Counts per JetPack and per module, and the hosts that did not answer."""
    answered = [r.facts for r in results if r.facts]
    return {
        "hosts": len(results),
        "answered": len(answered),
        "jetpack": dict(sorted(Counter(f.jetpack or f.platform for f in answered).items())),
        "module": dict(sorted(Counter(f.module_short or f.platform for f in answered).items())),
        "unreachable": {r.host.name: f"{r.error}: {r.detail}" for r in results if not r.ok},
    }


def findings(results: list[ProbeResult], rules: Rules,
             journal: dict[tuple[str, str], dict] | None = None) -> list[Finding]:
    """Every rule every answering host breaks. ``journal`` maps (host, package) to the
    digest the rollout journal last left there (:meth:`Journal.last_known`)."""
    found = []
    for result in results:
        f, name = result.facts, result.host.name
        if f is None:
            continue
        if rules.min_jetpack and f.is_jetson:
            current = (f.jetpack or "").split(" ")[0]
            if not current or Version(current) < Version(rules.min_jetpack):
                found.append(Finding(name, "min_jetpack", f"JetPack {current or 'unknown'} "
                                     f"(L4T {f.l4t}) is older than {rules.min_jetpack}"))
        if rules.require_nvidia_runtime and f.is_jetson:
            if not f.docker:
                reason = f.docker_error or "not installed"
                found.append(Finding(name, "require_nvidia_runtime",
                                     f"Docker is not running ({reason})"))
            elif not f.nvidia_runtime:
                found.append(Finding(name, "require_nvidia_runtime",
                                     "Docker has no nvidia runtime; install "
                                     "nvidia-container-toolkit"))
        if (rules.min_free_disk_mb is not None and f.disk_free_mb is not None
                and f.disk_free_mb < rules.min_free_disk_mb):
            found.append(Finding(name, "min_free_disk", f"{f.disk_free_mb} MiB free on "
                                 f"{f.docker_root}, below {rules.min_free_disk_mb} MiB"))
        if rules.drift and journal is not None:
            found.extend(drift(name, f, journal))
    return found


def drift(host: str, facts: HostFacts, journal: dict[tuple[str, str], dict]) -> list[Finding]:
    """Where the host differs from the journal: another digest, a package gone, or a
    fleetctl package the journal never deployed."""
    running = {c.package: c for c in facts.containers if c.package}
    found = []
    for (name, package), known in journal.items():
        if name != host:
            continue
        container = running.pop(package, None)
        want, rollout = known["digest"], known["rollout"]
        if container is None and want:
            found.append(Finding(host, "drift", f"{package} is not there; the journal has "
                                 f"{want[:19]} (rollout {rollout})"))
        elif container is not None and (want is None or container.digest != want):
            found.append(Finding(host, "drift", f"{package} runs "
                                 f"{(container.digest or container.image)[:19]}; the journal "
                                 f"has {(want or 'nothing')[:19]} (rollout {rollout})"))
    for package, container in running.items():
        found.append(Finding(host, "drift", f"{package} ({container.image}) was not deployed "
                             f"by this controller's journal"))
    return found
