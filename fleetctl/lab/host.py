"""One simulated Jetson: a mount + UTS namespace with its own sshd and dockerd.

Lifecycle: :meth:`LabHost.create` writes the host's disk (a root filesystem slot,
:mod:`fleetctl.lab.rootfs`; SSH keys; firmware), :meth:`start` enters the namespace on
the booted slot and starts the daemons, :meth:`reboot` carries out the host's own
``reboot`` (:mod:`fleetctl.lab.boot`), :meth:`stop` kills every process of the host,
:meth:`destroy` removes all of it.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from fleetctl.errors import LabError
from fleetctl.facts.jetson import parse_nv_tegra_release
from fleetctl.lab.boot import BOOT_STATE, BootState, power_on
from fleetctl.lab.rootfs import write_slot
from fleetctl.lab.spec import HostSpec
from fleetctl.lab.system import (
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

SSH_PORT = 22
#: how long a lab host takes to come back after ``reboot``
REBOOT_SECONDS = 1.0
#: faults a reboot keeps (the others live in the host's processes or /run)
PERSISTENT_FAULTS = ("unreachable", "disk-full", "slow-link", "reboot-hangs",
                     "capsule-not-applied", "new-slot-fails-to-boot")
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

    def l4t(self) -> str | None:
        """The L4T release the running host's nv_tegra_release names (an update changes
        it), or the spec's."""
        try:
            return parse_nv_tegra_release(self.inside("/etc/nv_tegra_release").read_text())
        except (OSError, ValueError):
            return self.spec.l4t

    @property
    def docker_socket(self) -> str:
        """The host engine's socket, for tests and the lab itself (not for fleetctl)."""
        return f"unix://{self.inside('/run/docker.sock')}"

    # -- create --------------------------------------------------------------------------------

    @property
    def has_ab(self) -> bool:
        """Whether the host has rootfs A/B (a Jetson on R35 or later)."""
        return int((self.spec.l4t or "0").split(".")[0]) >= 35

    def create(self, client_pubkey: str) -> str:
        """Write the host's disk (slot A; an empty slot B with rootfs A/B), its firmware
        and device tree, and return its known_hosts line."""
        spec = self.spec
        self.dir.mkdir(parents=True, exist_ok=True)
        self.disk.mkdir(exist_ok=True)
        umount(self.disk)
        run(["mount", "-t", "tmpfs", "-o", f"size={spec.disk_bytes},mode=0755",
             f"fleetlab-{spec.name}", str(self.disk)])
        for name, mode in (("root", 0o700), ("home", 0o755), ("tmp", 0o1777), ("ssh", 0o755)):
            (self.disk / name).mkdir()
            os.chmod(self.disk / name, mode)
        write_slot(self.disk / "slot-a", spec, self.repo_key())
        if self.has_ab:
            (self.disk / "slot-b").mkdir()      # written by an image-based update
        self._write_firmware()
        self._write_meminfo()
        host_key = self._write_ssh(client_pubkey)
        self.cgroup.create()
        return f"{spec.address} {host_key}"

    def repo_key(self) -> str:
        """The lab apt repository's public key, which the host's apt trusts."""
        return (self.paths.root / "apt" / "public.asc").read_text()

    def _write_firmware(self) -> None:
        """The device tree, and on UEFI releases (R35 on) the ESRT firmware version, the
        boot slots' state (lab/fake-nvbootctrl.sh reads it) and the ESP."""
        spec = self.spec
        if spec.model or spec.compatible:
            base = self.dir / "fw" / "devicetree" / "base"
            base.mkdir(parents=True, exist_ok=True)
            (base / "model").write_bytes((spec.model or "").encode() + b"\0")
            (base / "compatible").write_bytes(b"".join(c.encode() + b"\0"
                                                       for c in spec.compatible))
            (base / "serial-number").write_bytes(spec.serial.encode() + b"\0")
        if not self.has_ab:
            return
        (self.dir / "fw" / "efi" / "esrt" / "entries" / "entry0").mkdir(parents=True,
                                                                       exist_ok=True)
        self.write_boot(BootState(firmware={"A": spec.l4t or ""}))
        (self.dir / "esp" / "EFI").mkdir(parents=True, exist_ok=True)

    def boot_state(self) -> BootState:
        """The bootloader's slots as the host's nvbootctrl sees them."""
        return BootState.parse((self.dir / "fw" / BOOT_STATE).read_text())

    def write_boot(self, state: BootState) -> None:
        """Store the slots' state, and show the booted slot's firmware in the ESRT."""
        (self.dir / "fw" / BOOT_STATE).write_text(state.text())
        esrt = self.dir / "fw" / "efi" / "esrt" / "entries" / "entry0"
        major, minor, revision = (int(p) for p in state.firmware[state.current].split("."))
        (esrt / "fw_version").write_text(f"{(major << 16) | (minor << 8) | revision}\n")
        (esrt / "last_attempt_status").write_text(f"{state.last_attempt_status}\n")

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

    def _write_ssh(self, client_pubkey: str) -> str:
        """sshd's config and host key, outside the slots (a reflash makes a new key)."""
        ssh = self.disk / "ssh"
        (ssh / "sshd_config").write_text(SSHD_CONFIG + ("LogLevel DEBUG1\n" if self.spec.bastion
                                                        else ""))
        key = ssh / "ssh_host_ed25519_key"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{self.spec.name}",
             "-f", str(key)])
        for home, uid in (("root", 0), ("home/nvidia", 4242), ("home/ops", 4243)):
            auth = self.disk / home / ".ssh"    # the non-root logins: see host-init.sh
            auth.mkdir(mode=0o700, parents=True)
            (auth / "authorized_keys").write_text(client_pubkey)
            os.chmod(auth / "authorized_keys", 0o600)
            for path in (auth.parent, auth, auth / "authorized_keys"):
                os.chown(path, uid, uid)
        return " ".join(key.with_suffix(".pub").read_text().split()[:2])

    # -- start / stop --------------------------------------------------------------------------

    def start(self) -> None:
        """Enter a new namespace for the host and start its daemons; wait until ready."""
        if alive(self.state.anchor):
            return
        init = resources.files("fleetctl.lab") / "host-init.sh"
        slot = self.boot_state().current.lower() if self.has_ab else "a"
        usr_bin = "yes" if any((self.disk / f"slot-{slot}" / "usr_bin" / "upper").iterdir()) \
            else "no"
        argv = ["unshare", "--mount", "--uts", "--propagation", "private", "--",
                "sh", str(init), str(self.dir), self.spec.name, str(self.paths.root), usr_bin,
                "yes" if self.spec.is_jetson else "no", slot]
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
        """Power on: the bootloader picks the slot (back to the old one when the new
        fails to boot), the firmware takes a staged capsule (or not), the host starts."""
        faults = self.state.faults
        if self.has_ab:
            capsule_file = self.dir / "esp" / "EFI" / "UpdateCapsule" / "TEGRA_BL.Cap"
            capsule = capsule_file.read_text().split()[0] if capsule_file.exists() else None
            self.write_boot(power_on(self.boot_state(), capsule,
                                     slot_fails="new-slot-fails-to-boot" in faults,
                                     capsule_fails="capsule-not-applied" in faults))
            capsule_file.unlink(missing_ok=True)
        port = self.state.ssh_port
        self.start()
        if port != SSH_PORT:        # a slow link's proxy still holds port 22
            stop(self.state.sshd)
            self.start_sshd(port)
        self.state.rebooting = False

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
