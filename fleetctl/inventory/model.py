"""The inventory as fleetctl uses it: hosts with their effective variables, groups, and
Ansible's host patterns over them.

Patterns use Ansible's grammar: ``a:b`` (or ``a,b``) union, ``a:&b`` intersection,
``a:!b`` exclusion, shell wildcards and ``~regex``.
"""

from __future__ import annotations

import fnmatch
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetctl.errors import InputError, InputWarning
from fleetctl.inventory.templates import render
from fleetctl.vault import Vaulted


def truthy(value: Any) -> bool:
    """An Ansible boolean written as a string or a value: ``yes``, ``true``, ``1``, ``on``."""
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Group:
    """An inventory group: its own variables, hosts and child groups."""

    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    where: str = ""
    #: ``ansible_group_priority``: orders groups of one depth (kept out of ``vars``)
    priority: int = 1


#: a host pattern term with an index or a slice, as ansible-core reads it
_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]+)?)\]$")


def split_pattern(pattern: str) -> list[str]:
    """A pattern's terms as ansible-core splits them: on commas when there are any, else
    on colons outside ``[...]``."""
    pattern = pattern.strip()
    parts = pattern.split(",") if "," in pattern else re.split(r":(?![^\[]*\])", pattern)
    return [p.strip() for p in parts if p.strip()]


#: connection settings and the variables that set them, as ansible-core's ssh connection
#: plugin reads them (the last one set wins), then fleetctl's short names
CONNECTION_VARS = {
    "address": ("ansible_ssh_host", "ansible_host", "ssh_host"),
    "port": ("ansible_ssh_port", "ansible_port", "ssh_port"),
    "user": ("ansible_ssh_user", "ansible_user", "ssh_user"),
    "key_file": ("ansible_ssh_private_key_file", "ansible_private_key_file", "ssh_key"),
    "become": ("ansible_become", "become"),
    "become_user": ("ansible_become_user",),
    "become_password": ("ansible_become_password", "ansible_become_pass"),
}


@dataclass
class Host:
    """A host with its effective variables (as written: templates unrendered) and every
    group it belongs to."""

    name: str
    vars: dict[str, Any]
    groups: list[str]
    where: str

    def setting(self, name: str) -> Any:
        """A connection setting (a :data:`CONNECTION_VARS` key) from the first variable
        that sets it, its Jinja2 template rendered; None when no variable does."""
        for var in CONNECTION_VARS[name]:
            value = self.vars.get(var)
            if isinstance(value, Vaulted):
                str(value)          # InputError: vaulted, and no password to open it
            if value is not None:
                return render(value, var, self.vars, self.name, self.groups,
                              f"{self.where}: host {self.name}")
        return None

    @property
    def address(self) -> str:
        """Where to connect: ``ansible_host``, else the inventory name."""
        return str(self.setting("address") or self.name)

    @property
    def port(self) -> int:
        port = self.setting("port")
        return 22 if port is None else int(port)

    @property
    def user(self) -> str:
        return str(self.setting("user") or "root")

    @property
    def key_file(self) -> str | None:
        key = self.setting("key_file")
        return os.path.expanduser(str(key)) if key else None

    @property
    def become(self) -> bool:
        return truthy(self.setting("become") or False)


