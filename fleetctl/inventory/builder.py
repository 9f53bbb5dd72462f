"""Groups and hosts as inventory files declare them, resolved into an :class:`Inventory`
the way ansible-core resolves them.

Variables apply in ansible-core's order: ``all``'s inline vars, every other group's inline
vars, ``group_vars/all``, every other group's ``group_vars/`` file, the host's inline vars,
its ``host_vars/`` file; groups from shallow to deep, then by ``ansible_group_priority``,
then by name. A host that is in no group but ``all`` is in ``ungrouped``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fleetctl.errors import InputError
from fleetctl.inventory.model import Group, Host, Inventory
from fleetctl.inventory.varsfiles import VarsFolder
from fleetctl.vault import Vault, Vaulted


class InventoryBuilder:
    """What inventory files declared so far: groups, hosts and their inline variables."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {"all": Group("all", children=["ungrouped"]),
                                         "ungrouped": Group("ungrouped", parents=["all"])}
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.host_where: dict[str, str] = {}
        self.members: dict[str, set[str]] = {"all": set(), "ungrouped": set()}
        self.sources: list[Path] = []

    def group(self, name: str, where: str) -> Group:
        """The group ``name``, declared at ``where`` if it is new."""
        if name not in self.groups:
            self.groups[name] = Group(name, where=where)
            self.members[name] = set()
        return self.groups[name]

    def set_group_var(self, group: str, key: str, value: Any, where: str) -> None:
        """A group variable; ``ansible_group_priority`` becomes the group's priority, as
        in ansible-core (a whole number, else an InputError)."""
        if key != "ansible_group_priority":
            self.groups[group].vars[key] = value
            return
        if isinstance(value, bool) or not (isinstance(value, int) or (
                isinstance(value, str) and value.strip().lstrip("-").isdigit())):
            raise InputError(f"{where}: group {group}: ansible_group_priority {value!r} is not "
                             f"a whole number")
        self.groups[group].priority = int(value)

    def add_host(self, name: str, group: str, variables: dict[str, Any], where: str,
                 port: int | None = None) -> None:
        """Host ``name`` in ``group`` with some of its inline variables (later ones win);
        ``port`` (``host:2222``) counts where the host is first defined, as in
        ansible-core."""
        if port and name not in self.host_vars:
            variables = {"ansible_port": port, **variables}
        if name in self.host_vars:
            known = self.host_vars[name]
            old, new = known.get("ansible_host"), variables.get("ansible_host")
            if old and new and old != new:
                raise InputError(f"{where}: host {name!r} is already defined at "
                                 f"{self.host_where[name]} with ansible_host={old}, here "
                                 f"with {new}; keep one address per host")
            known.update(variables)
        else:
            self.host_vars[name] = dict(variables)
            self.host_where[name] = where
        if name not in self.members[group]:
            self.members[group].add(name)
            self.groups[group].hosts.append(name)

    def link(self, parent: str, child: str, where: str) -> None:
        """Make ``child`` a child group of ``parent``; a loop is an InputError."""
        p, c = self.groups[parent], self.groups[child]
        if child in p.children:
            return
        if child == parent or child in self._ancestors(parent):
            cycle = " -> ".join([parent, *self._path(child, parent)])
            raise InputError(f"{where}: group cycle {cycle}; a group cannot contain itself")
        p.children.append(child)
        c.parents.append(parent)

    def _path(self, start: str, goal: str) -> list[str]:
        """Groups from ``start`` down to its descendant ``goal``, both included."""
        came_from: dict[str, str] = {}
        level = [start]
        while level and goal not in came_from and goal != start:
            following = []
            for name in level:
                for child in self.groups[name].children:
                    if child not in came_from:
                        came_from[child] = name
                        following.append(child)
            level = following
        path = [goal]
        while path[-1] != start:
            path.append(came_from[path[-1]])
        return path[::-1]

    def _ancestors(self, name: str) -> set[str]:
        found: set[str] = set()
        todo = [name]
        while todo:
            for parent in self.groups[todo.pop()].parents:
                if parent not in found:
                    found.add(parent)
                    todo.append(parent)
        return found

    def finish(self, vars_dirs: Iterable[Path], vault: Vault | None = None) -> Inventory:
        """The inventory, with each host's variables merged as ansible-core merges them
        (``vars_dirs``: the folders whose ``group_vars/``, ``host_vars/`` apply) and its
        vaulted files and values opened with ``vault`` (values stay closed without it)."""
        for name, group in self.groups.items():
            if name != "all" and not group.parents:
                self.link("all", name, group.where)
        self._settle_ungrouped()
        folders = [(VarsFolder(d / "group_vars", vault), VarsFolder(d / "host_vars", vault))
                   for d in vars_dirs]
        group_files = {name: _merged(g.variables(name) for g, _ in folders)
                       for name in self.groups}
        host_files = {name: _merged(h.variables(name) for _, h in folders)
                      for name in self.host_vars}
        if vault is not None:
            for variables in (*(g.vars for g in self.groups.values()), *self.host_vars.values(),
                              *group_files.values(), *host_files.values()):
                for key, value in variables.items():
                    if isinstance(value, (Vaulted, dict, list)):
                        variables[key] = _opened(value, vault)
        lineage = self._lineage()
        depth = self._depths()
        position = {name: i for i, name in enumerate(self.groups)}
        direct: dict[str, list[str]] = {name: [] for name in self.host_vars}
        for name, group in self.groups.items():
            for host in group.hosts:
                direct[host].append(name)
        shared: dict[tuple[str, ...], tuple[list[str], dict[str, Any]]] = {}
        hosts: dict[str, Host] = {}
        for name, own in self.host_vars.items():
            key = tuple(direct[name])
            if key not in shared:       # hosts in the same groups share their group vars
                member = set().union(*(lineage[g] for g in key)) - {"all"}
                ordered = sorted(member, key=lambda g: (depth[g], self.groups[g].priority, g))
                merged = dict(self.groups["all"].vars)
                for g in ordered:
                    merged.update(self.groups[g].vars)
                merged.update(group_files["all"])
                for g in ordered:
                    merged.update(group_files[g])
                shared[key] = (sorted(member, key=position.__getitem__), merged)
            groups, merged = shared[key]
            hosts[name] = Host(name, {**merged, **own, **host_files[name]}, groups,
                               self.host_where[name])
            _check_connection(hosts[name])
        return Inventory(hosts, self.groups, self.sources)

    def _settle_ungrouped(self) -> None:
        grouped: set[str] = set()
        for name, members in self.members.items():
            if name not in ("all", "ungrouped"):
                grouped |= members
        ungrouped = self.groups["ungrouped"]
        ungrouped.hosts = [h for h in ungrouped.hosts if h not in grouped]
        listed = set(ungrouped.hosts)
        ungrouped.hosts += [h for h in self.host_vars if h not in grouped and h not in listed]
        self.members["ungrouped"] = set(ungrouped.hosts)

    def _lineage(self) -> dict[str, set[str]]:
        """Each group with every group above it."""
        lineage: dict[str, set[str]] = {}
        for name in self.groups:
            lineage[name] = {name} | self._ancestors(name)
        return lineage

    def _depths(self) -> dict[str, int]:
        """Each group's depth below ``all`` along its longest path, as ansible-core counts
        (parents before children, without recursion: nesting may be deep)."""
        waiting = {name: len(group.parents) for name, group in self.groups.items()}
        depth = {name: 0 for name in self.groups}
        ready = [name for name, count in waiting.items() if count == 0]
        while ready:
            name = ready.pop()
            for child in self.groups[name].children:
                depth[child] = max(depth[child], depth[name] + 1)
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
        return depth


def _opened(value: Any, vault: Vault) -> Any:
    """``value`` with every ``!vault`` value in it opened."""
    if isinstance(value, Vaulted):
        return vault.open(value.envelope, value.where)
    if isinstance(value, dict):
        return {k: _opened(v, vault) for k, v in value.items()}
    if isinstance(value, list):
        return [_opened(v, vault) for v in value]
    return value


def _merged(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(part)
    return merged


def _check_connection(host: Host) -> None:
    """The connection settings of the types fleetctl needs (InputError naming the host)."""
    port = host.setting("port")
    if port is not None and (isinstance(port, bool) or not str(port).strip().isdigit()
                             or not 0 < int(port) < 65536):
        raise InputError(f"{host.where}: host {host.name}: ansible_port {port!r} is not a "
                         f"port number (1-65535)")
    for setting in ("address", "user", "key_file"):
        value = host.setting(setting)
        if value is not None and (not isinstance(value, (str, int)) or isinstance(value, bool)
                                  or not str(value).strip()):
            raise InputError(f"{host.where}: host {host.name}: its {setting} {value!r} "
                             f"should be a string")
