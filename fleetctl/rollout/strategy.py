"""Rollout strategy: steps (Ansible's ``serial``), canary choice, failure policy. Pure.

Steps follow Ansible exactly: a number, or a percentage of *all* targeted hosts
rounded down with a minimum of 1; the list's last item repeats until every host
has a step. The first step is the canary. The failure policy is a count
(``max_failures: 2``: breached at 2) or a percentage (``'25%'``: breached when
*more* than 25% failed, as Ansible's ``max_fail_percentage``), per step or
cumulative. Unreachable hosts are deferred, not failed, unless the policy says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fleetctl.errors import InputError


def parse_steps(text: str | Sequence[Any], source: str = "--steps") -> list[str]:
    """``1,25%,100%`` (or a YAML list) as a list of step sizes; InputError when malformed."""
    items = [str(i).strip() for i in (text.split(",") if isinstance(text, str) else text)]
    for item in items:
        number = item[:-1] if item.endswith("%") else item
        if not number.isdigit() or int(number) == 0 or (item.endswith("%")
                                                         and int(number) > 100):
            raise InputError(f"{source}: step {item!r} should be a host count or a "
                             f"percentage, e.g. 1,25%,100%")
    if not items:
        raise InputError(f"{source}: give at least one step, e.g. 1,100%")
    return items


def step_size(item: str, total: int) -> int:
    """Hosts in a step: a count, or a percentage of ``total`` (floor, at least 1)."""
    if item.endswith("%"):
        return int(int(item[:-1]) / 100 * total) or 1
    return int(item)


def batches(hosts: Sequence[str], steps: Sequence[str]) -> list[list[str]]:
    """Split hosts into steps with Ansible's ``serial`` semantics."""
    result, index, position = [], 0, 0
    while position < len(hosts):
        size = step_size(steps[min(index, len(steps) - 1)], len(hosts))
        result.append(list(hosts[position:position + size]))
        position += size
        index += 1
    return result


def order_canaries_first(hosts: Sequence[str], classes: dict[str, tuple],
                         first_step: int, pinned: Sequence[str] = ()) -> list[str]:
    """Hosts reordered so the first step covers as many host classes as it can.

    ``classes`` maps a host to its class, e.g. (L4T, module). ``pinned`` (from
    ``--canary``) come first, then one host of each class not yet covered, in
    inventory order, until the first step is full; the rest keep their order.
    """
    chosen = [h for h in pinned if h in hosts]
    covered = {classes.get(h) for h in chosen}
    for host in hosts:
        if len(chosen) >= first_step:
            break
        if host not in chosen and classes.get(host) not in covered:
            chosen.append(host)
            covered.add(classes.get(host))
    for host in hosts:
        if len(chosen) >= max(first_step, len(pinned)):
            break
        if host not in chosen:
            chosen.append(host)
    return chosen + [h for h in hosts if h not in chosen]


@dataclass(frozen=True)
class FailurePolicy:
    """When a rollout stops: ``max_failures`` failed hosts (a count, or a percentage
    strictly exceeded), counted per step or over the whole rollout."""

    max_failures: str = "1"
    scope: str = "step"            # "step" or "cumulative"
    unreachable: str = "deferred"  # "deferred" or "failed"

    def breached(self, failed: int, hosts: int) -> bool:
        """Whether ``failed`` of ``hosts`` (in the step, or so far) breaks the policy."""
        if failed == 0:
            return False
        if self.max_failures.endswith("%"):
            return failed / max(hosts, 1) * 100 > int(self.max_failures[:-1])
        return failed >= int(self.max_failures)


def parse_policy(max_failures: str | int = "1", scope: str = "step",
                 unreachable: str = "deferred", source: str = "--max-failures") -> FailurePolicy:
    """A validated :class:`FailurePolicy`; InputError naming ``source`` otherwise."""
    text = str(max_failures).strip()
    number = text[:-1] if text.endswith("%") else text
    if not number.isdigit() or (text.endswith("%") and int(number) > 100) or \
            (not text.endswith("%") and int(number) == 0):
        raise InputError(f"{source}: {text!r} should be a host count (at least 1) or a "
                         f"percentage such as 10%")
    if scope not in ("step", "cumulative"):
        raise InputError(f"{source}: scope {scope!r} should be step or cumulative")
    if unreachable not in ("deferred", "failed"):
        raise InputError(f"{source}: unreachable {unreachable!r} should be deferred or failed")
    return FailurePolicy(text, scope, unreachable)
