"""Per-site transfer in a plan: link rates as tc writes them, bytes and time per uplink."""

import pytest

from fleetctl.errors import InputError
from fleetctl.plan import Plan, PlanEntry, site_bandwidth, transfer_by_site
from fleetctl.sizes import parse_rate


@pytest.mark.parametrize(("text", "rate"), [("512kbit", 64_000.0), ("10mbit", 1_250_000.0),
                                            ("1gbit", 125_000_000.0), ("100kbit/s", 12_500.0),
                                            ("2.5mbit", 312_500.0)])
def test_rates(text: str, rate: float) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["10mb", "fast", "10 MB/s", ""])
def test_bad_rates(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_a_bad_bandwidth_names_the_host() -> None:
    with pytest.raises(InputError, match="host b-line1-1: fleetctl_bandwidth: '10mb' is not"):
        site_bandwidth("b-line1-1", {"fleetctl_bandwidth": "10mb"})
    assert site_bandwidth("x", {}) is None


def entry(host: str, site: str, size: int, action: str = "upgrade") -> PlanEntry:
    return PlanEntry(host, "ollama", action, "", pull_bytes=size, site=site)


def test_bytes_and_time_per_site() -> None:
    mib = 2**20
    plan = Plan(["ollama"], ["ollama"], [
        entry("a1", "factory-a", 900 * mib), entry("a2", "factory-a", 900 * mib),
        entry("a4", "factory-a", 900 * mib, "blocked"),
        entry("b1", "factory-b", 40 * mib), entry("b2", "factory-b", 0, "noop"),
        entry("lab", "-", 5 * mib)], bandwidth={"factory-b": parse_rate("512kbit")})
    lab, a, b = transfer_by_site(plan)      # by site name
    assert (a.site, a.hosts, a.bytes, a.seconds) == ("factory-a", 2, 1800 * mib, None)
    assert (b.site, b.hosts, b.bytes) == ("factory-b", 1, 40 * mib)
    assert b.seconds == pytest.approx(40 * mib / 64_000)          # about 11 minutes
    assert (lab.site, lab.bytes) == ("-", 5 * mib)


def test_plan_files_keep_sites_and_rates() -> None:
    plan = Plan(["ollama"], ["ollama"], [entry("b1", "factory-b", 10)],
                bandwidth={"factory-b": 64_000.0})
    again = Plan.from_json(plan.to_json())
    assert again.bandwidth == {"factory-b": 64_000.0} and again.entries[0].site == "factory-b"
