"""A lab host's root filesystem slot: what a Jetson of one L4T release carries on its
root filesystem, as overlay layers (``<layer>/upper`` and ``<layer>/work``) above the
machine's own directories, and the slot's Docker data.

A host boots from slot ``a``; a Jetson with rootfs A/B (R35 and later) also has a slot
``b``, which an image-based update writes (``lab/fake-nv-ota-start.sh``, from a payload
made by :func:`write_slot` for the target release). What lives outside the slots (SSH
keys, /root, the firmware and the ESP) is the host's (:mod:`fleetctl.lab.host`).
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from fleetctl.facts.jetson import module_from_compatible
from fleetctl.lab.l4trepo import L4T_PACKAGES, apt_source, release_file, status_stanzas
from fleetctl.lab.spec import HostSpec
from fleetctl.lab.system import CGROUP_ROOT, LAB_CGROUP, run

#: the machine's directories each slot lays its own files over
LAYERS = ("etc", "opt", "usr_local", "var_lib", "var_cache", "var_log", "usr_bin")
#: what the host's ``reboot`` writes; the lab reboots the host when it appears
REBOOT_REQUEST = "/run/fleetlab-reboot"
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


def soc_of(spec: HostSpec) -> tuple[str, str]:
    """(module family, SoC repository) of a lab host: ``("orin", "t234")``."""
    family = module_from_compatible("\n".join(spec.compatible))["soc_family"] or "unknown"
    return family, {"orin": "t234", "xavier": "t194", "tx1-nano": "t210"}.get(family, "t234")


def board_spec(spec: HostSpec) -> str:
    """The host's TNSPEC (``/etc/nv_boot_control.conf``), from its device-tree part."""
    family, _ = soc_of(spec)
    part = next((c.split(",")[-1] for c in spec.compatible if "p3" in c or "p2" in c),
                "p0000-0000")
    board, sku = part.lstrip("p").split("-")[:2] if "-" in part else ("0000", "0000")
    return f"{board}-300-{sku}-A.0-1-0-jetson-{family}-lab-"


def write_slot(slot: Path, spec: HostSpec, repo_key: str) -> None:
    """A root filesystem for ``spec`` (its release, CUDA, Docker) in ``slot``;
    ``repo_key``: the lab apt repository's public key (armored)."""
    for layer in LAYERS:
        (slot / layer / "upper").mkdir(parents=True)
        (slot / layer / "work").mkdir()
    (slot / "docker").mkdir(mode=0o711)
    os.chmod(slot / "docker", 0o711)
    etc = slot / "etc" / "upper"
    (etc / "hostname").write_text(f"{spec.name}\n")
    _write_identity(slot, spec)
    _write_docker(slot, spec)
    if spec.nv_tegra_release:
        _write_tegrastats(slot, spec)
        _write_boot_tools(slot, spec)
        _write_apt(slot, spec, repo_key)


def _write_identity(slot: Path, spec: HostSpec) -> None:
    """nv_tegra_release, dpkg's view of the L4T packages, CUDA's version.json."""
    dpkg = slot / "var_lib" / "upper" / "dpkg"
    dpkg.mkdir()
    status = Path("/var/lib/dpkg/status").read_text()
    if spec.nv_tegra_release:
        (slot / "etc" / "upper" / "nv_tegra_release").write_text(
            release_file(spec.nv_tegra_release))
        arch = run(["dpkg", "--print-architecture"]).stdout.decode().strip()
        status += "\n" if not status.endswith("\n\n") else ""
        status += status_stanzas(spec.nv_tegra_release, arch)
        (dpkg / "info").mkdir()
        for name in L4T_PACKAGES:
            (dpkg / "info" / f"{name}.list").write_text("/.\n")
            (dpkg / "info" / f"{name}.md5sums").write_text("")
    (dpkg / "status").write_text(status)
    if spec.cuda:
        cuda = slot / "usr_local" / "upper" / "cuda"
        cuda.mkdir()
        version = f"{spec.cuda}.0"
        (cuda / "version.json").write_text(json.dumps({
            "cuda": {"name": "CUDA SDK", "version": version},
            "cuda_nvcc": {"name": "CUDA NVCC", "version": version},
        }, indent=3) + "\n")


