"""The plan for one host, pure: a real lab Orin Nano's probe output (R36.4.3, the lab's
x86_64 engine), the shipped ollama package, and tags as jetson-containers names them."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetctl.catalog.imageref import PlatformImage
from fleetctl.catalog.packages import Request, load_catalog
from fleetctl.digest import Digest
from fleetctl.facts.hostfacts import parse_probe
from fleetctl.facts.probe import ProbeResult
from fleetctl.inventory.model import Host
from fleetctl.plan import make_plan, plan_host, transfer_by_site

from ..fakedevice import FakeDevice

ROOT = Path(__file__).resolve().parents[2]
OLLAMA = load_catalog(ROOT / "packages").get("ollama")
REPO = "127.0.0.1:5000/dustynv/ollama"


def digest(n: int) -> Digest:
    return Digest(f"sha256:{n:064x}")


IMAGES = [
    PlatformImage("0.7.0-r36.4.0-cu126-22.04", digest(70), "amd64", "linux", 1_000_000),
    PlatformImage("0.6.8-r36.4.0-cu126-22.04", digest(68), "amd64", "linux", 900_000),
    PlatformImage("0.7.0-r35.4.1-cu114-20.04", digest(35), "amd64", "linux", 800_000),
    PlatformImage("0.7.0-r38.2.0-cu130-24.04", digest(38), "amd64", "linux", 700_000),
    PlatformImage("0.7.0-r36.4.0-cu126-22.04-arm", digest(71), "arm64", "linux", 1_000_000),
]


def facts_running(version: str | None = None, n: int = 0):
    """The Orin Nano's facts, running ollama ``version`` (digest ``n``) or nothing."""
    device = FakeDevice("jetson-a1", package="ollama")
    if version:
        device.install("r1", f"{REPO}@{digest(n)}", version)
    return parse_probe(device._probe())


def test_a_fresh_host_installs_the_closest_l4t_for_its_engine() -> None:
    entry = plan_host("jetson-a1", facts_running(), OLLAMA, "0.7.0", IMAGES)
    assert (entry.action, entry.tag, entry.digest) == (
        "install", "0.7.0-r36.4.0-cu126-22.04", digest(70))
    assert entry.pull_bytes == 1_000_000 and all(c.ok for c in entry.checks)
    rejected = {r["tag"]: r["reason"] for r in entry.rejected}
    assert "0.7.0-r38.2.0-cu130-24.04" in rejected       # a newer L4T never fits R36.4
    assert "0.7.0-r35.4.1-cu114-20.04" in rejected
    assert "0.7.0-r36.4.0-cu126-22.04-arm" in rejected   # the engine is amd64


@pytest.mark.parametrize(("running", "requested", "action"), [
    (("0.6.8", 68), "0.7.0", "upgrade"), (("0.7.0", 70), "0.6.8", "downgrade"),
    (("0.7.0", 70), "0.7.0", "noop"),
])
def test_the_action_follows_what_runs(running: tuple[str, int], requested: str,
                                      action: str) -> None:
    entry = plan_host("jetson-a1", facts_running(*running), OLLAMA, requested, IMAGES)
    assert entry.action == action
    assert (entry.current_version, entry.current_digest) == (running[0], digest(running[1]))
    assert entry.pull_bytes == (0 if action == "noop" else entry.pull_bytes)


def test_no_image_of_the_version_blocks_with_the_reason() -> None:
    entry = plan_host("jetson-a1", facts_running(), OLLAMA, "9.9.9", IMAGES)
    assert entry.blocked and entry.digest is None and "9.9.9" in entry.reason


def test_an_image_too_big_for_the_disk_is_blocked_by_preflight() -> None:
    huge = [PlatformImage("0.7.0-r36.4.0-cu126-22.04", digest(70), "amd64", "linux", 2**32)]
    entry = plan_host("jetson-a1", facts_running(), OLLAMA, "0.7.0", huge)
    assert entry.blocked and entry.reason.startswith("preflight: disk:")


def test_make_plan_offline_per_host_site_and_unreachable() -> None:
    a1 = Host("jetson-a1", {"site": "s1", "fleetctl_bandwidth": "8mbit"}, ["g"], "t")
    b1 = Host("jetson-b1", {"site": "s1"}, ["g"], "t")
    gone = Host("jetson-b9", {"site": "s1"}, ["g"], "t")
    results = [ProbeResult(a1, facts_running()), ProbeResult(b1, facts_running("0.7.0", 70)),
               ProbeResult(gone, None, "timeout", "no answer")]
    plan = make_plan(load_catalog(ROOT / "packages"), [Request("ollama", "0.7.0")], results,
                     None, offline={"dustynv/ollama": IMAGES})
    assert [(e.host, e.action) for e in plan.entries] == [("jetson-a1", "install"),
                                                         ("jetson-b1", "noop")]
    assert plan.entries[0].target == f"dustynv/ollama@{digest(70)}"
    assert plan.unreachable == {"jetson-b9": "timeout: no answer"}
    [site] = transfer_by_site(plan)
    assert (site.site, site.hosts, site.bytes, site.seconds) == ("s1", 1, 1_000_000, 1.0)
