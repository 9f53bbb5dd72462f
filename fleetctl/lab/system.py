"""Machine-level plumbing for the lab: paths, commands, cgroups and daemons.

The lab needs root, a few Debian packages and cgroup v1 controllers (the
hybrid layout Debian and this project's CI machines use). Every check here
fails with one line that says what is missing and how to get it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetctl.errors import LabError

#: binary -> Debian package that ships it
REQUIRED_BINARIES = {
    "dockerd": "docker.io",
    "containerd": "containerd",
    "runc": "runc",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "docker-compose": "docker-compose",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "nft": "nftables",
    "apt-get": "apt",
    "apt-ftparchive": "apt-utils",
    "gpg": "gnupg",
    "dpkg-deb": "dpkg",
}

#: v1 controllers each lab host joins; pids lists every process, freezer hangs a host.
CONTROLLERS = ("pids", "freezer", "memory", "cpu")
CGROUP_ROOT = Path("/sys/fs/cgroup")
UNIFIED = CGROUP_ROOT / "unified"
LAB_CGROUP = "fleetlab"


@dataclass(frozen=True)
class LabPaths:
    """Where the lab keeps its state on the controller machine."""

    root: Path
    cache: Path

    @classmethod
    def default(cls) -> LabPaths:
        """Paths from ``FLEETLAB_DIR`` / ``FLEETLAB_CACHE`` or the defaults."""
        return cls(
            root=Path(os.environ.get("FLEETLAB_DIR", "/var/lib/fleetlab")),
            cache=Path(os.environ.get("FLEETLAB_CACHE", "/var/cache/fleetlab")),
        )

    @property
    def control_socket(self) -> Path:
        return self.root / "control.sock"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def client_key(self) -> Path:
        return self.keys / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.keys / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.keys / "ssh_config"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yml"

    @property
    def hosts(self) -> Path:
        return self.root / "hosts"

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def pkg(self) -> Path:
        return self.cache / "pkg"


def require_root() -> None:
    """LabError unless running as root."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, mounts, cgroups); run it with sudo")


def require_binaries(names: Iterable[str] = REQUIRED_BINARIES) -> None:
    """LabError naming the Debian packages to install for any missing binary."""
    missing = sorted({REQUIRED_BINARIES[n] for n in names if not shutil.which(n, path=_PATH)})
    if missing:
        raise LabError(f"missing Debian packages for the lab: {' '.join(missing)}; "
                       f"install them with: apt-get install -y {' '.join(missing)}")


def require_cgroup_v1() -> None:
    """LabError unless the v1 controllers the lab uses are mounted."""
    absent = [c for c in CONTROLLERS if not (CGROUP_ROOT / c / "cgroup.procs").exists()]
    if absent:
        raise LabError(f"the lab needs cgroup v1 controllers ({', '.join(absent)} missing under "
                       f"{CGROUP_ROOT}); boot with systemd.unified_cgroup_hierarchy=0")


def require_free_ports(ports: Iterable[int] = (22, 5000)) -> None:
    """LabError when a process outside the lab listens on every address on a lab port.

    Lab hosts bind 127.0.1.N:22 and the registry 127.0.0.1:5000; a system sshd
    or registry on 0.0.0.0 would take those ports from them.
    """
    taken = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port = local.rsplit(":", 1)
            if state == "0A" and int(port, 16) in ports and set(address) == {"0"}:
                taken.append(int(port, 16))
    if taken:
        port = sorted(set(taken))[0]
        raise LabError(f"a service listens on all addresses on port {port}, which lab hosts need "
                       f"on 127.0.1.N (see: ss -ltnp 'sport = :{port}'); stop it or bind it to "
                       "one address")


