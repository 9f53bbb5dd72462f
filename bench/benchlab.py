"""What the benchmarks share: running the CLI, owning the lab, the default lab spec."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def fleetctl(*args: str, ok: tuple[int, ...] = (0,)) -> str:
    """Run the CLI; exit with its error unless its status is in ``ok``."""
    result = subprocess.run([sys.executable, "-m", "fleetctl", *args], cwd=ROOT,
                            capture_output=True, text=True)
    if result.returncode not in ok:
        sys.exit(f"fleetctl {' '.join(args)} failed: {result.stderr.strip()[-400:]}")
    return result.stdout


def own_the_lab() -> None:
    """Exit unless no lab is up: a benchmark brings up and tears down its own."""
    if json.loads(fleetctl("lab", "status", "--json"))["up"]:
        sys.exit("a lab is up: run `fleetctl lab down` first (this benchmark owns the lab)")


def default_spec() -> dict:
    """The default lab spec (``inventories/lab/fleet.yml``)."""
    return yaml.safe_load((ROOT / "inventories" / "lab" / "fleet.yml").read_text())
