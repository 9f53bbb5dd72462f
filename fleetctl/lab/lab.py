"""The lab as a whole: bring hosts and the registry up, report, inject faults, tear down.

A :class:`Lab` lives in the lab supervisor's worker process, which owns every
daemon; the CLI talks to it through :mod:`fleetctl.lab.client`. :func:`teardown`
also works without a supervisor, from what is on disk and in the cgroups.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from fleetctl.errors import InputError, LabError
from fleetctl.lab import faults
from fleetctl.lab.host import LabHost
from fleetctl.lab.images import load_images, push_images
from fleetctl.lab.l4trepo import start_repo
from fleetctl.lab.registry import REGISTRY_ADDR, REGISTRY_URL, start_registry, unpacked
from fleetctl.lab.rootfs import REBOOT_REQUEST
from fleetctl.lab.spec import HostSpec, LabSpec
from fleetctl.lab.system import (
    Cgroup,
    LabPaths,
    alive,
    lab_cgroup_names,
    remove_lab_cgroups,
    run,
    stop,
    umount,
)

Log = Callable[[str], None]
PARALLEL = 8


class Lab:
    """The running lab, owned by the supervisor worker."""

    def __init__(self, paths: LabPaths) -> None:
        self.paths = paths
        self.hosts: dict[str, LabHost] = {}
        self.registry_pid: int | None = None
        self.apt_pid: int | None = None
        self.registry_blocked = False
        self.image_digests: dict[str, str] = {}
        self.lock = threading.Lock()

    def up(self, spec: LabSpec, log: Log) -> dict:
        """Make the running lab match ``spec``: start what is missing, replace what changed."""
        paths = self.paths
        for d in (paths.root, paths.keys, paths.hosts):
            d.mkdir(parents=True, exist_ok=True)
        paths.root.chmod(0o700)
        if not paths.client_key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleetctl-lab",
                 "-f", str(paths.client_key)])
        pubkey = paths.client_key.with_suffix(".pub").read_text()

        log(f"registry on {REGISTRY_ADDR}")
        self.registry_pid = start_registry(paths)
        busybox = unpacked(paths, "busybox-static")
        images = load_images()
        self.image_digests = push_images(REGISTRY_URL, busybox, images)
        log(f"pushed {len(images)} images")
        self.apt_pid = start_repo(paths)

        wanted = {h.name: h for h in spec.hosts}
        stale = [h for name, h in self.hosts.items()
                 if name not in wanted or h.spec != wanted[name]]
        if stale:
            log(f"removing {len(stale)} hosts that left or changed in the spec")
            self._each(stale, LabHost.destroy)
            for host in stale:
                del self.hosts[host.spec.name]
        new = [LabHost(s, paths) for name, s in wanted.items() if name not in self.hosts]
        known_lines = self._known_lines()
        if new:
            log(f"creating {len(new)} hosts")
            for host, line in zip(new, self._each(new, lambda h: h.create(pubkey)), strict=True):
                known_lines[host.spec.address] = line
                self.hosts[host.spec.name] = host
        down = [h for h in self.hosts.values() if not alive(h.state.anchor)]
        if down:
            log(f"starting {len(down)} hosts")
            self._each(down, LabHost.start)
        self._write_known_hosts(known_lines)
        self._write_ssh_config()
        write_inventory(paths, [self.hosts[n].spec for n in wanted])
        self.save()
        return self.status()

    def watch_reboots(self, interval: float = 0.2) -> None:
        """Forever: reboot each host whose ``reboot`` asked for it (in its own thread)."""
        while True:
            time.sleep(interval)
            for host in list(self.hosts.values()):
                if (not host.state.rebooting and alive(host.state.anchor)
                        and host.inside(REBOOT_REQUEST).exists()):
                    host.state.rebooting = True
                    threading.Thread(target=self._reboot, args=(host,), daemon=True).start()

    def _reboot(self, host: LabHost) -> None:
        try:
            host.reboot()
        except LabError as exc:
            print(f"{host.spec.name}: reboot failed: {exc}", flush=True)
        self.save()

    def _each(self, hosts: list[LabHost], action: Callable[[LabHost], object]) -> list:
        with ThreadPoolExecutor(PARALLEL) as pool:
            return list(pool.map(action, hosts))

    def _known_lines(self) -> dict[str, str]:
        """known_hosts lines by address."""
        if not self.paths.known_hosts.exists():
            return {}
        return {line.split()[0]: line
                for line in self.paths.known_hosts.read_text().splitlines() if line}

    def _write_known_hosts(self, lines: dict[str, str]) -> None:
        addresses = {h.spec.address for h in self.hosts.values()}
        tmp = self.paths.known_hosts.with_suffix(".tmp")
        tmp.write_text("".join(f"{line}\n" for a, line in sorted(lines.items())
                               if a in addresses))
        tmp.replace(self.paths.known_hosts)

    def reflash(self, name: str) -> dict:
        """Rebuild one host from its spec: a fresh disk at the spec's release and
        firmware, a new host key in the lab's known_hosts."""
        old = self.host(name)
        old.destroy()
        host = LabHost(old.spec, self.paths)
        lines = self._known_lines()
        lines[host.spec.address] = host.create(self.paths.client_key.with_suffix(".pub")
                                               .read_text())
        self.hosts[name] = host
        host.start()
        self._write_known_hosts(lines)
        self.save()
        return self.host_status(host)

    def _write_ssh_config(self) -> None:
        patterns = " ".join(sorted(h.spec.address for h in self.hosts.values()))
        self.paths.ssh_config.write_text(
            f"Host {patterns}\n  User root\n  IdentityFile {self.paths.client_key}\n"
            f"  IdentitiesOnly yes\n  UserKnownHostsFile {self.paths.known_hosts}\n"
            "  StrictHostKeyChecking yes\n  ConnectTimeout 5\n  LogLevel ERROR\n")

    def host(self, name: str) -> LabHost:
        """The running host ``name``; InputError listing the hosts otherwise."""
        if name not in self.hosts:
            raise InputError(f"no lab host named {name!r}; the lab has: "
                             f"{', '.join(sorted(self.hosts)) or 'no hosts'}")
        return self.hosts[name]

    def fault(self, name: str, kind: str, params: dict) -> dict:
        """Inject a fault on one host, or make the registry unreachable (``registry``)."""
        if name == "registry":
            return self._registry_fault(kind, on=True)
        host = self.host(name)
        faults.inject(host, kind, params)
        self.save()
        return self.host_status(host)

    def heal(self, name: str) -> dict:
        """Undo every fault on one host (or on the registry)."""
        if name == "registry":
            return self._registry_fault("unreachable", on=False)
        host = self.host(name)
        faults.heal(host)
        self.save()
        return self.host_status(host)

    def _registry_fault(self, kind: str, on: bool) -> dict:
        # hosts share the controller's network namespace: blocked for everyone
        if kind != "unreachable":
            raise InputError(f"the registry takes only the fault 'unreachable', not {kind!r}")
        if on and not self.registry_blocked:
            faults.nft_drop_port(REGISTRY_ADDR, "registry")
        elif not on and self.registry_blocked:
            faults.nft_undrop("registry")
        self.registry_blocked = on
        self.save()
        return {"name": "registry", "faults": ["unreachable"] if on else [],
                "state": "faulted" if on else "running"}

    def host_status(self, host: LabHost) -> dict:
        st = host.state
        running = alive(st.anchor)
        if st.rebooting:
            state = "rebooting" if "reboot-hangs" not in st.faults or running else "hung"
        elif not running:
            state = "stopped"
        elif st.faults:
            state = "faulted"
        elif not alive(st.sshd) or (host.spec.docker and not alive(st.dockerd)):
            state = "degraded"
        else:
            state = "running"
        return {
            "name": host.spec.name, "address": host.spec.address, "state": state,
            "groups": list(host.spec.groups), "l4t": host.l4t() if running else host.spec.l4t,
            "docker": host.spec.docker, "faults": {k: {p: v for p, v in f.items() if p != "pid"}
                                                   for k, f in st.faults.items()},
            "pids": {"anchor": st.anchor, "sshd": st.sshd, "dockerd": st.dockerd},
            "docker_socket": host.docker_socket if running and host.spec.docker else None,
        }

    def status(self) -> dict:
        """Every host with its address and state, and where the lab's files are."""
        paths = self.paths
        return {
            "up": True,
            "supervisor": {"worker": os.getpid(), "reaper": os.getppid()},
            "dir": str(paths.root),
            "inventory": str(paths.inventory),
            "client_key": str(paths.client_key),
            "known_hosts": str(paths.known_hosts),
            "ssh_config": str(paths.ssh_config),
            "registry": {"address": REGISTRY_ADDR, "running": alive(self.registry_pid),
                         "unreachable": self.registry_blocked, "images": self.image_digests},
            "hosts": [self.host_status(h) for h in self.hosts.values()],
        }

    def save(self) -> None:
        """Write the status to ``state.json`` (read by teardown when no supervisor runs)."""
        tmp = self.paths.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status(), indent=2))
        tmp.replace(self.paths.state_file)

    def down(self, log: Log) -> None:
        """Stop every engine gracefully, then remove everything the lab made."""
        log(f"stopping {len(self.hosts)} hosts")
        for host in self.hosts.values():
            host.cgroup.freeze(False)
        self._each([h for h in self.hosts.values() if h.spec.docker], LabHost.stop_dockerd)
        stop(self.registry_pid)
        stop(self.apt_pid)
        teardown(self.paths)
        self.hosts.clear()


