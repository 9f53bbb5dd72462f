#!/usr/bin/env python3
"""Images over a slow site uplink: ollama 0.7.0 to a site of K lab Orins that have
never had it, with ``--delivery ssh``, direct (the controller sends each host its
blobs) and ``--via-seed`` (one host gets them, the others fetch from it over the LAN).

Every host's sshd sits behind the lab's slow-link proxy (50 ms each way), which
counts the bytes that cross it: the uplink. The site's inventory sets
``fleetctl_bandwidth`` (default 1mbit), the cap fleetctl holds for blob data over
all of the site's hosts together; the proxies cap nothing, so probes, step scripts
and testinfra go at full speed. Each case: the same lab, hosts emptied first, a
``fleetctl deploy ollama:0.7.0 --steps 100%`` timed.

Prints bytes over the uplink (all hosts, and the largest blob), wall time and the
via-seed/direct ratios. Usage, as root with no lab running:
    .venv/bin/python bench/delivery.py [--hosts 4] [--bandwidth 1mbit]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from benchlab import default_spec, fleetctl, own_the_lab

EMPTY = ("docker rm -f $(docker ps -aq) >/dev/null 2>&1; docker rmi -f $(docker images -q) "
         ">/dev/null 2>&1; rm -rf /opt/fleetctl; true")


def uplink_bytes(status: dict) -> dict[str, int]:
    """Bytes the controller sent through each host's proxy."""
    return {h["name"]: json.loads(Path(h["faults"]["slow-link"]["stats"]).read_text())["up"]
            for h in status["hosts"]}


def run_case(status: dict, state: Path, *flags: str) -> tuple[float, dict[str, int]]:
    for host in status["hosts"]:
        fleetctl("lab", "heal", host["name"])
        subprocess.run(["ssh", "-F", status["ssh_config"], host["address"], EMPTY],
                       check=True, capture_output=True)
        fleetctl("lab", "fault", host["name"], "slow-link", "--delay-ms", "50")
    status = json.loads(fleetctl("lab", "status", "--json"))
    start = time.monotonic()
    fleetctl("deploy", "ollama:0.7.0", "-i", status["inventory"], "--state-dir", str(state),
             "--limit", "all", "--steps", "100%", "--yes", "--delivery", "ssh", *flags)
    return time.monotonic() - start, uplink_bytes(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--bandwidth", default="1mbit")
    args = parser.parse_args()
    own_the_lab()
    default = default_spec()
    orin = next(h for h in default["hosts"] if h["name"] == "jetson-a1")
    site_vars = {"site": "factory-b", "fleetctl_bandwidth": args.bandwidth}
    results = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        spec = tmp / "spec.yml"
        spec.write_text(yaml.safe_dump({"hosts": [{**orin, "name": "orin", "vars": site_vars,
                                                   "groups": ["factory-b"]}]}))
        fleetctl("lab", "up", "--spec", str(spec), "--hosts", str(args.hosts))
        try:
            status = json.loads(fleetctl("lab", "status", "--json"))
            for case, flags in (("direct", ()), ("via seed", ("--via-seed",))):
                results[case] = run_case(status, tmp / case.replace(" ", "-"), *flags)
            blobs = tmp / "direct" / "blobs" / "sha256"
            layer = max(p.stat().st_size for p in blobs.iterdir())
        finally:
            fleetctl("lab", "down")
    k = args.hosts
    print(f"ollama 0.7.0 over SSH to a site of {k} lab Orins, cap {args.bandwidth} for the "
          f"site's blobs, 50 ms each way; largest blob {layer:,} bytes")
    print(f"{'case':<10} {'uplink bytes':>13} {'x largest blob':>14} {'per host':>22} "
          f"{'wall s':>7}")
    for case, (wall, sent) in results.items():
        per_host = "/".join(f"{v // 1000}k" for v in sent.values())
        total = sum(sent.values())
        print(f"{case:<10} {total:>13,} {total / layer:>14.2f} {per_host:>22} {wall:>7.1f}")
    (dw, ds), (sw, ss) = results["direct"], results["via seed"]
    print(f"via seed / direct: bytes {sum(ss.values()) / sum(ds.values()):.2f}, "
          f"wall time {sw / dw:.2f}")


if __name__ == "__main__":
    main()
