"""Ansible's YAML inventory format, read as ansible-core's yaml plugin reads it: top-level
keys are groups, each with ``hosts``, ``vars`` and ``children`` (a string stands for a
one-key mapping); keys it does not know are skipped with a warning."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from fleetctl.errors import InputError, InputWarning
from fleetctl.inventory.builder import InventoryBuilder
from fleetctl.inventory.ranges import expand_hosts, host_and_port
from fleetctl.yamlfile import line_of

SECTIONS = ("vars", "children", "hosts")


def warn(message: str) -> None:
    warnings.warn(InputWarning(message), stacklevel=2)


def parse_yaml(builder: InventoryBuilder, path: Path, doc: dict[Any, Any]) -> None:
    """Add a YAML inventory's groups and hosts to ``builder`` (InputError at file:line)."""
    for name, body in doc.items():
        _group(builder, path, name, body, line_of(doc, name))


def _group(builder: InventoryBuilder, path: Path, name: Any, body: Any, line: int) -> str:
    where = f"{path}:{line}"
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}: group name {name!r} should be a string; quote it")
    if body is not None and not isinstance(body, dict):
        warn(f"{where}: skipped {name!r}: a group is a mapping with "
                                f"hosts, vars or children")
        return name
    builder.group(name, where)
    for key, value in (body or {}).items():
        key_where = f"{path}:{line_of(body, key)}"
        if key in SECTIONS and isinstance(value, str):
            value = {value: None}
        if key in SECTIONS and not isinstance(value, (dict, type(None))):
            raise InputError(f"{key_where}: {name}.{key} should be a mapping, not "
                             f"{'a list' if isinstance(value, list) else type(value).__name__}")
        if not isinstance(value, (dict, type(None))):
            warn(f"{key_where}: skipped key {key!r} of group {name!r}: "
                                    f"not a mapping")
        elif value is None:
            continue
        elif key == "vars":
            for var, var_value in value.items():
                builder.set_group_var(name, var, var_value, f"{path}:{line_of(value, var)}")
        elif key == "children":
            for child, child_body in value.items():
                child_line = line_of(value, child) or line
                child = _group(builder, path, child, child_body, child_line)
                if child not in builder.groups:
                    raise InputError(f"{path}:{child_line}: {child!r} under {name}.children "
                                     f"is neither a group nor a host")
                builder.link(name, child, f"{path}:{child_line}")
        elif key == "hosts":
            for pattern, host_vars in value.items():
                _hosts(builder, name, pattern, host_vars, f"{path}:{line_of(value, pattern)}")
        else:
            warn(f"{key_where}: skipped key {key!r} of group {name!r}: a "
                                    f"group has only hosts, vars and children")
    return name


def _hosts(builder: InventoryBuilder, group: str, pattern: Any, host_vars: Any,
           where: str) -> None:
    if not isinstance(pattern, str):
        raise InputError(f"{where}: host name {pattern!r} should be a string; quote it")
    host_vars = host_vars or {}
    if not isinstance(host_vars, dict):
        raise InputError(f"{where}: variables of host {pattern!r} should be a mapping")
    name, port = host_and_port(pattern)
    for host in expand_hosts(name, where):
        builder.add_host(host, group, host_vars, where, port)
