#!/usr/bin/env python3
"""Plan one package for K lab hosts against the lab registry: cold and warm cache.

The hosts are sshd-only copies of the default lab's Jetsons (every L4T from
R32.7 to R36.4, so every autotag rule runs); their facts are probed once first,
so the figures are the planner's own: registry round trips and autotag. For
each case it prints the median of --runs of the whole `fleetctl plan` command
(wall and CPU, as a user sees it) and of the planning step alone, in-process,
with the number of registry requests it made.

Usage, as root with no lab running:
    .venv/bin/python bench/plan.py --hosts 100
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from benchlab import ROOT, default_spec, fleetctl, own_the_lab

sys.path.insert(0, str(ROOT))

from fleetctl.catalog.packages import Request, load_catalog
from fleetctl.catalog.registry import RegistryClient
from fleetctl.facts.probe import probe_hosts
from fleetctl.inventory.ansible import load_inventory
from fleetctl.plan import make_plan
from fleetctl.state import StateDB


def clear_registry_cache(state: Path) -> None:
    with sqlite3.connect(state / "state.db") as db:
        db.execute("DELETE FROM registry_cache")


def timed_cli(args: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    fleetctl(*args, ok=(0, 4))     # 4: some host did not answer
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def timed_core(inventory: str, state: Path, package: str) -> tuple[float, float, int, int]:
    """Plan in-process: wall, CPU, registry requests, entries with a target."""
    requests = {"n": 0}
    original = RegistryClient._get

    def counting(self, *args, **kwargs):
        requests["n"] += 1
        return original(self, *args, **kwargs)

    RegistryClient._get = counting
    try:
        db = StateDB(state)
        hosts = load_inventory(Path(inventory)).select("all", None)
        results = probe_hosts(hosts, db, max_age=1e9)
        cpu0, start = time.process_time(), time.monotonic()
        plan = make_plan(load_catalog(ROOT / "packages"), [Request(package)], results, db)
        wall, cpu = time.monotonic() - start, time.process_time() - cpu0
        db.close()
    finally:
        RegistryClient._get = original
    return wall, cpu, requests["n"], sum(1 for e in plan.entries if e.digest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--package", default="ollama")
    args = parser.parse_args()
    own_the_lab()
    spec = default_spec()
    jetsons = [h for h in spec["hosts"] if "nv_tegra_release" in h]
    for host in jetsons:
        host.update(docker=False, disk="16m")
        host.pop("compose", None)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "spec.yml").write_text(yaml.safe_dump({"hosts": jetsons}))
        fleetctl("lab", "up", "--spec", str(tmp / "spec.yml"), "--hosts", str(args.hosts))
        try:
            status = json.loads(fleetctl("lab", "status", "--json"))
            figures = run(status["inventory"], tmp / "state", args)
        finally:
            fleetctl("lab", "down")
    report(figures, args)


def run(inventory: str, state: Path, args: argparse.Namespace) -> dict:
    cli = ["plan", args.package, "-i", inventory, "--limit", "all", "--state-dir", str(state),
           "--max-age", "1e9", "--format", "json"]
    fleetctl("facts", "-i", inventory, "--state-dir", str(state), "--refresh")
    figures: dict[str, list] = {"cli cold": [], "cli warm": [], "core cold": [],
                                "core warm": []}
    for _ in range(args.runs):
        clear_registry_cache(state)
        figures["cli cold"].append(timed_cli(cli))
        figures["cli warm"].append(timed_cli(cli))
        clear_registry_cache(state)
        figures["core cold"].append(timed_core(inventory, state, args.package))
        figures["core warm"].append(timed_core(inventory, state, args.package))
    return figures


def report(figures: dict, args: argparse.Namespace) -> None:
    k = args.hosts
    print(f"fleetctl plan {args.package} for {k} lab hosts, median of {args.runs} runs")
    print(f"{'case':<11} {'wall s':>7} {'CPU s':>6} {'CPU ms/host':>11} {'requests':>8} "
          f"{'targets':>7}")
    for case, rows in figures.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        extra = (f"{statistics.median(r[2] for r in rows):>8.0f} "
                 f"{statistics.median(r[3] for r in rows):>7.0f}") if len(rows[0]) > 2 else ""
        print(f"{case:<11} {wall:>7.3f} {cpu:>6.3f} {cpu / k * 1000:>11.2f} {extra}")
    cold = statistics.median(r[0] for r in figures["core cold"])
    warm = statistics.median(r[0] for r in figures["core warm"])
    print(f"warm cache: {cold / warm:.1f}x faster planning than cold")


if __name__ == "__main__":
    main()