def _write_boot_tools(slot: Path, spec: HostSpec) -> None:
    """The board spec, ``nvbootctrl`` (rootfs A/B from R35 on), NVIDIA's
    ``nv_ota_start.sh`` (R35 on) and a ``reboot`` the lab carries out."""
    major = int((spec.l4t or "0").split(".")[0])
    _, soc = soc_of(spec)
    (slot / "etc" / "upper" / "nv_boot_control.conf").write_text(
        f"TNSPEC {board_spec(spec)}\n"
        f"TEGRA_CHIPID 0x{ {'t234': 23, 't194': 19, 't210': 21}[soc]}\n")
    header = f"#!/bin/sh\nVERSION={spec.l4t} UNIFIED={0 if major >= 35 else 69}\n"
    _tool(slot / "usr_local" / "upper" / "bin" / "nvbootctrl",
          header + _script("fake-nvbootctrl.sh"))
    if major >= 35:
        _tool(slot / "usr_local" / "upper" / "sbin" / "nv_ota_start.sh",
              "#!/bin/sh\n" + _script("fake-nv-ota-start.sh"))
    _tool(slot / "usr_local" / "upper" / "sbin" / "reboot",
          f"#!/bin/sh\n# lab stand-in: the lab restarts this host\nsync\n"
          f"touch {REBOOT_REQUEST}\n")


def _write_apt(slot: Path, spec: HostSpec, repo_key: str) -> None:
    """apt reads NVIDIA's source at the host's release (the lab's repository, signed
    with its key) and nothing of the machine's sources; its package lists start empty."""
    apt = slot / "etc" / "upper" / "apt"
    (apt / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (apt / "sources.list.d" / "nvidia-l4t-apt-source.list").write_text(
        apt_source(spec.l4t or "", soc_of(spec)[1]))
    (apt / "sources.list").write_text("")
    (apt / "trusted.gpg.d").mkdir(exist_ok=True)
    (apt / "trusted.gpg.d" / "jetson-ota-public.asc").write_text(repo_key)
    (apt / "apt.conf.d").mkdir(exist_ok=True)
    (apt / "apt.conf.d" / "99fleetlab-faults").write_text(DOWNLOAD_FAULT_HOOK)
    _tool(slot / "usr_local" / "upper" / "sbin" / "fleetlab-fill-at-download",
          DOWNLOAD_FAULT_SCRIPT)
    for folder in ("sources.list.d", "preferences.d"):   # whiteouts hide the machine's
        (apt / folder).mkdir(exist_ok=True)
        machine = Path("/etc/apt") / folder
        for name in os.listdir(machine) if machine.is_dir() else []:
            if not (apt / folder / name).exists():
                os.mknod(apt / folder / name, 0o600 | 0o020000, os.makedev(0, 0))
    lists = slot / "var_lib" / "upper" / "apt" / "lists"
    lists.mkdir(parents=True)
    os.setxattr(lists, "trusted.overlay.opaque", b"y")


def _write_tegrastats(slot: Path, spec: HostSpec) -> None:
    """A ``tegrastats`` that prints its module's line format, driven by the host's
    containers (lab/fake-tegrastats.sh)."""
    major = (spec.l4t or "36").split(".")[0]
    family = {"36": "orin", "35": "xavier"}.get(major, "nano")
    cgroups = {c: CGROUP_ROOT / c / LAB_CGROUP / spec.name for c in ("memory", "cpuacct")}
    header = (f"#!/bin/sh\nFAMILY={family} TOTAL_MB={spec.memory_mb} "
              f"SWAP_MB={spec.memory_mb // 2} CORES={4 if family == 'nano' else 6} "
              f"MEM={cgroups['memory']} CPU={cgroups['cpuacct']}\n")
    _tool(slot / "usr_local" / "upper" / "bin" / "tegrastats",
          header + _script("fake-tegrastats.sh"))


def _write_docker(slot: Path, spec: HostSpec) -> None:
    usr_bin = slot / "usr_bin" / "upper"
    local_bin = slot / "usr_local" / "upper" / "bin"
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
        _tool(local_bin / "nvidia-container-runtime",
              "#!/bin/sh\n# lab stand-in: no GPU here, containers run on runc\n"
              'exec /usr/sbin/runc "$@"\n')
    etc = slot / "etc" / "upper"
    (etc / "docker").mkdir()
    (etc / "docker" / "daemon.json").write_text(json.dumps(daemon, indent=2) + "\n")


def _tool(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def _script(name: str) -> str:
    return (resources.files("fleetctl.lab") / name).read_text()
