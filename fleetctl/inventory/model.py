"""The inventory as fleetctl uses it: hosts with their effective variables, groups, and
Ansible's host patterns over them.

Patterns use Ansible's grammar: ``a:b`` (or ``a,b``) union, ``a:&b`` intersection,
``a:!b`` exclusion, shell wildcards and ``~regex``.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetctl.errors import InputError


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


@dataclass
class Host:
    """A host with its effective variables and every group it belongs to."""

    name: str
    vars: dict[str, Any]
    groups: list[str]
    where: str

    @property
    def address(self) -> str:
        """Where to connect: ``ansible_host``, else the inventory name."""
        return str(self.vars.get("ansible_host", self.name))

    @property
    def port(self) -> int:
        return int(self.vars.get("ansible_port", 22))

    @property
    def user(self) -> str:
        return str(self.vars.get("ansible_user", "root"))

    @property
    def key_file(self) -> str | None:
        key = self.vars.get("ansible_ssh_private_key_file")
        return os.path.expanduser(str(key)) if key else None

    @property
    def become(self) -> bool:
        return truthy(self.vars.get("ansible_become", False))


@dataclass
class Inventory:
    """Hosts in definition order and groups by name."""

    hosts: dict[str, Host]
    groups: dict[str, Group]
    sources: list[Path]

    def select(self, pattern: str | None = None, group: str | None = None) -> list[Host]:
        """Hosts matching ``--group`` and ``--limit`` (both when both are given).

        An unknown group, a pattern term that matches nothing, or an empty result
        is an InputError that says what the inventory has.
        """
        names = list(self.hosts)
        if group is not None:
            if group not in self.groups:
                raise InputError(f"no group {group!r} in {self._where()}; groups: "
                                 f"{', '.join(sorted(self.groups))}")
            names = self._group_hosts(group)
        if pattern:
            matched = set(self.match(pattern))
            names = [n for n in names if n in matched]
        if not names:
            what = " and ".join(x for x in (group and f"--group {group}",
                                            pattern and f"--limit {pattern}") if x)
            raise InputError(f"{what or 'the inventory'} matches no host in {self._where()}")
        return [self.hosts[n] for n in names]

    def match(self, pattern: str) -> list[str]:
        """Host names matching an Ansible pattern, in inventory order."""
        terms = [t for t in re.split(r"[:,](?![^\[]*\])", pattern.strip()) if t]
        if not terms:
            raise InputError(f"empty host pattern {pattern!r}")
        union: set[str] = set()
        intersect: list[set[str]] = []
        exclude: set[str] = set()
        for term in terms:
            if term.startswith("!"):
                exclude |= self._term(term[1:], pattern, required=False)
            elif term.startswith("&"):
                intersect.append(self._term(term[1:], pattern))
            else:
                union |= self._term(term, pattern)
        for other in intersect:
            union &= other
        return [n for n in self.hosts if n in union - exclude]

    def _term(self, term: str, pattern: str, required: bool = True) -> set[str]:
        if term in ("all", "*"):
            return set(self.hosts)
        if term in self.groups:
            return set(self._group_hosts(term))
        if term in self.hosts:
            return {term}
        if term.startswith("~"):
            try:
                regex = re.compile(term[1:])
            except re.error as exc:
                raise InputError(f"bad regex in host pattern {pattern!r}: {exc}") from None
            test = regex.search
        else:
            def test(name: str) -> bool:
                return fnmatch.fnmatchcase(name, term)
        found = {h for h in self.hosts if test(h)}
        for g in self.groups:
            if test(g):
                found.update(self._group_hosts(g))
        if required and not found:
            raise InputError(f"host pattern {pattern!r}: {term!r} matches no host or group in "
                             f"{self._where()}")
        return found

    def _group_hosts(self, group: str) -> list[str]:
        members: set[str] = set()
        stack = [group]
        while stack:
            g = self.groups[stack.pop()]
            members.update(g.hosts)
            stack.extend(g.children)
        return [n for n in self.hosts if n in members]

    def _where(self) -> str:
        return ", ".join(str(s) for s in self.sources)