_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def run(argv: Sequence[str], *, input: bytes | None = None, check: bool = True,
        timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a short helper command; LabError with its stderr when it fails."""
    try:
        result = subprocess.run(list(argv), input=input, capture_output=True, timeout=timeout,
                                env={**os.environ, "PATH": _PATH}, check=False, cwd=cwd)
    except FileNotFoundError:
        raise LabError(f"{argv[0]}: not found; install the lab's Debian packages") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv[:3])}: no answer after {timeout:.0f}s") from None
    if check and result.returncode != 0:
        err = result.stderr.decode(errors="replace").strip().splitlines()
        raise LabError(f"{' '.join(argv[:4])} failed: {err[-1] if err else result.returncode}")
    return result


def spawn(argv: Sequence[str], log: Path, cgroup: Cgroup | None = None) -> int:
    """Start a daemon detached from us and return its PID.

    The daemon is started through a short-lived shell, so it is orphaned at once
    and adopted by the lab supervisor, which is a child subreaper and reaps it
    the moment it exits (the machine's PID 1 may reap slowly). With ``cgroup``,
    the daemon joins it before it execs. The PID returned is the daemon's own:
    every step execs, nothing forks in between.
    """
    join = " ".join(f'"{p}"' for p in cgroup.procs_files()) if cgroup else ""
    script = (
        f'for f in {join}; do echo $$ > "$f" || exit 97; done; exec "$@"'
    )
    launcher = (
        'setsid sh -c "$0" sh "$@" </dev/null >>"$FLEETLAB_LOG" 2>&1 & echo $!'
    )
    result = subprocess.run(
        ["sh", "-c", launcher, script, *argv], capture_output=True, check=True,
        env={**os.environ, "PATH": _PATH, "FLEETLAB_LOG": str(log)},
    )
    return int(result.stdout.strip())


def alive(pid: int | None) -> bool:
    """True while ``pid`` runs; a zombie counts as dead."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop(pid: int | None, sig: int = signal.SIGTERM, wait: float = 10.0) -> None:
    """Send ``sig`` to ``pid`` and wait up to ``wait`` seconds for it to end."""
    if not alive(pid):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


class Cgroup:
    """One lab cgroup (``fleetlab/<name>``) across the v1 controllers (and v2)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def dirs(self) -> list[Path]:
        """The cgroup in each v1 controller, and in the unified (v2) hierarchy when the
        machine mounts one beside them: nft matches sockets by their v2 cgroup."""
        roots = [CGROUP_ROOT / c for c in CONTROLLERS]
        if (UNIFIED / "cgroup.procs").exists():
            roots.append(UNIFIED)
        return [root / LAB_CGROUP / self.name for root in roots]

    def create(self) -> None:
        for d in self.dirs():
            d.mkdir(parents=True, exist_ok=True)

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs()]

    def pids(self) -> set[int]:
        """Every process in the cgroup and below it (containers live in sub-cgroups)."""
        base = CGROUP_ROOT / "pids" / LAB_CGROUP / self.name
        found: set[int] = set()
        for procs in base.rglob("cgroup.procs") if base.exists() else ():
            try:
                found.update(int(p) for p in procs.read_text().split())
            except OSError:
                continue
        return found

    @property
    def frozen(self) -> bool:
        state = CGROUP_ROOT / "freezer" / LAB_CGROUP / self.name / "freezer.state"
        return state.exists() and state.read_text().strip() != "THAWED"

    def freeze(self, on: bool) -> None:
        """Freeze (a hung host) or thaw every process of the cgroup."""
        state = CGROUP_ROOT / "freezer" / LAB_CGROUP / self.name / "freezer.state"
        if state.exists():
            state.write_text("FROZEN" if on else "THAWED")

    def kill_all(self, rounds: int = 50) -> None:
        """SIGKILL every process until none is left (new ones may fork meanwhile)."""
        self.freeze(False)
        for _ in range(rounds):
            live = [p for p in self.pids() if alive(p)]
            if not live:
                return
            for pid in live:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        raise LabError(f"cgroup {LAB_CGROUP}/{self.name}: processes survive SIGKILL")

    def remove(self) -> None:
        """Remove the cgroup in every hierarchy, depth first (Docker writes into all of them)."""
        for hierarchy in CGROUP_ROOT.iterdir():
            _rmdir_tree(hierarchy / LAB_CGROUP / self.name)


def _rmdir_tree(top: Path, attempts: int = 100) -> None:
    if not top.is_dir():
        return
    for _ in range(attempts):
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        try:
            for d in [*dirs, top]:
                d.rmdir()
            return
        except FileNotFoundError:
            continue
        except OSError:
            time.sleep(0.05)  # zombies not reaped yet keep the cgroup busy
    raise LabError(f"cannot remove cgroup {top}: still busy")


def remove_lab_cgroups() -> None:
    """Remove ``fleetlab`` in every hierarchy (its hosts must be gone already)."""
    for hierarchy in CGROUP_ROOT.iterdir():
        _rmdir_tree(hierarchy / LAB_CGROUP)


def lab_cgroup_names() -> list[str]:
    """Names of the lab cgroups that exist now, from the pids hierarchy."""
    base = CGROUP_ROOT / "pids" / LAB_CGROUP
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []


def is_mountpoint(path: Path) -> bool:
    """True when ``path`` is a mount point in our mount namespace."""
    target = str(path.resolve())
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def umount(path: Path) -> None:
    """Unmount ``path`` if it is mounted, lazily when busy."""
    if is_mountpoint(path) and run(["umount", str(path)], check=False).returncode != 0:
        run(["umount", "-l", str(path)])


def http_ready(url: str) -> bool:
    """True when ``GET url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def start_http_daemon(what: str, argv: Sequence[str], log: Path, pid_file: Path,
                      cgroup: str, address: str, url: str, timeout: float = 15.0) -> int:
    """Start a lab daemon that serves HTTP on ``address`` (unless the one ``pid_file``
    names still answers ``url``); wait until it answers; its PID. LabError naming its
    log when it exits, or when it has not answered within ``timeout`` seconds."""
    if pid_file.exists() and alive(int(pid_file.read_text())) and http_ready(url):
        return int(pid_file.read_text())
    group = Cgroup(cgroup)
    group.create()
    pid = spawn(argv, log, group)
    pid_file.write_text(str(pid))
    deadline = time.monotonic() + timeout
    while not http_ready(url):
        if not alive(pid):
            raise LabError(f"the lab {what} exited; see {log} (is something else listening "
                           f"on {address}?)")
        if time.monotonic() > deadline:
            raise LabError(f"the lab {what} did not answer on {address} within "
                           f"{timeout:.0f}s; see {log}")
        time.sleep(0.05)
    return pid