@dataclass
class Inventory:
    """Hosts in definition order and groups by name."""

    hosts: dict[str, Host]
    groups: dict[str, Group]
    sources: list[Path]

    def select(self, pattern: str | None = None, group: str | None = None) -> list[Host]:
        """Hosts matching ``--group`` and ``--limit`` (both when both are given), in the
        order ansible-core lists them.

        An unknown group or an empty result is an InputError that says what the inventory
        has (Ansible would run nothing); a pattern term that matches nothing is an
        :class:`InputWarning`, as in Ansible.
        """
        names = list(self.hosts)
        if group is not None:
            if group not in self.groups:
                raise InputError(f"no group {group!r} in {self._where()}; groups: "
                                 f"{', '.join(sorted(self.groups))}")
            names = self._group_hosts(group)
        unknown: list[str] = []
        if pattern:
            allowed = set(names)
            matched, unknown = self._match(pattern)
            names = [n for n in matched if n in allowed]
        if not names:
            what = " and ".join(x for x in (group and f"--group {group}",
                                            pattern and f"--limit {pattern}") if x)
            why = f" ({', '.join(map(repr, unknown))}: no such host or group)" if unknown else ""
            if {"localhost", "127.0.0.1"} & set(unknown):
                why += ("; Ansible's implicit localhost is the controller, which fleetctl does "
                        "not deploy to: list it in the inventory to target it")
            raise InputError(f"{what or 'the inventory'} matches no host in "
                             f"{self._where()}{why}")
        self._warn_unknown(pattern or "", unknown)
        return [self.hosts[n] for n in names]

    def match(self, pattern: str) -> list[str]:
        """Host names matching an Ansible pattern, as ansible-core evaluates it: its
        plain terms first (in the order they find hosts; ``all`` when there are none),
        then ``&`` intersections, then ``!`` exclusions. A term matches groups (their
        hosts in the group's order) and, when it matched no group or is a glob or a
        ``~regex`` (anchored at the start), hosts; ``web[0]``, ``web[-1]``, ``web[1:3]``,
        ``web[2:]`` pick from what it matched. A term that names nothing is an
        :class:`InputWarning`."""
        hosts, unknown = self._match(pattern)
        self._warn_unknown(pattern, unknown)
        return hosts

    def _match(self, pattern: str) -> tuple[list[str], list[str]]:
        """The hosts a pattern matches, and its terms that name no host or group."""
        terms = split_pattern(pattern)
        if not terms:
            raise InputError(f"empty host pattern {pattern!r}")
        plain = [t for t in terms if t[0] not in "!&"] or ["all"]
        ordered = plain + [t for t in terms if t[0] == "&"] + [t for t in terms if t[0] == "!"]
        hosts: list[str] = []
        unknown: list[str] = []
        for term in ordered:
            name = term[1:] if term[0] in "!&" else term
            # a host's own name wins over a group of that name
            found, known = ([name], True) if name in self.hosts else self._term(name, pattern)
            if not known:
                unknown.append(name)
            if term[0] == "!":
                excluded = set(found)
                hosts = [h for h in hosts if h not in excluded]
            elif term[0] == "&":
                kept = set(found)
                hosts = [h for h in hosts if h in kept]
            else:
                seen = set(hosts)
                hosts += [h for h in found if h not in seen]
        return hosts, unknown

    def _warn_unknown(self, pattern: str, unknown: list[str]) -> None:
        for term in unknown:        # Ansible warns and goes on, as does fleetctl
            warnings.warn(InputWarning(f"host pattern {pattern!r}: {term!r} matches no host "
                                       f"or group in {self._where()}; ignored"), stacklevel=3)

    def _term(self, term: str, pattern: str) -> tuple[list[str], bool]:
        """The hosts one term picks, and whether it names any host or group at all."""
        expression, subscript = term, None
        if not term.startswith("~"):
            found = _SUBSCRIPT.match(term)
            if found:
                expression = found[1]
                subscript = (int(found[2]), None) if found[2] is not None else \
                    (int(found[3]), int(found[5]) if found[5] else -1)
        try:
            regex = re.compile(expression[1:] if expression.startswith("~")
                               else fnmatch.translate(expression))
        except re.error as exc:
            raise InputError(f"bad regex in host pattern {pattern!r}: {exc}") from None
        groups = [g for g in self.groups if regex.match(g)]
        hosts = [h for g in groups for h in self._group_hosts(g)]
        if not groups or expression.startswith("~") or any(c in expression for c in ".?*["):
            hosts += [h for h in self.hosts if regex.match(h)]
        hosts = list(dict.fromkeys(hosts))
        known = bool(groups or hosts)
        if subscript is not None:
            start, end = subscript
            if end is None:
                hosts = [hosts[start]] if -len(hosts) <= start < len(hosts) else []
            else:
                hosts = hosts[start:(len(hosts) - 1 if end == -1 else end) + 1]
        return hosts, known

    def _group_hosts(self, group: str) -> list[str]:
        """A group's hosts in ansible-core's order: its own, then its children's, level by
        level."""
        order, level = [group], [group]
        while level:
            level = [c for g in level for c in self.groups[g].children if c not in order]
            level = list(dict.fromkeys(level))
            order += level
        hosts = [h for g in order for h in self.groups[g].hosts]
        if group == "all":          # every host is in all, wherever it was defined
            hosts += list(self.hosts)
        return list(dict.fromkeys(h for h in hosts if h in self.hosts))

    def _where(self) -> str:
        return ", ".join(str(s) for s in self.sources)
