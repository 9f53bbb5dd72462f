"""Rollout steps with Ansible's serial semantics, canary choice and failure policy."""

import pytest

from fleetctl.errors import InputError
from fleetctl.rollout.strategy import (
    FailurePolicy,
    batches,
    order_canaries_first,
    parse_policy,
    parse_steps,
)


def sizes(total: int, steps: str) -> list[int]:
    return [len(b) for b in batches([f"h{i}" for i in range(total)], parse_steps(steps))]


@pytest.mark.parametrize(("total", "steps", "expected"), [
    (50, "1,5,20%", [1, 5, 10, 10, 10, 10, 4]),   # Ansible's documented examples
    (20, "30%", [6, 6, 6, 2]),
    (5, "10%", [1, 1, 1, 1, 1]),
    (3, "1,5", [1, 2]),
    (8, "1,50%,100%", [1, 4, 3]),
    (3, "1,50%,100%", [1, 1, 1]),
    (4, "100%", [4]),
])
def test_batches_follow_ansible_serial(total: int, steps: str, expected: list[int]) -> None:
    assert sizes(total, steps) == expected


def test_batches_keep_every_host_once_in_order() -> None:
    hosts = [f"h{i}" for i in range(11)]
    assert [h for batch in batches(hosts, ["2", "30%"]) for h in batch] == hosts


@pytest.mark.parametrize("bad", ["0", "x", "1,,2", "150%", "-1", "0%"])
def test_bad_steps(bad: str) -> None:
    with pytest.raises(InputError, match="--steps"):
        parse_steps(bad)


def test_canaries_cover_each_class_first() -> None:
    hosts = ["a1", "a2", "a3", "b1", "b2", "b3"]
    classes = {"a1": ("36.4.3", "orin-nano"), "a2": ("36.4.3", "orin-nano"),
               "a3": ("35.6.0", "xavier-nx"), "b1": ("36.4.3", "orin-nano"),
               "b2": ("36.4.0", "agx-orin"), "b3": ("35.6.0", "xavier-nx")}
    assert order_canaries_first(hosts, classes, 3)[:3] == ["a1", "a3", "b2"]
    assert order_canaries_first(hosts, classes, 1) == hosts          # one canary: the first
    assert order_canaries_first(hosts, classes, 1, ["b3"])[0] == "b3"   # --canary wins
    assert sorted(order_canaries_first(hosts, classes, 3)) == sorted(hosts)


@pytest.mark.parametrize(("policy", "failed", "hosts", "breached"), [
    (FailurePolicy("1"), 1, 1, True),
    (FailurePolicy("1"), 0, 4, False),
    (FailurePolicy("2"), 1, 4, False),
    (FailurePolicy("2"), 2, 4, True),
    (FailurePolicy("50%"), 2, 4, False),   # must be exceeded, as max_fail_percentage
    (FailurePolicy("49%"), 2, 4, True),
    (FailurePolicy("100%"), 4, 4, False),
])
def test_failure_policy(policy: FailurePolicy, failed: int, hosts: int, breached: bool) -> None:
    assert policy.breached(failed, hosts) is breached


@pytest.mark.parametrize(("args", "message"), [
    (("0",), "at least 1"), (("120%",), "percentage"), (("1", "site"), "scope"),
    (("1", "step", "ignored"), "unreachable"),
])
def test_bad_policy(args: tuple, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_policy(*args)


@pytest.mark.parametrize(("args", "expected"), [
    ((" 25% ",), FailurePolicy("25%")),
    ((2, "cumulative", "failed"), FailurePolicy("2", "cumulative", "failed")),
    (("100%",), FailurePolicy("100%")),
    (("0%",), FailurePolicy("0%")),      # any failure breaches
])
def test_good_policy(args: tuple, expected: FailurePolicy) -> None:
    assert parse_policy(*args) == expected


@pytest.mark.parametrize(("args", "message"), [
    (("0",), "--max-failures: '0' should be a host count (at least 1) or a percentage "
             "such as 10%"),
    (("101%",), "--max-failures: '101%' should be a host count (at least 1) or a "
                "percentage such as 10%"),
    (("-1",), "--max-failures: '-1' should be a host count (at least 1) or a percentage "
              "such as 10%"),
    (("1", "site", "deferred", "playbook.yml: max_failures"),
     "playbook.yml: max_failures: scope 'site' should be step or cumulative"),
    (("1", "step", "ignored"),
     "--max-failures: unreachable 'ignored' should be deferred or failed"),
])
def test_bad_policy_says_exactly_what_is_wrong(args: tuple, message: str) -> None:
    with pytest.raises(InputError) as error:
        parse_policy(*args)
    assert str(error.value) == message
