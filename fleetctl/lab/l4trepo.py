"""The lab's NVIDIA apt repository: small ``nvidia-l4t-*`` packages for several L4T
releases, laid out like ``repo.download.nvidia.com/jetson/<repo> r<major>.<minor>``,
indexed by ``apt-ftparchive``, signed with a lab GPG key and served on loopback.

The packages' maintainer scripts leave a host the way NVIDIA's end up: ``nvidia-l4t-core``
rewrites ``/etc/nv_tegra_release``, ``nvidia-l4t-bootloader`` stages the firmware as a
UEFI capsule in the ESP (``/boot/efi/EFI/UpdateCapsule/TEGRA_BL.Cap``) that the next
reboot applies, and the dpkg database carries the new versions. ``nvidia-l4t-kernel``'s
postinst kills dpkg when the host has the ``dpkg-interrupted`` fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetctl.facts.jetson import parse_nv_tegra_release, release_line_date
from fleetctl.lab.system import LabPaths, run, start_http_daemon

APT_ADDR = "127.0.0.1:8010"
APT_URL = f"http://{APT_ADDR}"
#: the release lines the lab's packages write (real ones, from the hosts and the facts)
RELEASE_LINES = (
    "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
    "DATE: Tue Aug  1 19:57:35 UTC 2023",
    "# R35 (release), REVISION: 6.0, GCID: 37391689, BOARD: t186ref, EABI: aarch64, "
    "DATE: Wed Aug 28 09:12:27 UTC 2024",
    "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64, "
    "DATE: Mon May  6 17:34:21 UTC 2024",
    "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, "
    "DATE: Fri Sep 13 04:36:44 UTC 2024",
    "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
    "DATE: Wed Jan  8 01:49:37 UTC 2025",
    "# R36 (release), REVISION: 4.7, GCID: 42132812, BOARD: generic, EABI: aarch64, "
    "DATE: Thu Sep 18 22:54:44 UTC 2025",
)
#: the SoC repositories of each major release (R35: Xavier and Orin, R36: Orin alone)
SOCS = {"35": ("t194", "t234"), "36": ("t234",)}
KERNEL = {"35": "5.10.216", "36": "5.15.148"}
L4T_PACKAGES = ("nvidia-l4t-core", "nvidia-l4t-kernel", "nvidia-l4t-bootloader")
FAULT_DIR = "/run/fleetlab"
CAPSULE = "/boot/efi/EFI/UpdateCapsule/TEGRA_BL.Cap"


def release_file(line: str) -> str:
    """``/etc/nv_tegra_release`` for a release line (R36 adds its out-of-tree lines)."""
    text = line.rstrip("\n") + "\n"
    if parse_nv_tegra_release(line).startswith("36."):
        text += ("# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n"
                 "TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n")
    return text


def package_version(line: str) -> str:
    """``36.4.3-20250108014937``: the L4T release and the line's date as a build stamp."""
    date = release_line_date(line)
    stamp = date.strftime("%Y%m%d%H%M%S") if date else "00000000000000"
    return f"{parse_nv_tegra_release(line)}-{stamp}"


@dataclass(frozen=True)
class L4TPackage:
    """One lab ``nvidia-l4t-*`` package of one release."""

    name: str
    version: str
    description: str
    postinst: str


def packages_for(line: str) -> list[L4TPackage]:
    """The lab's ``nvidia-l4t-*`` packages of the release ``line`` names."""
    l4t = parse_nv_tegra_release(line)
    major = l4t.split(".")[0]
    version = package_version(line)
    release = release_file(line).replace("'", "")
    capsule = (f"mkdir -p {CAPSULE.rsplit('/', 1)[0]}\necho {l4t} > {CAPSULE}\n"
               if int(major) >= 35 else "")
    return [
        L4TPackage("nvidia-l4t-core", version, "NVIDIA Core Package",
                   f"printf '%s' '{release}' > /etc/nv_tegra_release\n"),
        L4TPackage("nvidia-l4t-kernel", f"{KERNEL.get(major, '4.9.337')}-tegra-{version}",
                   "NVIDIA Kernel Package",
                   f"if [ -e {FAULT_DIR}/dpkg-interrupted ]; then kill -KILL $PPID; "
                   f"exit 1; fi\n"),
        L4TPackage("nvidia-l4t-bootloader", version, "NVIDIA Bootloader Package", capsule),
    ]


def status_stanzas(line: str, arch: str) -> str:
    """dpkg status entries of a host installed at the release ``line`` names."""
    return "".join(
        f"Package: {p.name}\nStatus: install ok installed\nPriority: standard\n"
        f"Section: misc\nInstalled-Size: 64\nMaintainer: NVIDIA Corporation\n"
        f"Architecture: {arch}\nVersion: {p.version}\nDescription: {p.description}\n"
        f" Jetson Linux (L4T) {parse_nv_tegra_release(line)}.\n\n"
        for p in packages_for(line))


def dist_of(l4t: str) -> str:
    """``36.4.3`` -> ``r36.4``: the apt source's codename."""
    major, minor = l4t.split(".")[:2]
    return f"r{major}.{minor}"


