"""Fault injection on lab hosts, each fault observable from a client as on a real device.

- ``sshd-down``: the host's sshd is stopped; clients get "connection refused".
- ``hang``: every process of the host is frozen; TCP connects, the SSH banner never comes.
- ``unreachable``: nft drops packets to the host's address; connects time out.
- ``dockerd-down``: dockerd stops, its containers with it; "Cannot connect to the Docker daemon".
- ``disk-full``: one file fills the host's disk; writes fail with "no space left on device".
- ``slow-link``: sshd moves behind a proxy that delays and caps the link.
- ``gpu-saturated``, ``memory-exhausted``: the host's tegrastats reports GR3D_FREQ 99%,
  or RAM 40 MB short of the total.
- ``dpkg-interrupted``: the next ``nvidia-l4t-kernel`` configure kills dpkg halfway.
- ``disk-full-at-download``: the disk fills right after the next ``apt-get update``.
- ``reboot-hangs``: the next reboot never comes back (``heal`` powers the host on).
- ``capsule-not-applied``: reboots leave the firmware as it was, status 6162.
- ``new-slot-fails-to-boot``: a switch to the other rootfs slot fails; the bootloader
  marks it unbootable and boots the old slot again.
- ``behind-bastion``: the host's sshd refuses every connection but those the bastion
  (``--via``, the lab host whose sshd forwards them) opens: nft accepts sockets of the
  bastion's cgroup and resets the rest.
"""

from __future__ import annotations

import os
import sys

from fleetctl.errors import InputError, LabError
from fleetctl.lab.host import SSH_INNER_PORT, SSH_PORT, LabHost
from fleetctl.lab.system import CGROUP_ROOT, UNIFIED, Cgroup, alive, run, spawn, stop

KINDS = ("sshd-down", "hang", "unreachable", "dockerd-down", "disk-full", "slow-link",
         "gpu-saturated", "memory-exhausted", "dpkg-interrupted", "disk-full-at-download",
         "reboot-hangs", "capsule-not-applied", "new-slot-fails-to-boot", "behind-bastion")
#: faults that the host's own tools (tegrastats, the L4T packages) read in /run/fleetlab
MARKER_FAULTS = ("gpu-saturated", "memory-exhausted", "dpkg-interrupted",
                 "disk-full-at-download")
#: faults of a Jetson's firmware and L4T packages
JETSON_FAULTS = (*MARKER_FAULTS, "reboot-hangs", "capsule-not-applied",
                 "new-slot-fails-to-boot")
NFT_TABLE = "fleetlab"
FILL_FILE = ".fleetlab-fill"
#: what the disk-full-at-download fault fills the disk with (see lab/host.py)
DOWNLOAD_FILL = "/var/cache/apt/.fleetlab-fill"


def inject(host: LabHost, kind: str, params: dict) -> None:
    """Put ``kind`` on ``host``; a fault already on the host is left as it is."""
    check_fault_kind(kind)
    if kind in host.state.faults:
        return
    if kind == "dockerd-down" and not host.spec.docker:
        raise InputError(f"{host.spec.name} has no Docker engine; dockerd-down does not apply")
    if kind in JETSON_FAULTS and not host.spec.nv_tegra_release:
        raise InputError(f"{host.spec.name} is not a Jetson; {kind} does not apply")
    if kind == "sshd-down":
        stop(host.state.sshd)
        host.state.sshd = None
    elif kind == "hang":
        host.cgroup.freeze(True)
    elif kind == "unreachable":
        _nft_drop(host.spec.address, host.spec.name)
    elif kind == "behind-bastion":
        _behind_bastion(host, str(params.get("via") or ""))
    elif kind == "dockerd-down":
        host.stop_dockerd()
    elif kind == "disk-full":
        _fill(host)
    elif kind == "slow-link":
        _slow_link(host, params)
    if kind in MARKER_FAULTS:
        run(host.nsenter("sh", "-c", f"mkdir -p /run/fleetlab && touch /run/fleetlab/{kind}"))
    host.state.faults[kind] = dict(params)


