#!/usr/bin/env python3
"""Bring up N sshd-only lab hosts; report time and memory per host, then tear down.

Usage (as root, with no lab running): .venv/bin/python bench/lab_scale.py --hosts 100
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchlab import fleetctl, own_the_lab

CGROUPS = Path("/sys/fs/cgroup")


def pss_kib(pids: set[int]) -> int:
    """Proportional set size of ``pids``: shared pages counted once in all."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def host_pids() -> set[int]:
    pids: set[int] = set()
    for procs in (CGROUPS / "pids" / "fleetlab").glob("*/cgroup.procs"):
        if procs.parent.name != "registry":
            pids.update(int(p) for p in procs.read_text().split())
    return pids


def host_cgroup_bytes() -> int:
    return sum(int((d / "memory.usage_in_bytes").read_text())
               for d in (CGROUPS / "memory" / "fleetlab").iterdir()
               if d.is_dir() and d.name != "registry")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=100)
    args = parser.parse_args()
    own_the_lab()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "scale.yml"
        spec.write_text("hosts:\n  - {name: s, docker: false, disk: 16m}\n")
        start = time.monotonic()
        fleetctl("lab", "up", "--spec", str(spec), "--hosts", str(args.hosts))
        up_s = time.monotonic() - start
    status = json.loads(fleetctl("lab", "status", "--json"))
    running = sum(h["state"] == "running" for h in status["hosts"])
    pids = host_pids()
    pss, cgroup = pss_kib(pids), host_cgroup_bytes()
    start = time.monotonic()
    fleetctl("lab", "down")
    down_s = time.monotonic() - start
    n = args.hosts
    print(f"sshd-only lab hosts: {n} requested, {running} running")
    print(f"lab up:   {up_s:6.2f} s total, {1000 * up_s / n:6.1f} ms per host "
          "(includes registry start and image push)")
    print(f"memory:   {pss / 1024:6.1f} MiB PSS in all, {pss / n:6.0f} KiB per host "
          f"({len(pids)} processes)")
    print(f"cgroup:   {cgroup / 2**20:6.1f} MiB charged in all, {cgroup / n / 1024:6.0f} KiB "
          "per host (tmpfs disk pages included)")
    print(f"lab down: {down_s:6.2f} s total, {1000 * down_s / n:6.1f} ms per host")


if __name__ == "__main__":
    main()
