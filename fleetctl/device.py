"""What fleetctl does on a device, one short POSIX sh script per step, over one
SSH connection per host.

On the device, each package lives under ``/opt/fleetctl/<package>/``::

    releases/<rollout id>/compose.yml   the rendered compose file of each release
    releases/<rollout id>/image         the pinned image it runs (name@digest)
    current -> releases/<id>            what runs; swapped atomically on commit
    previous -> releases/<id>           what ran before; rollback target
    lock/info                           the device lock: rollout id, owner, time
    audit.log                           one line per rollout result
    data/                               the package's data volume

Every step is idempotent: running it again after a crash does no harm.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass
from importlib import resources

from fleetctl.catalog.compose import RELEASES_ROOT
from fleetctl.facts.hostfacts import HostFacts
from fleetctl.shell import assignments
from fleetctl.ssh import Connection

PULL_TIMEOUT = 900.0
#: The step functions (``device.sh`` beside this module).
DEVICE_SCRIPT = (resources.files("fleetctl") / "device.sh").read_text()
_FUNCTION = re.compile(r"^([a-z_]+)\(\) \{")


def _functions(script: str) -> dict[str, str]:
    """The script's top-level shell functions by name, each from its ``name() {`` line
    to the ``}`` that closes it at the start of a line (or on the same line)."""
    found: dict[str, str] = {}
    name, lines = None, []
    for line in script.splitlines():
        start = _FUNCTION.match(line)
        if start:
            name, lines = start.group(1), []
        if name:
            lines.append(line)
            if line == "}" or (start and line.rstrip().endswith("}")):
                found[name], name = "\n".join(lines), None
    return found


#: the device script's functions by name
FUNCTIONS = _functions(DEVICE_SCRIPT)


def script_for(step: str) -> str:
    """What a step sends: ``do_<step>`` and the helpers it calls, not the whole
    file (every byte crosses the site's uplink, on each call)."""
    body = FUNCTIONS[f"do_{step}"]
    helpers = [text for name, text in FUNCTIONS.items()
               if not name.startswith("do_") and re.search(rf"\b{name}\b", body)]
    return "\n".join(["set -u", *helpers, body])


def run_step(conn: Connection, step: str, timeout: float = 60.0, **values: str) -> str:
    """Run ``do_<step>`` on the host with these variables; StepFailed if it fails."""
    result = conn.run(f"{script_for(step)}\n{assignments(values)}do_{step}\n",
                      command_timeout=timeout)
    if result.status != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise StepFailed(f"{step}: {lines[-1] if lines else f'exit {result.status}'}")
    return result.stdout


class StepFailed(Exception):
    """A step on the device failed; the message says what the device answered."""


@dataclass(frozen=True)
class ContainerState:
    """A container of the package's project, as Docker reports it."""

    name: str
    state: str
    health: str
    restarts: int
    release: str


def compose_command(facts: HostFacts) -> str:
    """``docker compose`` (v2 plugin) or the v1 binary the host has."""
    if facts.compose == "v2":
        return "docker compose"
    return facts.compose_path or "docker-compose"


def _call(conn: Connection, package: str, step: str, timeout: float = 60.0,
          **values: str) -> str:
    """A step of one package (its folder ``D`` and name ``P`` set)."""
    return run_step(conn, step, timeout, D=f"{RELEASES_ROOT}/{package}", P=package, **values)


def lock(conn: Connection, package: str, rollout: str, owner: str,
         break_lock: bool = False) -> str | None:
    """Take the device lock (``mkdir`` is atomic; the holder may take it again).
    Returns the holder it took over with ``break_lock``; StepFailed names the holder."""
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = _call(conn, package, "lock", INFO=f"rollout={rollout} owner={owner} since={since}",
                ID=rollout, BREAK="1" if break_lock else "0")
    return out.strip()[6:] if out.startswith("broke ") else None


def unlock(conn: Connection, package: str, rollout: str, audit_line: str) -> None:
    """Append to the device's audit log, then release the lock if this rollout holds it."""
    _call(conn, package, "unlock", LINE=audit_line, ID=rollout)


def stage(conn: Connection, package: str, release: str, compose_text: str, image: str,
          digest: str, config: str = "") -> bool:
    """Write the release folder atomically, pull the image by digest and check the
    digest. Nothing running changes. True when a pull was needed. With ``config``
    the image was delivered over SSH: never pulled, its id must be ``config``."""
    out = _call(conn, package, "stage", PULL_TIMEOUT, REL=release, IMAGE=image, DIGEST=digest,
                CONFIG=config, COMPOSE=base64.b64encode(compose_text.encode()).decode())
    return "pulled" in out


def activate(conn: Connection, package: str, release: str, compose: str) -> None:
    """``up -d`` the release as the package's project, then check that every container
    of the project is this release's (compose v1's exit code is not enough)."""
    _call(conn, package, "activate", 300, REL=release, COMPOSE_CMD=compose)


def containers(conn: Connection, package: str) -> list[ContainerState]:
    """The project's containers with state, health and restart count."""
    result = []
    for line in _call(conn, package, "containers").splitlines():
        parts = line.split("|")
        if len(parts) == 5:
            name, state, health, restarts, release = parts
            result.append(ContainerState(name.lstrip("/"), state, health,
                                         int(restarts or 0), release))
    return result


@dataclass(frozen=True)
class ContainerUsage:
    """A running container's memory (MiB) and CPU (% of one core), from docker stats."""

    name: str
    memory_mb: float
    cpu_percent: float


_MEMORY = re.compile(r"^\s*([\d.]+)\s*([KMGT]?i?B)\s*/")
_MEMORY_UNITS = {"B": 2**-20, "KiB": 2**-10, "MiB": 1, "GiB": 2**10, "TiB": 2**20,
                 "kB": 1e3 / 2**20, "KB": 1e3 / 2**20, "MB": 1e6 / 2**20, "GB": 1e9 / 2**20,
                 "TB": 1e12 / 2**20}


def stats(conn: Connection, package: str) -> list[ContainerUsage]:
    """Memory and CPU of the project's running containers (``docker stats``, which
    takes a second or two on the device: it measures CPU over an interval). Lines the
    device answers in another shape are left out."""
    result = []
    for line in _call(conn, package, "stats").splitlines():
        name, _, rest = line.partition("|")
        memory, _, cpu = rest.partition("|")
        match = _MEMORY.match(memory)
        try:
            percent = float(cpu.strip().rstrip("%"))
        except ValueError:
            continue
        if match and match[2] in _MEMORY_UNITS:
            result.append(ContainerUsage(name.lstrip("/"),
                                         float(match[1]) * _MEMORY_UNITS[match[2]], percent))
    return result


def tegrastats(conn: Connection) -> str | None:
    """One line of the host's ``tegrastats`` (about a second: it prints after its
    interval), or None when the host has none."""
    line = run_step(conn, "tegrastats", 10.0).strip()
    return None if line == "missing" else line


def run_check(conn: Connection, package: str, command: str) -> tuple[bool, str]:
    """Run a health command inside the package's first running container."""
    try:
        out = _call(conn, package, "check", CMD=command)
    except StepFailed as exc:
        return False, str(exc)
    return True, out.strip().splitlines()[-1] if out.strip() else "ok"


def commit(conn: Connection, package: str, release: str, keep: int) -> str | None:
    """Make the release current (atomic symlink swap), keep the one before as
    ``previous`` with a stopped keeper container pinning its image against pruning,
    delete releases beyond the last ``keep``. Returns the previous release id."""
    out = _call(conn, package, "commit", REL=release, KEEP=str(keep))
    return out.strip().rpartition("previous=")[2] or None


def releases(conn: Connection, package: str) -> tuple[str | None, str | None, dict[str, str]]:
    """(current, previous, {release: image}) on the device."""
    current = previous = None
    found: dict[str, str] = {}
    for line in _call(conn, package, "releases").splitlines():
        key, _, value = line.partition("=")
        if key == "current":
            current = value or None
        elif key == "previous":
            previous = value or None
        elif key == "release":
            name, _, image = value.partition(" ")
            found[name] = image
    return current, previous, found


def switch_to(conn: Connection, package: str, release: str | None, compose: str,
              make_current: bool) -> None:
    """Run an earlier release again from its own compose file, without pulling (its
    image must still be on the device); ``release=None`` removes the project (nothing
    ran before). ``make_current`` also points ``current`` at it."""
    flag = "1" if make_current else "0"
    if release is None:
        _call(conn, package, "remove", CURRENT=flag)
    else:
        _call(conn, package, "switch", 300, REL=release, COMPOSE_CMD=compose, CURRENT=flag)


# -- L4T (OS) updates --------------------------------------------------------------------------

APT_TIMEOUT = 1800.0


def apt_pin(target: str) -> str:
    """The apt pin's version regex for the packages of L4T ``target``: ``36.4.3-…`` and
    the kernel's ``5.15.148-tegra-36.4.3-…``."""
    return "/(^|-)" + re.escape(target).replace("\\.", "[.]") + "-/"


def stage_apt(conn: Connection, package: str, target: str) -> str:
    """Point NVIDIA's apt source at the target's ``rXX.Y``, hold the ``nvidia-l4t-*``
    packages at ``target``, ``apt-get update``, download the upgrade. Nothing installed;
    on failure the source and pin are back as they were. Returns the version staged."""
    major, minor = target.split(".")[:2]
    out = _call(conn, package, "os_stage_apt", APT_TIMEOUT, DIST=f"r{major}.{minor}",
                TARGET=target, PINV=apt_pin(target))
    return out.strip().rpartition("staged ")[2][:80]     # the device's word, capped


def unstage_apt(conn: Connection, package: str) -> None:
    """Undo a stage that was not installed: the apt source and pin as they were."""
    _call(conn, package, "os_unstage_apt", 300)


def install_apt(conn: Connection, package: str, target: str) -> str:
    """``apt-get dist-upgrade`` what was staged; StepFailed unless dpkg ends clean with
    ``nvidia-l4t-core`` at ``target``. Returns the version installed."""
    out = _call(conn, package, "os_install_apt", APT_TIMEOUT, TARGET=target)
    return out.strip().rpartition("installed ")[2][:80]


def reboot(conn: Connection, package: str) -> None:
    """Mark /run and reboot the host a second after this step answers."""
    _call(conn, package, "os_reboot")


def booted(conn: Connection, package: str) -> bool:
    """Whether the host booted since :func:`reboot` (its /run mark is gone)."""
    return _call(conn, package, "os_booted").strip() == "booted"


def stage_image(conn: Connection, package: str, staging: str, payload: str,
                ota_start: str) -> int:
    """Run ``nv_ota_start.sh`` on the payload staged as blob ``payload`` (its sha256 hex):
    it writes the other rootfs slot; the current slot stays the next boot's. Returns the
    slot written (0 or 1)."""
    out = _call(conn, package, "os_stage_image", APT_TIMEOUT, S=staging, H=payload,
                OTA_START=ota_start)
    written = out.strip().rpartition("written ")[2]
    if written not in ("0", "1"):
        raise StepFailed(f"os_stage_image: nv_ota_start.sh answered {out.strip()[:80]!r}")
    return int(written)


def next_slot(conn: Connection, package: str, slot: str) -> None:
    """Make rootfs slot ``A`` or ``B`` the one the next boot uses."""
    _call(conn, package, "os_next_slot", SLOT="0" if slot == "A" else "1")
