#!/usr/bin/env python3
"""Probe K sshd-only lab hosts with fleetctl and with the tools people use today.

Each tool makes fresh connections to every host with strict host-key checking and
runs fleetctl's probe script (Ansible's setup module gathers its own facts).
Prints the median wall time of --runs runs, controller CPU per host (user+sys of
the whole process tree), the largest controller process's peak RSS, and ratios.

Usage, as root with no lab running:
    .venv/bin/python bench/probe.py --hosts 100
The comparison tools live in bench/.venv (created on first use): ansible-core,
pyinfra, asyncssh. fleetctl itself runs from the project's .venv.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlab import ROOT, own_the_lab

BENCH_VENV = ROOT / "bench" / ".venv"
TOOLS = ("ansible-core", "pyinfra", "asyncssh")

ASYNCSSH_CLIENT = r'''
import asyncio, sys, yaml, asyncssh
inv = yaml.safe_load(open(sys.argv[1]))["all"]
script = open(sys.argv[2]).read()
key = asyncssh.read_private_key(inv["vars"]["ansible_ssh_private_key_file"])
known = inv["vars"]["fleetctl_known_hosts"]
async def one(addr):
    async with asyncssh.connect(addr, username="root", client_keys=[key], known_hosts=known) as c:
        r = await c.run("sh -s", input=script)
        return "@@fleetctl:end" in r.stdout
async def main():
    hosts = [h["ansible_host"] for h in inv["hosts"].values()]
    ok = await asyncio.gather(*(one(a) for a in hosts), return_exceptions=True)
    sys.exit(0 if all(x is True for x in ok) else 1)
asyncio.run(main())
'''


def sh(argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def fleetctl(*args: str) -> str:
    result = sh([sys.executable, "-m", "fleetctl", *args], cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"fleetctl {' '.join(args)} failed: {result.stderr.strip()[-300:]}")
    return result.stdout


def ensure_bench_venv() -> Path:
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        print("creating bench/.venv with", ", ".join(TOOLS), file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *TOOLS], check=True)
    return BENCH_VENV / "bin"


def measure(argv: list[str], env: dict, check_output=None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of the process tree, peak RSS KiB of its largest process
    (GNU time's, which sees this run's processes only)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    with tempfile.NamedTemporaryFile("r") as peak:
        result = subprocess.run(["/usr/bin/time", "-q", "-f", "%M", "-o", peak.name, *argv],
                                capture_output=True, text=True, env=env, cwd=ROOT)
        wall = time.monotonic() - start
        rss = int(peak.read().split()[-1])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0 or (check_output and not check_output(result.stdout)):
        sys.exit(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()[-500:]}"
                 f"{result.stdout.strip()[-300:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    own_the_lab()
    tools = ensure_bench_venv()
    k = args.hosts
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        spec = tmp / "hosts.yml"
        spec.write_text("hosts:\n  - {name: s, docker: false, disk: 16m}\n")
        fleetctl("lab", "up", "--spec", str(spec), "--hosts", str(k))
        try:
            status = json.loads(fleetctl("lab", "status", "--json"))
            results = run_all(tools, tmp, status, k, args.runs)
        finally:
            fleetctl("lab", "down")
    report(results, k, args.runs)


def run_all(tools: Path, tmp: Path, status: dict, k: int, runs: int) -> dict:
    inventory = status["inventory"]
    key, known = status["client_key"], status["known_hosts"]
    script = tmp / "probe.sh"
    script.write_text((ROOT / "fleetctl" / "facts" / "probe.sh").read_text())
    (tmp / "ansible.cfg").write_text(
        f"[defaults]\nhost_key_checking = True\nforks = {k}\ngathering = explicit\n"
        "interpreter_python = /usr/bin/python3\nstdout_callback = minimal\n"
        "[ssh_connection]\npipelining = True\nssh_args = -o ControlMaster=no\n")
    pyinfra_inv = tmp / "pyinfra_inventory.py"
    hosts = [h["address"] for h in status["hosts"]]
    pyinfra_inv.write_text("hosts = " + repr([(a, {
        "ssh_user": "root", "ssh_key": key, "ssh_known_hosts_file": known,
        "ssh_strict_host_key_checking": "yes"}) for a in hosts]) + "\n")
    client = tmp / "asyncssh_probe.py"
    client.write_text(ASYNCSSH_CLIENT)
    env = {**os.environ, "ANSIBLE_CONFIG": str(tmp / "ansible.cfg"), "HOME": str(tmp),
           "PATH": f"{tools}:{os.environ['PATH']}"}
    state = tmp / "state"
    # one line, so every tool passes it through its own quoting unchanged
    probe = f"echo {base64.b64encode(script.read_bytes()).decode()} | base64 -d | sh"

    def fleetctl_ok(out: str) -> bool:
        return json.loads(out)["summary"]["answered"] == k

    commands = {
        "fleetctl audit": ([sys.executable, "-m", "fleetctl", "audit", "-i", inventory,
                            "--refresh", "--format", "json", "--state-dir", str(state)],
                           fleetctl_ok),
        "asyncssh (floor)": ([str(tools / "python"), str(client), inventory, str(script)], None),
        "pyinfra exec": ([str(tools / "pyinfra"), "-y", "--parallel", str(k), str(pyinfra_inv),
                          "exec", "--", probe], None),
        "pyinfra fact": ([str(tools / "pyinfra"), "-y", "--parallel", str(k), str(pyinfra_inv),
                          "fact", "server.Os", "server.Arch"], None),
        "ansible -m raw": ([str(tools / "ansible"), "all", "-i", inventory, "-m", "raw",
                            "-a", probe], None),
        "ansible -m setup": ([str(tools / "ansible"), "all", "-i", inventory, "-m", "setup"],
                             None),
    }
    results = {}
    for name, (argv, check) in commands.items():
        samples = [measure(argv, env, check) for _ in range(runs)]
        results[name] = (statistics.median(s[0] for s in samples),
                         statistics.median(s[1] for s in samples),
                         max(s[2] for s in samples))
        print(f"  measured {name}", file=sys.stderr)
    return results


def report(results: dict, k: int, runs: int) -> None:
    ours_wall = results["fleetctl audit"][0]
    print(f"probe of {k} sshd-only lab hosts, fresh connections, median of {runs} runs")
    print(f"{'tool':<18} {'wall s':>8} {'ctrl CPU ms/host':>17} {'peak RSS MiB':>13} "
          f"{'wall vs fleetctl':>17}")
    for name, (wall, cpu, rss) in results.items():
        print(f"{name:<18} {wall:8.2f} {1000 * cpu / k:17.1f} {rss / 1024:13.0f} "
              f"{wall / ours_wall:16.2f}x")


if __name__ == "__main__":
    main()
