"""The lab's local registry: Debian's docker-registry binary on 127.0.0.1:5000.

The binary (and static busybox for the images) come from Debian packages that
are downloaded and unpacked into the lab cache, never installed: installing
docker-registry would start a system service listening on every address.
"""

from __future__ import annotations

from pathlib import Path

from fleetctl.errors import LabError
from fleetctl.lab.system import LabPaths, run, start_http_daemon

REGISTRY_ADDR = "127.0.0.1:5000"
REGISTRY_URL = f"http://{REGISTRY_ADDR}"
PACKAGES = {"docker-registry": "usr/bin/docker-registry", "busybox-static": "bin/busybox"}

CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: {addr}
"""


def unpacked(paths: LabPaths, package: str) -> Path:
    """Path of ``package``'s binary, downloading and unpacking the .deb on first use."""
    binary = paths.pkg / PACKAGES[package]
    if binary.exists():
        return binary
    debs = paths.cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    _download(debs, package)
    for deb in sorted(debs.glob(f"{package}_*.deb")):
        run(["dpkg-deb", "-x", str(deb), str(paths.pkg)])
    if not binary.exists():
        raise LabError(f"{package}: no {PACKAGES[package]} in the package; "
                       f"run 'apt-get update' and try again")
    return binary


def _download(debs: Path, package: str) -> None:
    """``apt-get download`` the package; refresh the package lists once if apt knows none."""
    for attempt in (1, 2):
        result = run(["apt-get", "download", package], cwd=debs, timeout=300, check=False)
        if result.returncode == 0:
            return
        if attempt == 1:
            run(["apt-get", "update", "-qq"], timeout=300, check=False)
    err = result.stderr.decode(errors="replace").strip().splitlines()
    raise LabError(f"cannot download the Debian package {package}: "
                   f"{err[-1] if err else 'apt-get failed'}")


def start_registry(paths: LabPaths) -> int:
    """Start the registry (unless it answers already) and return its PID."""
    binary = unpacked(paths, "docker-registry")
    (paths.registry / "data").mkdir(parents=True, exist_ok=True)
    config = paths.registry / "config.yml"
    config.write_text(CONFIG.format(data=paths.registry / "data", addr=REGISTRY_ADDR))
    return start_http_daemon("registry", [str(binary), "serve", str(config)],
                             paths.registry / "registry.log", paths.registry / "pid",
                             "registry", REGISTRY_ADDR, f"{REGISTRY_URL}/v2/")
