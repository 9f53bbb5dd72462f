#!/usr/bin/env python3
"""A full rollout of ollama 0.6.8 -> 0.7.0 on K lab Jetsons (R36.4.3 Orin Nano, each
with its own dockerd), three ways, each on a fresh lab:

- baseline: in parallel on every host, `ssh host 'docker-compose pull && up -d'`, then
  the same health wait as the package's gate (GET /api/version answering 3 times in
  a row, every 2 s);
- fleetctl deploy --steps 100% (one step: what fleetctl's own work costs);
- the same with a catalog whose ollama ships no testinfra tests (what the gate's
  package tests cost, by difference);
- fleetctl deploy --steps 1,50%,100% (canary, then health-gated steps);
- a playbook with steps 1,100%, health gate only (--no-analysis), and the same with a
  canary analysis (probe requests at 5/s and container stats, two 2 s intervals,
  against up to three baseline hosts): the analysis' cost beyond its 4 s window.

Prints wall time, controller CPU per host, and fleetctl's overhead per host over the
baseline. Usage, as root with no lab running: .venv/bin/python bench/deploy.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import yaml
from benchlab import ROOT, default_spec, fleetctl, own_the_lab

PLAYBOOK = """name: bench
targets: {group: orin}
packages: [{name: ollama, version: "0.7.0"}]
strategy: {steps: [1, 100%]}
analysis:
  ollama:
    metrics:
      - name: generate
        requests: {method: POST, url: "http://{{ check_address }}:11434/api/generate",
                   rate: 5}
        interval: 2s
        count: 2
        success: p50_latency_ms <= 1.5 * baseline.p50_latency_ms and error_ratio < 0.05
      - name: memory
        container: {}
        interval: 2s
        count: 2
        failure: memory_growth_mb > 64 or restarts > 0
"""
COMPOSE = """services:
  ollama:
    image: {image}
    runtime: nvidia
    network_mode: host
    restart: unless-stopped
    command: ["ollama", "serve"]
    environment: {{OLLAMA_HOST: "{address}:11434"}}
"""


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def healthy(address: str, times: int = 3, interval: float = 2.0, limit: float = 90) -> None:
    streak, deadline = 0, time.monotonic() + limit
    while streak < times:
        if time.monotonic() > deadline:
            raise SystemExit(f"{address} never became healthy")
        try:
            with urllib.request.urlopen(f"http://{address}:11434/api/version", timeout=5):
                streak += 1
        except OSError:
            streak = 0
        if streak < times:
            time.sleep(interval)


def baseline(status: dict, image: str) -> None:
    def one(host: dict) -> None:
        compose = COMPOSE.format(image=image, address=host["address"])
        script = (f"mkdir -p /opt/bench && cd /opt/bench && cat > compose.yml <<'EOF'\n"
                  f"{compose}EOF\ndocker-compose -p bench pull -q && "
                  f"docker-compose -p bench up -d")
        subprocess.run(["ssh", "-F", status["ssh_config"], host["address"], script],
                       check=True, capture_output=True)
        healthy(host["address"])

    with ThreadPoolExecutor(len(status["hosts"])) as pool:
        list(pool.map(one, status["hosts"]))


def lab_up(spec: Path, hosts: int) -> dict:
    fleetctl("lab", "up", "--spec", str(spec), "--hosts", str(hosts))
    return json.loads(fleetctl("lab", "status", "--json"))


def timed(work) -> tuple[float, float]:
    cpu, start = cpu_children(), time.monotonic()
    work()
    return time.monotonic() - start, cpu_children() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=8)
    args = parser.parse_args()
    own_the_lab()
    default = default_spec()
    orin = next(h for h in default["hosts"] if h["name"] == "jetson-a1")
    results = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        spec = tmp / "spec.yml"
        spec.write_text(yaml.safe_dump({"hosts": [{**orin, "name": "orin"}]}))
        untested = tmp / "packages"
        shutil.copytree(ROOT / "packages", untested,
                        ignore=shutil.ignore_patterns("test_*.py", "__pycache__"))
        book = tmp / "bench.yml"
        book.write_text(PLAYBOOK)
        for case in ("baseline", "fleetctl 100%", "fleetctl 100% no tests",
                     "fleetctl 1,50%,100%", "playbook 1,100% gate only",
                     "playbook 1,100% analysed"):
            status = lab_up(spec, args.hosts)
            try:
                images = status["registry"]["images"]
                pin = {v: "127.0.0.1:5000/dustynv/ollama@"
                       + images[f"dustynv/ollama:{v}-r36.4.0-cu126-22.04"]
                       for v in ("0.6.8", "0.7.0")}
                state = tmp / case.replace(" ", "_")
                common = ["-i", status["inventory"], "--state-dir", str(state), "--limit",
                          "all", "--yes"]
                if case == "baseline":
                    baseline(status, pin["0.6.8"])
                    results[case] = timed(partial(baseline, status, pin["0.7.0"]))
                elif case.startswith("playbook"):
                    fleetctl("deploy", "ollama:0.6.8", *common, "--steps", "100%")
                    flags = ["--no-analysis"] if case.endswith("gate only") else []
                    results[case] = timed(partial(fleetctl, "run", str(book), *common[:4],
                                                  "--yes", *flags))
                else:
                    steps = case.split()[1]
                    if case.endswith("no tests"):
                        os.environ["FLEETCTL_PACKAGES"] = str(untested)
                    try:
                        fleetctl("deploy", "ollama:0.6.8", *common, "--steps", "100%")
                        results[case] = timed(partial(fleetctl, "deploy", "ollama:0.7.0",
                                                      *common, "--steps", steps))
                    finally:
                        os.environ.pop("FLEETCTL_PACKAGES", None)
            finally:
                fleetctl("lab", "down")
    k = args.hosts
    print(f"upgrade ollama 0.6.8 -> 0.7.0 on {k} lab hosts (one run each, fresh lab)")
    print(f"{'case':<24} {'wall s':>7} {'vs baseline':>11} {'CPU s':>6} {'CPU ms/host':>11}")
    base = results["baseline"][0]
    for case, (wall, cpu) in results.items():
        print(f"{case:<24} {wall:>7.2f} {wall / base:>10.2f}x {cpu:>6.2f} "
              f"{cpu / k * 1000:>11.0f}")


if __name__ == "__main__":
    main()
