"""The inventory in the shape ``ansible-inventory --list`` prints, for tools that read it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fleetctl.inventory.model import Inventory
from fleetctl.vault import Vaulted

#: what ansible-core 2.19 names the shape of its --list output
PROFILE = "inventory_legacy"


def ansible_list(inventory: Inventory, hosts: Iterable[str] | None = None,
                 show: Callable[[dict[str, Any]], dict[str, Any]] = dict) -> dict[str, Any]:
    """``ansible-inventory --list`` of ``inventory`` (limited to ``hosts`` when given):
    groups reachable from ``all`` with their ``hosts`` and ``children`` (empty keys and
    empty groups left out), each host's merged variables, as ``show`` presents them, in
    ``_meta.hostvars``."""
    available = set(inventory.hosts if hosts is None else hosts)
    result: dict[str, Any] = {}
    seen: set[str] = set()

    def add(name: str) -> None:
        group = inventory.groups[name]
        entry: dict[str, Any] = {}
        if name != "all":
            members = [h for h in group.hosts if h in available]
            if members:
                entry["hosts"] = members
        if group.children:
            entry["children"] = list(group.children)
        if entry:
            result[name] = entry
        for child in group.children:
            if child not in seen:
                seen.add(child)
                add(child)

    add("all")
    hostvars = {name: closed(show(host.vars)) for name, host in inventory.hosts.items()
                if name in available and host.vars}
    return {"_meta": {"hostvars": hostvars, "profile": PROFILE}, **result}


def closed(value: Any) -> Any:
    """``value`` with each vaulted value not opened as ansible-inventory prints one:
    ``{"__ansible_vault": ENVELOPE}``."""
    if isinstance(value, Vaulted):
        return {"__ansible_vault": value.envelope}
    if isinstance(value, dict):
        return {k: closed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [closed(v) for v in value]
    return value
