#!/usr/bin/env python3
"""Load a big inventory: fleetctl beside ansible-inventory on the same file.

Writes an inventory of N hosts (INI, about 400 bytes a host as real ones with many
variables are, and the same as YAML): regions > sites > lines, a group_vars/ file per
site, vars on every level. Then, for each format, runs `fleetctl inventory list --format
ansible` and `ansible-inventory --list` (ansible-core from the test extra) --runs times
each, prints the median wall time, the peak memory of each process and their ratios, and
checks the two print the same JSON. A half-size run shows whether loading is linear.

Usage:
    .venv/bin/python bench/inventory.py --hosts 50000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)
ANSIBLE_INVENTORY = PYTHON.parent / "ansible-inventory"
SITES_PER_REGION, LINES_PER_SITE = 5, 4


def layout(hosts: int) -> list[tuple[str, str, str, str, dict]]:
    """(region, site, line, host, host vars) for every host."""
    sites = max(1, hosts // 1000)
    rows = []
    for i in range(hosts):
        site = i % sites
        region = site // SITES_PER_REGION
        line = (i // sites) % LINES_PER_SITE
        name = f"s{site:03d}-cam{i:06d}"
        rows.append((f"region{region}", f"site{site:03d}", f"site{site:03d}_line{line}", name, {
            "ansible_host": f"10.{site % 250}.{(i // 250) % 250}.{i % 250}",
            "ansible_user": "nvidia", "serial": f"1420{i:09d}",
            "model": "orin-nx-16gb" if i % 3 else "agx-orin-64gb",
            "location": f"line {line} bay {i % 40}", "rack": i % 17, "commissioned": True,
            "fleetctl_service_address": f"10.{site % 250}.{(i // 250) % 250}.{i % 250}",
            "notes": "camera over the conveyor, reflashed after the 2026 recall; see ticket",
            "calibration": f"cal-{i % 997:04d}-{(i * 7919) % 10007:05d}-v3",
        }))
    return rows


def ini_value(value: object) -> str:
    return repr(value) if not isinstance(value, str) else (
        f'"{value}"' if " " in value else value)


def write_ini(rows: list, folder: Path) -> Path:
    lines: dict[str, list[str]] = {}
    children: dict[str, set[str]] = {}
    for region, site, line, name, host_vars in rows:
        words = " ".join(f"{k}={ini_value(v)}" for k, v in host_vars.items())
        lines.setdefault(line, []).append(f"{name} {words}")
        children.setdefault(site, set()).add(line)
        children.setdefault(region, set()).add(site)
    out = []
    for group, members in lines.items():
        out += [f"[{group}]", *members, f"[{group}:vars]", "conveyor=belt-a", ""]
    for parent, kids in children.items():
        out += [f"[{parent}:children]", *sorted(kids), ""]
    out += ["[all:vars]", "ansible_python_interpreter=/usr/bin/python3", "ntp=pool.ntp.org"]
    path = folder / "hosts.ini"
    path.write_text("\n".join(out) + "\n")
    return path


def write_yaml(rows: list, folder: Path) -> Path:
    tree: dict = {}
    for region, site, line, name, host_vars in rows:
        regions = tree.setdefault(region, {"children": {}})["children"]
        lines = regions.setdefault(site, {"children": {}})["children"]
        lines.setdefault(line, {"hosts": {}, "vars": {"conveyor": "belt-a"}})["hosts"][name] = \
            host_vars
    doc = {"all": {"vars": {"ansible_python_interpreter": "/usr/bin/python3",
                            "ntp": "pool.ntp.org"}, "children": tree}}
    path = folder / "hosts.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
    return path


def write_group_vars(rows: list, folder: Path) -> None:
    (folder / "group_vars").mkdir(exist_ok=True)
    for site in sorted({row[1] for row in rows}):
        (folder / "group_vars" / f"{site}.yml").write_text(
            yaml.safe_dump({"registry_mirror": f"{site}.mirror.local:5000", "site": site}))


def run(command: list[str]) -> tuple[float, float, bytes]:
    """Wall seconds, peak memory (MiB) of the process, and what it printed."""
    with tempfile.TemporaryFile() as out:
        start = time.monotonic()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, cwd=ROOT,
                                   env={**os.environ, "ANSIBLE_LOCALHOST_WARNING": "0"})
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise SystemExit(f"{command[0]} exited {process.returncode}")
        out.seek(0)
        return wall, usage.ru_maxrss / 1024, out.read()


def measure(source: Path, runs: int) -> dict:
    tools = {"fleetctl": [str(PYTHON), "-m", "fleetctl", "inventory", "list", "-i", str(source),
                          "--format", "ansible"],
             "ansible-inventory": [str(ANSIBLE_INVENTORY), "-i", str(source), "--list"]}
    figures, printed = {}, {}
    for tool, command in tools.items():
        results = [run(command) for _ in range(runs)]
        figures[tool] = (statistics.median(r[0] for r in results), max(r[1] for r in results))
        printed[tool] = json.loads(results[0][2])
    figures["same"] = printed["fleetctl"] == printed["ansible-inventory"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not ANSIBLE_INVENTORY.exists():
        raise SystemExit(f"{ANSIBLE_INVENTORY} missing: pip install -e '.[test]'")
    print(f"{'hosts':>7} {'format':6} {'size':>8} {'fleetctl':>9} {'ansible':>9} {'ratio':>6} "
          f"{'fleetctl':>9} {'ansible':>9} {'same':>5}")
    print(f"{'':>7} {'':6} {'':>8} {'wall s':>9} {'wall s':>9} {'':>6} {'peak MiB':>9} "
          f"{'peak MiB':>9}")
    for hosts in (args.hosts // 2, args.hosts):
        rows = layout(hosts)
        for kind, write in (("ini", write_ini), ("yaml", write_yaml)):
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                source = write(rows, folder)
                write_group_vars(rows, folder)
                f = measure(source, args.runs)
                (fw, fm), (aw, am) = f["fleetctl"], f["ansible-inventory"]
                print(f"{hosts:>7} {kind:6} {source.stat().st_size / 2**20:>6.1f}MB "
                      f"{fw:>9.2f} {aw:>9.2f} {fw / aw:>6.2f} {fm:>9.0f} {am:>9.0f} "
                      f"{'yes' if f['same'] else 'NO':>5}", flush=True)


if __name__ == "__main__":
    main()
