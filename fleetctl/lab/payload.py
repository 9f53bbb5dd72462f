"""The lab's stand-in for NVIDIA's ``l4t_generate_ota_package.sh``: an image-based OTA
payload (``ota_payload_package.tar.gz``) that takes a lab Jetson to another L4T
release. It holds the board specs it is made for (``ota_board_specs.conf``, one TNSPEC
per line in the lab), the new root filesystem (``rootfs/``, a slot as
:func:`fleetctl.lab.rootfs.write_slot` writes it for the target release) and the
bootloader capsule (``bootloader/TEGRA_BL.Cap``). The lab's ``nv_ota_start.sh`` reads it.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from fleetctl.errors import InputError
from fleetctl.facts.jetson import cuda_for_l4t, parse_nv_tegra_release
from fleetctl.lab.l4trepo import RELEASE_LINES
from fleetctl.lab.rootfs import board_spec, write_slot
from fleetctl.lab.spec import HostSpec
from fleetctl.lab.system import LabPaths, run


def make_payload(paths: LabPaths, spec: HostSpec, target: str, out: Path) -> Path:
    """Write a payload that takes the lab host ``spec`` to L4T ``target`` to ``out``."""
    line = next((ln for ln in RELEASE_LINES if parse_nv_tegra_release(ln) == target), None)
    if line is None:
        known = ", ".join(parse_nv_tegra_release(ln) for ln in RELEASE_LINES)
        raise InputError(f"the lab has no L4T {target}; it has {known}")
    if not spec.is_jetson:
        raise InputError(f"{spec.name} is not a Jetson")
    new = replace(spec, nv_tegra_release=line, cuda=cuda_for_l4t(target) or spec.cuda)
    with tempfile.TemporaryDirectory(prefix="fleetlab-payload-") as tmp:
        root = Path(tmp)
        (root / "ota_board_specs.conf").write_text(f"{board_spec(spec)}\n")
        (root / "bootloader").mkdir()
        (root / "bootloader" / "TEGRA_BL.Cap").write_text(f"{target}\n")
        write_slot(root / "rootfs", new, (paths.root / "apt" / "public.asc").read_text())
        run(["tar", "--xattrs", "--xattrs-include=trusted.*", "-czf", str(out), "-C", tmp,
             "ota_board_specs.conf", "bootloader", "rootfs"])
    return out