def _fill(host: LabHost) -> None:
    """Grow one file until the host's disk is full. dockerd writes beside it, so the
    free space can shrink between reading it and allocating it: grow again until
    (almost) nothing is left, and fail loudly if the disk cannot be filled."""
    fill = host.disk / FILL_FILE
    left = 0
    for _ in range(20):
        free = os.statvfs(host.disk)
        left = free.f_bavail * free.f_frsize
        if left < 64 * 1024:
            return
        have = fill.stat().st_size if fill.exists() else 0
        for size in (have + left, have + left - left // 100):
            if run(["fallocate", "-l", str(size), str(fill)], check=False).returncode == 0:
                break
    raise LabError(f"{host.spec.name}: disk-full: {left:,} bytes still free on {host.disk}")


def heal(host: LabHost) -> list[str]:
    """Undo every fault on ``host``; return the kinds that were healed."""
    healed = list(host.state.faults)
    faults = host.state.faults
    if "hang" in faults:
        host.cgroup.freeze(False)
    if "unreachable" in faults or "behind-bastion" in faults:
        nft_undrop(host.spec.name)
    if "disk-full" in faults:
        (host.disk / FILL_FILE).unlink(missing_ok=True)
    if "dockerd-down" in faults:
        host.start_dockerd()
    for kind in MARKER_FAULTS:
        if kind in faults and alive(host.state.anchor):
            run(host.nsenter("rm", "-f", f"/run/fleetlab/{kind}", DOWNLOAD_FILL))
    if "reboot-hangs" in faults and host.state.rebooting:
        faults.clear()
        host.boot()
    if "slow-link" in faults:
        link = faults["slow-link"]
        stop(link.get("pid"))
        Cgroup(f"link-{host.spec.name}").remove()
        stop(host.state.sshd)
        host.start_sshd(SSH_PORT)
    elif "sshd-down" in faults:
        host.start_sshd(SSH_PORT)
    faults.clear()
    return healed


def _slow_link(host: LabHost, params: dict) -> None:
    delay, kbps = float(params.get("delay_ms", 100)), float(params.get("kbps", 0))
    if delay < 0 or kbps < 0:
        raise InputError("slow-link: --delay-ms and --kbps must not be negative")
    stop(host.state.sshd)
    host.start_sshd(SSH_INNER_PORT)
    cgroup = Cgroup(f"link-{host.spec.name}")
    cgroup.create()
    stats = host.dir / "link-stats.json"
    stats.unlink(missing_ok=True)       # counts start at zero with each new link
    argv = [sys.executable, "-m", "fleetctl.lab.slowlink",
            f"{host.spec.address}:{SSH_PORT}", f"{host.spec.address}:{SSH_INNER_PORT}",
            "--delay-ms", str(delay), "--kbps", str(kbps), "--stats", str(stats)]
    pid = spawn(argv, host.dir / "link.log", cgroup)
    host.wait_until(lambda: stats.exists(), "link", 10)
    params.update({"pid": pid, "delay_ms": delay, "kbps": kbps, "stats": str(stats)})


def _behind_bastion(host: LabHost, via: str) -> None:
    bastion = Cgroup(via).dirs()[-1]
    if not via or bastion.parent.parent != UNIFIED or not bastion.is_dir():
        raise InputError(f"behind-bastion: --via {via!r} should name a running lab host "
                         f"(and the machine needs the unified cgroup hierarchy at {UNIFIED})")
    ssh = ["ip", "daddr", host.spec.address, "tcp", "dport", str(SSH_PORT)]
    _nft_rule([*ssh, "socket", "cgroupv2", "level", "2",
               f'"{bastion.relative_to(CGROUP_ROOT)}"', "accept"], host.spec.name)
    _nft_rule([*ssh, "reject", "with", "tcp", "reset"], host.spec.name)


def _nft_drop(address: str, name: str, port: list[str] | None = None) -> None:
    _nft_rule(["ip", "daddr", address, *(port or []), "drop"], name)


def _nft_rule(rule: list[str], name: str) -> None:
    """Append ``rule`` to the lab's output chain, labelled ``name``."""
    if run(["nft", "list", "table", "inet", NFT_TABLE], check=False).returncode != 0:
        run(["nft", "add", "table", "inet", NFT_TABLE])
        run(["nft", "add", "chain", "inet", NFT_TABLE, "out",
             "{ type filter hook output priority 0; policy accept; }"])
    run(["nft", "add", "rule", "inet", NFT_TABLE, "out", *rule, "comment", f'"{name}"'])


def nft_drop_port(address: str, name: str) -> None:
    """Drop packets to ``address`` (``ip:port``), labelled ``name``."""
    ip, port = address.rsplit(":", 1)
    _nft_drop(ip, name, ["tcp", "dport", port])


def nft_undrop(name: str) -> None:
    """Remove the drop rules labelled ``name`` (and the table once none is left)."""
    listing = run(["nft", "-a", "list", "chain", "inet", NFT_TABLE, "out"], check=False)
    handles = [line.rsplit("# handle", 1)[1].strip()
               for line in listing.stdout.decode().splitlines()
               if f'comment "{name}"' in line and "# handle" in line]
    for handle in handles:
        run(["nft", "delete", "rule", "inet", NFT_TABLE, "out", "handle", handle])
    remaining = run(["nft", "list", "chain", "inet", NFT_TABLE, "out"], check=False)
    if "comment" not in remaining.stdout.decode():
        remove_nft_table()


def remove_nft_table() -> None:
    """Delete the lab's nft table if it exists."""
    if run(["nft", "list", "table", "inet", NFT_TABLE], check=False).returncode == 0:
        run(["nft", "delete", "table", "inet", NFT_TABLE])


def check_fault_kind(kind: str) -> None:
    """InputError for an unknown fault kind, before anything is sent to the lab."""
    if kind not in KINDS:
        raise InputError(f"unknown fault {kind!r}; kinds: {', '.join(KINDS)}")