def build_repo(paths: LabPaths) -> Path:
    """Build the repository under the lab dir (once) and return it."""
    root = paths.root / "apt"
    if (root / "public.asc").exists():
        return root
    arch = run(["dpkg", "--print-architecture"]).stdout.decode().strip()
    build = root / "build"
    dists: set[tuple[str, str]] = set()       # (repository, codename)
    for line in RELEASE_LINES:
        l4t = parse_nv_tegra_release(line)
        dists.add(("common", dist_of(l4t)))
        for soc in SOCS[l4t.split(".")[0]]:
            pool = root / "jetson" / soc / "pool"
            pool.mkdir(parents=True, exist_ok=True)
            dists.add((soc, dist_of(l4t)))
            for package in packages_for(line):
                _build_deb(build / soc, pool, package, arch)
    home = _key(root)
    for repo, dist in sorted(dists):
        base = root / "jetson" / repo
        binary = base / "dists" / dist / "main" / f"binary-{arch}"
        binary.mkdir(parents=True, exist_ok=True)
        (base / "pool").mkdir(exist_ok=True)
        # a dist lists its own release's packages (as NVIDIA's r36.4 lists every 36.4.x)
        listing = run(["apt-ftparchive", "packages", "pool"], cwd=base).stdout.decode()
        (binary / "Packages").write_text(_only(listing, dist))
        release = run(["apt-ftparchive", "-o", f"APT::FTPArchive::Release::Codename={dist}",
                       "-o", f"APT::FTPArchive::Release::Suite={dist}",
                       "-o", "APT::FTPArchive::Release::Origin=fleetlab",
                       "-o", f"APT::FTPArchive::Release::Architectures={arch}",
                       "-o", "APT::FTPArchive::Release::Components=main",
                       "release", "."], cwd=base / "dists" / dist).stdout
        (base / "dists" / dist / "Release").write_bytes(release)
        for argv, out in ((["--clearsign"], "InRelease"), (["-abs"], "Release.gpg")):
            run(["gpg", "--batch", "--yes", "--homedir", str(home), *argv, "-o",
                 str(base / "dists" / dist / out), str(base / "dists" / dist / "Release")])
    run(["gpg", "--batch", "--homedir", str(home), "--armor", "--output",
         str(root / "public.asc"), "--export", "lab@fleetlab.invalid"])
    return root


def _only(listing: str, dist: str) -> str:
    """The stanzas of ``apt-ftparchive packages`` whose version is of ``dist``."""
    keep = []
    for stanza in listing.strip().split("\n\n"):
        version = next((ln.split(": ", 1)[1] for ln in stanza.splitlines()
                        if ln.startswith("Version: ")), "")
        l4t = version.split("tegra-")[-1].split("-")[0]
        if stanza.strip() and dist_of(l4t) == dist:
            keep.append(stanza.strip() + "\n")
    return "\n".join(keep)


def _build_deb(build: Path, pool: Path, package: L4TPackage, arch: str) -> None:
    tree = build / f"{package.name}_{package.version}"
    (tree / "DEBIAN").mkdir(parents=True, exist_ok=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {package.name}\nVersion: {package.version}\nArchitecture: {arch}\n"
        f"Maintainer: NVIDIA Corporation (fleetlab stand-in)\nSection: misc\n"
        f"Priority: standard\nDescription: {package.description}\n"
        f" A lab stand-in for NVIDIA Jetson Linux.\n")
    script = tree / "DEBIAN" / "postinst"
    script.write_text(f"#!/bin/sh\nset -e\n[ \"$1\" = configure ] || exit 0\n"
                      f"{package.postinst}")
    script.chmod(0o755)
    share = tree / "opt" / "nvidia" / "l4t-packages"
    share.mkdir(parents=True, exist_ok=True)
    (share / package.name).write_text(f"{package.version}\n")
    deb = pool / f"{package.name}_{package.version}_{arch}.deb"
    run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)])


def _key(root: Path) -> Path:
    """A fresh lab signing key (ed25519, no passphrase) in its own GnuPG home."""
    home = root / "gnupg"
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    run(["gpg", "--batch", "--homedir", str(home), "--passphrase", "", "--quick-gen-key",
         "fleetlab L4T repository <lab@fleetlab.invalid>", "ed25519", "sign", "never"])
    return home


def start_repo(paths: LabPaths) -> int:
    """Serve the repository on :data:`APT_ADDR` (unless it answers already)."""
    root = build_repo(paths)
    host, port = APT_ADDR.rsplit(":", 1)
    return start_http_daemon(
        "apt repository", ["python3", "-m", "http.server", "--bind", host, "--directory",
                           str(root), port],
        root / "http.log", root / "pid", "aptrepo", APT_ADDR, f"{APT_URL}/public.asc",
        timeout=10)


def apt_source(l4t: str, soc: str) -> str:
    """The host's ``nvidia-l4t-apt-source.list`` (NVIDIA's format, the lab's server)."""
    return (f"deb {APT_URL}/jetson/common {dist_of(l4t)} main\n"
            f"deb {APT_URL}/jetson/{soc} {dist_of(l4t)} main\n")

