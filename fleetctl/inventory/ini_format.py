"""Ansible's INI inventory format, read as ansible-core's ini plugin reads it: sections
``[group]``, ``[group:vars]``, ``[group:children]`` (a ``# comment`` may follow), host lines
``name[range][:port] key=value...`` split like a shell, values typed as Python literals."""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from pathlib import Path
from typing import Any

from fleetctl.errors import InputError
from fleetctl.inventory.builder import InventoryBuilder
from fleetctl.inventory.ranges import expand_hosts, host_and_port

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


def parse_ini(builder: InventoryBuilder, path: Path, text: str) -> None:
    """Add an INI inventory's groups and hosts to ``builder`` (InputError at file:line).

    As in ansible-core, ``[g:vars]`` and ``[p:children]`` may come before ``[g]``
    declares the group; a group still undeclared at the end of the file is an error."""
    group, kind = "ungrouped", "hosts"
    pending: dict[str, tuple[str, str, list[str]]] = {}   # group: (kind, where, parents)
    for number, raw in enumerate(text.splitlines(), start=1):
        line, where = raw.strip(), f"{path}:{number}"
        if not line or line[0] in "#;":
            continue
        header = _SECTION.match(line)
        if header:
            group, kind = header[1], header[2] or "hosts"
            if kind not in ("hosts", "vars", "children"):
                raise InputError(f"{where}: section [{group}:{kind}] has an unknown kind; use "
                                 f"[{group}], [{group}:vars] or [{group}:children]")
            if group not in builder.groups:
                if kind == "vars" and group not in pending:
                    pending[group] = ("vars", where, [])
                builder.group(group, where)
            if group in pending and kind != "vars":
                _declared(builder, group, pending, where)
        elif line.startswith("[") and line.endswith("]"):
            raise InputError(f"{where}: section header {line!r} is not [group], [group:vars] "
                             f"or [group:children]; group names have no spaces or colons")
        elif kind == "hosts":
            _host_line(builder, group, line, where)
        elif kind == "vars":
            key, value = _assignment(line, where)
            builder.set_group_var(group, key, value, where)
        else:
            name = _GROUP_NAME.match(line)
            if name is None:
                raise InputError(f"{where}: [{group}:children] lists group names, got {line!r}")
            if name[1] in builder.groups:
                builder.link(group, name[1], where)
            else:
                pending.setdefault(name[1], ("children", where, []))[2].append(group)
    for name, (what, where, parents) in pending.items():
        if what == "vars":
            raise InputError(f"{where}: [{name}:vars] is for a group defined nowhere; add a "
                             f"[{name}] section or remove these vars")
        raise InputError(f"{where}: [{parents[-1]}:children] names group {name!r}, which is "
                         f"defined nowhere; add a [{name}] section or remove the line")


def _declared(builder: InventoryBuilder, group: str,
              pending: dict[str, tuple[str, str, list[str]]], where: str) -> None:
    """``group`` is declared now: link the parents that named it before."""
    what, _, parents = pending.pop(group)
    if what != "children":
        return
    for parent in parents:
        builder.link(parent, group, where)
        if parent in pending and pending[parent][0] == "children":
            _declared(builder, parent, pending, where)


def _host_line(builder: InventoryBuilder, group: str, line: str, where: str) -> None:
    try:
        first, *assignments = shlex.split(line, comments=True)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}; check the quotes") from None
    name, port = host_and_port(first)
    if first.endswith(":") and port is None:
        raise InputError(f"{where}: host {first!r} ends in ':', which is kept for a port")
    names = expand_hosts(name, where)
    if "---" in names:
        raise InputError(f"{where}: host '---' is the start of a YAML document; name the file "
                         f".yml if it is YAML")
    variables: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep:
            raise InputError(f"{where}: expected key=value after the host name, got "
                             f"{assignment!r}")
        variables[key] = ini_value(value)
    for host in names:
        builder.add_host(host, group, variables, where, port)


def _assignment(text: str, where: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise InputError(f"{where}: expected key=value, got {text!r}")
    return key.strip(), ini_value(value.strip())


def ini_value(text: str) -> Any:
    """An INI value as ansible-core types it: a Python literal (``8080``, ``True``,
    ``[1, 2]``, ``None``, ``1e3``, ``'quoted'``; ``5 # note`` is 5; tuples and sets become
    lists), else the text as written."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if value is Ellipsis or isinstance(value, complex):
        return "..." if value is Ellipsis else str(value)
    return value