def write_inventory(paths: LabPaths, hosts: list[HostSpec]) -> Path:
    """Write an Ansible-compatible YAML inventory of the lab hosts."""
    groups: dict[str, dict] = {}
    for host in hosts:
        for group in host.groups:
            groups.setdefault(group, {"hosts": {}})["hosts"][host.name] = None
    inventory = {"all": {
        "vars": {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(paths.client_key),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={paths.known_hosts} "
                                       "-o StrictHostKeyChecking=yes",
            "fleetctl_known_hosts": str(paths.known_hosts),
            "fleetctl_registry_mirror": REGISTRY_ADDR,
        },
        # Hosts share one network namespace, so each binds its services to its own
        # address; images come from the lab registry, standing in for every registry.
        "hosts": {h.name: {"ansible_host": h.address, "fleetctl_service_address": h.address,
                           **h.vars} for h in hosts},
        "children": groups,
    }}
    header = "# Written by `fleetctl lab up`; removed by `fleetctl lab down`.\n"
    paths.inventory.write_text(header + yaml.safe_dump(inventory, sort_keys=False))
    return paths.inventory


def teardown(paths: LabPaths) -> None:
    """Remove every trace of the lab: processes, cgroups, mounts, nft rules and files."""
    for name in lab_cgroup_names():
        Cgroup(name).kill_all()
    remove_lab_cgroups()
    faults.remove_nft_table()
    if paths.hosts.exists():
        for host_dir in paths.hosts.iterdir():
            umount(host_dir / "disk")
    if paths.root.exists():
        _unmount_below(paths.root)
        run(["rm", "-rf", "--one-file-system", str(paths.root)])


def _unmount_below(root: Path) -> None:
    prefix = str(root.resolve())
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix + "/")), key=len,
                        reverse=True):
        umount(Path(point))
