"""One simulated Jetson: a mount + UTS namespace with its own sshd and dockerd.

Lifecycle: :meth:`LabHost.create` writes the host's disk (identity files, SSH
and Docker config), :meth:`start` enters the namespace and starts the daemons,
:meth:`stop` kills every process of the host, :meth:`destroy` removes all of it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from fleetctl.errors import LabError
from fleetctl.facts.jetson import module_from_compatible
from fleetctl.lab.l4trepo import L4T_PACKAGES, apt_source, release_file, status_stanzas
from fleetctl.lab.spec import HostSpec
from fleetctl.lab.system import (
    CGROUP_ROOT,
    LAB_CGROUP,
    Cgroup,
    LabPaths,
    alive,
    run,
    spawn,
    stop,
    umount,
)

SSHD_CONFIG = """\
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
X11Forwarding no
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
MaxStartups 200:30:400
MaxSessions 64
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
"""

#: the ``disk-full-at-download`` fault: after ``apt-get update``, something fills the disk
DOWNLOAD_FAULT_HOOK = """\
// fleetlab: with the disk-full-at-download fault, the disk fills once the lists are read
APT::Update::Post-Invoke-Success { "/usr/local/sbin/fleetlab-fill-at-download || true"; };
"""
DOWNLOAD_FAULT_SCRIPT = """\
#!/bin/sh
[ -e /run/fleetlab/disk-full-at-download ] || exit 0
free=$(df -Pk /var/cache/apt | awk 'NR == 2 { print $4 }')
fallocate -l $((free * 1024)) /var/cache/apt/.fleetlab-fill
"""
#: what the host's ``reboot`` writes; the lab reboots the host when it appears
REBOOT_REQUEST = "/run/fleetlab-reboot"
SSH_PORT = 22
#: how long a lab host takes to come back after ``reboot``
REBOOT_SECONDS = 1.0
#: faults a reboot keeps (the others live in the host's processes or /run)
PERSISTENT_FAULTS = ("unreachable", "disk-full", "slow-link", "reboot-hangs",
                     "capsule-not-applied")
#: where sshd listens while a slow-link proxy holds port 22
SSH_INNER_PORT = 2222


@dataclass
class HostState:
    """What the supervisor knows of a running host."""

    anchor: int | None = None
    sshd: int | None = None
    dockerd: int | None = None
    ssh_port: int = SSH_PORT
    faults: dict[str, dict] = field(default_factory=dict)
    rebooting: bool = False


class LabHost:
    """A simulated host built from its :class:`HostSpec`."""

    def __init__(self, spec: HostSpec, paths: LabPaths) -> None:
        self.spec = spec
        self.paths = paths
        self.dir = paths.hosts / spec.name
        self.disk = self.dir / "disk"
        self.cgroup = Cgroup(spec.name)
        self.state = HostState()

    # -- paths into the running host -----------------------------------------------------------

    def inside(self, path: str) -> Path:
        """A path as the host sees it, reached from the controller through the anchor."""
        return Path(f"/proc/{self.state.anchor}/root") / path.lstrip("/")

    @property
    def docker_socket(self) -> str:
        """The host engine's socket, for tests and the lab itself (not for fleetctl)."""
        return f"unix://{self.inside('/run/docker.sock')}"

    # -- create --------------------------------------------------------------------------------

    def create(self, client_pubkey: str) -> str:
        """Write the host's disk and return its known_hosts line."""
        spec = self.spec
        self.dir.mkdir(parents=True, exist_ok=True)
        self.disk.mkdir(exist_ok=True)
        umount(self.disk)
        run(["mount", "-t", "tmpfs", "-o", f"size={spec.disk_bytes},mode=0755",
             f"fleetlab-{spec.name}", str(self.disk)])
        for layer in ("etc", "opt", "usr_local", "var_lib", "var_cache", "var_log", "usr_bin"):
            (self.disk / layer / "upper").mkdir(parents=True)
            (self.disk / layer / "work").mkdir()
        for name, mode in (("root", 0o700), ("home", 0o755), ("tmp", 0o1777), ("docker", 0o711)):
            (self.disk / name).mkdir()
            os.chmod(self.disk / name, mode)
        etc = self.disk / "etc" / "upper"
        (etc / "hostname").write_text(f"{spec.name}\n")
        self._write_identity(etc)
        self._write_meminfo()
        host_key = self._write_ssh(etc, client_pubkey)
        self._write_docker(etc)
        self.cgroup.create()
        return f"{spec.address} {host_key}"

    def _write_identity(self, etc: Path) -> None:
        spec = self.spec
        dpkg = self.disk / "var_lib" / "upper" / "dpkg"
        dpkg.mkdir()
        status = Path("/var/lib/dpkg/status").read_text()
        if spec.nv_tegra_release:
            (etc / "nv_tegra_release").write_text(release_file(spec.nv_tegra_release))
            arch = run(["dpkg", "--print-architecture"]).stdout.decode().strip()
            status += "\n" if not status.endswith("\n\n") else ""
            status += status_stanzas(spec.nv_tegra_release, arch)
            (dpkg / "info").mkdir()
            for name in L4T_PACKAGES:
                (dpkg / "info" / f"{name}.list").write_text("/.\n")
                (dpkg / "info" / f"{name}.md5sums").write_text("")
        (dpkg / "status").write_text(status)
        if spec.cuda:
            cuda = self.disk / "usr_local" / "upper" / "cuda"
            cuda.mkdir()
            version = f"{spec.cuda}.0"
            (cuda / "version.json").write_text(json.dumps({
                "cuda": {"name": "CUDA SDK", "version": version},
                "cuda_nvcc": {"name": "CUDA NVCC", "version": version},
            }, indent=3) + "\n")
        if spec.model or spec.compatible:
            base = self.dir / "fw" / "devicetree" / "base"
            base.mkdir(parents=True, exist_ok=True)
            (base / "model").write_bytes((spec.model or "").encode() + b"\0")
            (base / "compatible").write_bytes(b"".join(c.encode() + b"\0"
                                                       for c in spec.compatible))
            (base / "serial-number").write_bytes(spec.serial.encode() + b"\0")
        if spec.nv_tegra_release:
            self._write_tegrastats()
            self._write_boot(etc)
            self._write_reboot()

    def _write_boot(self, etc: Path) -> None:
        """What an OS update reads: NVIDIA's apt source at the host's release, the board
        spec, an ``nvbootctrl`` (rootfs A/B on from R35) and, on UEFI releases (R35 on),
        the firmware's version in the ESRT."""
        spec = self.spec
        major, minor, revision = (int(p) for p in (spec.l4t or "0.0.0").split("."))
        family = module_from_compatible("\n".join(spec.compatible))["soc_family"]
        soc = {"orin": "t234", "xavier": "t194", "tx1-nano": "t210"}.get(family or "", "t234")
        self._write_apt(etc, soc)
        part = next((c.split(",")[-1] for c in spec.compatible if "p3" in c or "p2" in c),
                    "p0000-0000")
        board, sku = part.lstrip("p").split("-")[:2] if "-" in part else ("0000", "0000")
        (etc / "nv_boot_control.conf").write_text(
            f"TNSPEC {board}-300-{sku}-A.0-1-0-jetson-{family or 'unknown'}-lab-\n"
            f"TEGRA_CHIPID 0x{ {'t234': 23, 't194': 19, 't210': 21}[soc]}\n")
        script = (resources.files("fleetctl.lab") / "fake-nvbootctrl.sh").read_text()
        tool = self.disk / "usr_local" / "upper" / "bin" / "nvbootctrl"
        tool.parent.mkdir(parents=True, exist_ok=True)
        tool.write_text(f"#!/bin/sh\nVERSION={spec.l4t} UNIFIED={0 if major >= 35 else 69}\n"
                        + script)
        tool.chmod(0o755)
        if major >= 35:
            esrt = self.dir / "fw" / "efi" / "esrt" / "entries" / "entry0"
            esrt.mkdir(parents=True, exist_ok=True)
            (esrt / "fw_version").write_text(f"{(major << 16) | (minor << 8) | revision}\n")
            (esrt / "last_attempt_status").write_text("0\n")
            (self.dir / "esp" / "EFI").mkdir(parents=True, exist_ok=True)

    def _write_apt(self, etc: Path, soc: str) -> None:
        """apt on the host reads NVIDIA's source at the host's release (the lab's
        repository, signed with its key) and nothing of the machine's sources; its
        package lists start empty."""
        apt = etc / "apt"
        (apt / "sources.list.d").mkdir(parents=True, exist_ok=True)
        (apt / "sources.list.d" / "nvidia-l4t-apt-source.list").write_text(
            apt_source(self.spec.l4t or "", soc))
        (apt / "sources.list").write_text("")
        (apt / "trusted.gpg.d").mkdir(exist_ok=True)
        (apt / "trusted.gpg.d" / "jetson-ota-public.asc").write_text(
            (self.paths.root / "apt" / "public.asc").read_text())
        (apt / "apt.conf.d").mkdir(exist_ok=True)
        (apt / "apt.conf.d" / "99fleetlab-faults").write_text(DOWNLOAD_FAULT_HOOK)
        fill = self.disk / "usr_local" / "upper" / "sbin" / "fleetlab-fill-at-download"
        fill.parent.mkdir(parents=True, exist_ok=True)
        fill.write_text(DOWNLOAD_FAULT_SCRIPT)
        fill.chmod(0o755)
        for folder in ("sources.list.d", "preferences.d"):   # whiteouts hide the machine's
            (apt / folder).mkdir(exist_ok=True)
            machine = Path("/etc/apt") / folder
            for name in os.listdir(machine) if machine.is_dir() else []:
                if not (apt / folder / name).exists():
                    os.mknod(apt / folder / name, 0o600 | 0o020000, os.makedev(0, 0))
        lists = self.disk / "var_lib" / "upper" / "apt" / "lists"
        lists.mkdir(parents=True)
        os.setxattr(lists, "trusted.overlay.opaque", b"y")

    def _write_reboot(self) -> None:
        """A ``reboot`` that asks the lab to restart the host (lab/lab.py watches for
        it): the host's processes end, its firmware takes a staged capsule, it boots."""
        path = self.disk / "usr_local" / "upper" / "sbin" / "reboot"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/sh\n# lab stand-in: the lab restarts this host\n"
                        f"sync\ntouch {REBOOT_REQUEST}\n")
        path.chmod(0o755)

    def _write_tegrastats(self) -> None:
        """A ``tegrastats`` in the host's /usr/local/bin that prints its module's line
        format, driven by the host's containers (lab/fake-tegrastats.sh)."""
        major = (self.spec.l4t or "36").split(".")[0]
        family = {"36": "orin", "35": "xavier"}.get(major, "nano")
        cgroups = {c: CGROUP_ROOT / c / LAB_CGROUP / self.spec.name for c in ("memory", "cpuacct")}
        header = (f"#!/bin/sh\nFAMILY={family} TOTAL_MB={self.spec.memory_mb} "
                  f"SWAP_MB={self.spec.memory_mb // 2} CORES={4 if family == 'nano' else 6} "
                  f"MEM={cgroups['memory']} CPU={cgroups['cpuacct']}\n")
        script = (resources.files("fleetctl.lab") / "fake-tegrastats.sh").read_text()
        path = self.disk / "usr_local" / "upper" / "bin" / "tegrastats"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + script)
        path.chmod(0o755)

    def _write_meminfo(self) -> None:
        """A /proc/meminfo that reports the spec's memory size (scaled from the machine's)."""
        lines = Path("/proc/meminfo").read_text().splitlines()
        real_total = int(lines[0].split()[1])
        total = self.spec.memory_mb * 1024
        out = []
        for line in lines:
            key, value, *unit = line.split()
            if key in ("MemTotal:", "MemFree:", "MemAvailable:"):
                value = str(min(total, int(int(value) * total / real_total)))
            out.append(f"{key:<16}{value:>8}{' ' + unit[0] if unit else ''}")
        (self.dir / "meminfo").write_text("\n".join(out) + "\n")

    def _write_ssh(self, etc: Path, client_pubkey: str) -> str:
        ssh = etc / "ssh"
        ssh.mkdir()
        (ssh / "sshd_config").write_text(SSHD_CONFIG)
        key = ssh / "ssh_host_ed25519_key"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{self.spec.name}",
             "-f", str(key)])
        auth = self.disk / "root" / ".ssh"
        auth.mkdir(mode=0o700)
        (auth / "authorized_keys").write_text(client_pubkey)
        os.chmod(auth / "authorized_keys", 0o600)
        return " ".join(key.with_suffix(".pub").read_text().split()[:2])

    def _write_docker(self, etc: Path) -> None:
        spec = self.spec
        usr_bin = self.disk / "usr_bin" / "upper"
        local_bin = self.disk / "usr_local" / "upper" / "bin"
        local_bin.mkdir(exist_ok=True)
        hidden = []
        if not spec.docker:
            hidden += ["docker", "dockerd", "containerd", "docker-compose"]
        elif spec.compose == "none":
            hidden += ["docker-compose"]
        for name in hidden:  # overlay whiteouts: the machine's binary is absent on this host
            for where in (usr_bin, local_bin):
                os.mknod(where / name, 0o600 | 0o020000, os.makedev(0, 0))
        if not spec.docker:
            return
        daemon: dict = {
            "bridge": "none", "iptables": False, "ip-masq": False,
            "cgroup-parent": f"/fleetlab/{spec.name}",
            "log-driver": "json-file", "log-opts": {"max-size": "1m"},
            "shutdown-timeout": 5,
        }
        if spec.nvidia_runtime:
            daemon["runtimes"] = {"nvidia": {"path": "nvidia-container-runtime",
                                             "runtimeArgs": []}}
            shim = local_bin / "nvidia-container-runtime"
            shim.write_text("#!/bin/sh\n# lab stand-in: no GPU here, containers run on runc\n"
                            'exec /usr/sbin/runc "$@"\n')
            shim.chmod(0o755)
        (etc / "docker").mkdir()
        (etc / "docker" / "daemon.json").write_text(json.dumps(daemon, indent=2) + "\n")

    # -- start / stop --------------------------------------------------------------------------

    def start(self) -> None:
        """Enter a new namespace for the host and start its daemons; wait until ready."""
        if alive(self.state.anchor):
            return
        init = resources.files("fleetctl.lab") / "host-init.sh"
        usr_bin = "yes" if any((self.disk / "usr_bin" / "upper").iterdir()) else "no"
        argv = ["unshare", "--mount", "--uts", "--propagation", "private", "--",
                "sh", str(init), str(self.dir), self.spec.name, str(self.paths.root), usr_bin,
                "yes" if self.spec.is_jetson else "no"]
        self.state.anchor = spawn(argv, self.dir / "init.log", self.cgroup)
        self.wait_until(lambda: self.inside("/run/fleetlab-ready").exists(), "init", 10)
        if self.spec.docker:
            self.start_dockerd()
        self.start_sshd()

    def nsenter(self, *argv: str) -> list[str]:
        """argv that runs a command inside the host's namespaces."""
        return ["nsenter", "-t", str(self.state.anchor), "-m", "-u", "--", *argv]

    def start_sshd(self, port: int = SSH_PORT) -> None:
        """Start sshd on the host's address and ``port``; wait until it accepts."""
        self.state.ssh_port = port
        argv = self.nsenter("/usr/sbin/sshd", "-D", "-e", "-o",
                            f"ListenAddress={self.spec.address}:{port}")
        self.state.sshd = spawn(argv, self.dir / "sshd.log", self.cgroup)
        self.wait_until(lambda: _accepts(self.spec.address, port), "sshd", 10)

    def start_dockerd(self) -> None:
        """Start the host's dockerd on its default socket; wait until it answers."""
        for stale in ("/run/docker.pid", "/run/docker/containerd/containerd.pid"):
            path = self.inside(stale)
            try:
                if not alive(int(path.read_text().strip() or 0)):
                    path.unlink()
            except (OSError, ValueError):
                pass
        self.state.dockerd = spawn(self.nsenter("dockerd"), self.dir / "dockerd.log",
                                   self.cgroup)
        sock = str(self.inside("/run/docker.sock"))
        self.wait_until(lambda: _docker_ping(sock), "dockerd", 60)

    def stop_dockerd(self) -> None:
        """Stop dockerd gracefully (its containers stop with it, as without live-restore)."""
        stop(self.state.dockerd, wait=20)
        self.state.dockerd = None

    def stop(self) -> None:
        """Kill every process of the host; the namespace and its mounts vanish with them."""
        self.cgroup.kill_all()
        self.state = HostState()

    def reboot(self) -> None:
        """What the host's ``reboot`` asks for: a clean shutdown (Docker stops its
        containers), the firmware applying a staged capsule, a boot after
        :data:`REBOOT_SECONDS`. With the ``reboot-hangs`` fault the host stays down;
        ``capsule-not-applied`` leaves the firmware as it was, with status 6162."""
        faults, port = self.state.faults, self.state.ssh_port
        if self.spec.docker:
            self.stop_dockerd()
        self.stop()
        # faults that live on the disk or outside the host outlast a reboot
        self.state.faults = {k: v for k, v in faults.items() if k in PERSISTENT_FAULTS}
        self.state.ssh_port, self.state.rebooting = port, True
        if "reboot-hangs" in faults:
            return
        time.sleep(REBOOT_SECONDS)
        self.boot()

    def boot(self) -> None:
        """Power on: the firmware takes a staged capsule, then the host starts."""
        self._apply_capsule(failed="capsule-not-applied" in self.state.faults)
        port = self.state.ssh_port
        self.start()
        if port != SSH_PORT:        # a slow link's proxy still holds port 22
            stop(self.state.sshd)
            self.start_sshd(port)
        self.state.rebooting = False

    def _apply_capsule(self, failed: bool) -> None:
        """A capsule in the ESP becomes the firmware's version (ESRT), or, ``failed``,
        leaves it and reports 6162 as the last attempt's status."""
        capsule = self.dir / "esp" / "EFI" / "UpdateCapsule" / "TEGRA_BL.Cap"
        if not capsule.exists():
            return
        esrt = self.dir / "fw" / "efi" / "esrt" / "entries" / "entry0"
        major, minor, revision = (int(p) for p in capsule.read_text().split()[0].split("."))
        if failed:
            (esrt / "last_attempt_status").write_text("6162\n")
        else:
            (esrt / "fw_version").write_text(f"{(major << 16) | (minor << 8) | revision}\n")
            (esrt / "last_attempt_status").write_text("0\n")
        capsule.unlink()

    def destroy(self) -> None:
        """Stop the host and remove its cgroups, disk and directory."""
        self.stop()
        self.cgroup.remove()
        umount(self.disk)
        run(["rm", "-rf", "--one-file-system", str(self.dir)])

    def wait_until(self, ready, what: str, timeout: float) -> None:
        """Poll ``ready`` until true; LabError with the last line of ``<what>.log`` after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                log = self.dir / f"{what}.log"
                tail = log.read_text().strip().splitlines()[-1:] if log.exists() else []
                raise LabError(f"{self.spec.name}: {what} not ready after {timeout:.0f}s"
                               + (f": {tail[0]}" if tail else ""))
            time.sleep(0.02)


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _docker_ping(sock_path: str) -> bool:
    """True when the engine behind ``sock_path`` answers ``GET /_ping``."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(sock_path)
            s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.0 200")
    except OSError:
        return False
