"""Reading Ansible inventories: YAML and INI files, folders of them, group_vars/ and
host_vars/, into the :mod:`.model` (hosts, groups, patterns).

Semantics follow Ansible: every host is in ``all``; group variables apply from
the shallowest group to the deepest (siblings alphabetically), host variables
last; ``group_vars/`` and ``host_vars/`` beside the inventory file override the
file's own.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import string
from pathlib import Path
from typing import Any

from fleetctl.errors import InputError
from fleetctl.inventory.model import Group, Host, Inventory
from fleetctl.yamlfile import Located, load_yaml, read_text

DEFAULT_DIR = Path("inventories")
VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")
#: an INI section header as ansible-core reads it: [name] or [name:kind], then maybe a comment
_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
ENV_VAR = "FLEETCTL_INVENTORY"
_SECRET = re.compile(r"pass|secret|token|credential|private_key$", re.IGNORECASE)
_SKIP_SUFFIXES = (".md", ".txt", ".retry", ".pyc", ".cfg", "~", ".orig", ".json")

#: fleetctl's short names and Ansible's legacy names, mapped to the Ansible names
CONNECTION_ALIASES = {
    "ssh_host": "ansible_host", "ansible_ssh_host": "ansible_host",
    "ssh_port": "ansible_port", "ansible_ssh_port": "ansible_port",
    "ssh_user": "ansible_user", "ansible_ssh_user": "ansible_user",
    "ssh_key": "ansible_ssh_private_key_file", "become": "ansible_become",
}


def default_source() -> Path:
    """``$FLEETCTL_INVENTORY``, else ``inventories/``."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)


def load_inventory(source: Path | None = None) -> Inventory:
    """Load an inventory file or directory (every inventory file directly inside it)."""
    source = source or default_source()
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and _is_inventory_file(p))
        if not files:
            raise InputError(f"{source}: no inventory files here; pass -i FILE or set "
                             f"{ENV_VAR}")
    elif source.exists():
        files = [source]
    else:
        raise InputError(f"{source}: no such inventory; pass -i FILE or set {ENV_VAR}")
    builder = _Builder()
    for path in files:
        builder.load(path)
    return builder.finish()


def _is_inventory_file(path: Path) -> bool:
    return not path.name.startswith(".") and not path.name.endswith(_SKIP_SUFFIXES)


def expand_hosts(pattern: str, where: str = "") -> list[str]:
    """Expand Ansible host ranges as ansible-core does: ``web[01:03]`` (zero-padded to the
    start bound's width), ``web[a:c]``, strides ``h[1:10:3]``, several ranges in one
    name. A malformed range (``h[1:c]``, ``h[3:1]`` of letters) is an InputError at
    ``where``, as ansible-core refuses it."""
    if "[" not in pattern:
        return [pattern]
    head, _, rest = pattern.partition("[")
    body, closed, tail = rest.partition("]")
    try:
        if not closed:
            raise ValueError("a host range needs its closing ]")
        bounds = body.split(":")
        if len(bounds) not in (2, 3):
            raise ValueError("host range must be begin:end or begin:end:step")
        begin, end = bounds[0] or "0", bounds[1]
        if not end:
            raise ValueError("host range must specify end value")
        width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
        if width and width != len(end):
            raise ValueError("host range must specify equal-length begin and end formats")
        step = _number(bounds[2]) if len(bounds) == 3 else 1
        if step == 0:
            raise ValueError("a host range's step cannot be 0")
        if begin in string.ascii_letters and end in string.ascii_letters:
            first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
            if first > last:
                raise ValueError("host range must have begin <= end")
            items: list[str] = list(string.ascii_letters[first:last + 1:step])
        else:
            items = [str(i) for i in range(_number(begin), _number(end) + 1, step)]
    except ValueError as exc:
        raise InputError(f"{where + ': ' if where else ''}host {pattern!r}: {exc}") from None
    return [name for item in items
            for name in expand_hosts(f"{head}{item.zfill(width)}{tail}", where)]


def _number(bound: str) -> int:
    try:
        return int(bound)
    except ValueError:
        raise ValueError(f"host range bound {bound!r} is neither a number nor a letter "
                         f"matching the other bound") from None


def redact(variables: dict[str, Any]) -> dict[str, Any]:
    """Variables with the values of secret-looking keys (passwords, tokens) masked."""
    return {k: "***" if _SECRET.search(k) and v not in (None, "") else v
            for k, v in variables.items()}


def _check_connection_vars(host: Host) -> None:
    """The variables fleetctl connects with, of the types it needs (InputError naming
    the host and where it is defined)."""
    port = host.vars.get("ansible_port", 22)
    if isinstance(port, bool) or not str(port).isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{host.where}: host {host.name}: ansible_port {port!r} is not a "
                         f"port number (1-65535)")
    for key in ("ansible_host", "ansible_user", "ansible_ssh_private_key_file"):
        value = host.vars.get(key)
        if value is not None and (not isinstance(value, (str, int)) or isinstance(value, bool)
                                  or not str(value).strip()):
            raise InputError(f"{host.where}: host {host.name}: {key} {value!r} should be a "
                             f"string")


def _normalise(variables: dict[str, Any]) -> dict[str, Any]:
    return {CONNECTION_ALIASES.get(k, k): v for k, v in variables.items()}


class _Builder:
    """Accumulates groups and hosts from several files, then resolves variables."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {"all": Group("all"), "ungrouped": Group("ungrouped")}
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.host_where: dict[str, str] = {}
        self.sources: list[Path] = []
        self.dirs: list[Path] = []

    def group(self, name: str, where: str) -> Group:
        if name not in self.groups:
            self.groups[name] = Group(name, where=where)
        return self.groups[name]

    def add_hosts(self, pattern: str, group: str, variables: dict[str, Any],
                  where: str) -> None:
        """The hosts a pattern names (``web[01:03]:2222``): ranges expanded, the port a
        host variable the line's own variables may override, as in ansible-core."""
        pattern, port = host_and_port(pattern)
        for name in expand_hosts(pattern, where):
            self.add_host(name, group, {**({"ansible_port": port} if port else {}),
                                        **variables}, where)

    def add_host(self, name: str, group: str, variables: dict[str, Any], where: str) -> None:
        variables = _normalise(variables)
        if name in self.host_vars:
            old, new = self.host_vars[name].get("ansible_host"), variables.get("ansible_host")
            if old and new and old != new:
                raise InputError(f"{where}: host {name!r} is already defined at "
                                 f"{self.host_where[name]} with ansible_host={old}, here "
                                 f"with {new}; keep one address per host")
            self.host_vars[name].update(variables)
        else:
            self.host_vars[name] = variables
            self.host_where[name] = where
        g = self.groups[group]
        if name not in g.hosts:
            g.hosts.append(name)

    def link(self, parent: str, child: str) -> None:
        p, c = self.groups[parent], self.groups[child]
        if child not in p.children:
            p.children.append(child)
        if parent not in c.parents:
            c.parents.append(parent)

    # -- files ---------------------------------------------------------------------------------

    def load(self, path: Path) -> None:
        self.sources.append(path)
        if path.parent not in self.dirs:
            self.dirs.append(path.parent)
        if path.suffix in (".yml", ".yaml"):
            self._load_yaml(path)
        else:
            text = read_text(path)
            first = next((ln.strip() for ln in text.splitlines() if ln.strip()
                          and not ln.lstrip().startswith(("#", ";"))), "")
            if first.endswith(":") or first.startswith(("all:", "---")):
                self._load_yaml(path)
            else:
                self._load_ini(path, text)

    def _load_yaml(self, path: Path) -> None:
        doc = load_yaml(path)
        if doc is None:
            return
        if not isinstance(doc, Located):
            raise InputError(f"{path}:1: an inventory is a mapping of groups (e.g. 'all:')")
        for name, body in doc.items():
            self._yaml_group(path, name, body, doc.line_of(name), parent=None)

    def _yaml_group(self, path: Path, name: Any, body: Any, line: int,
                    parent: str | None) -> None:
        where = f"{path}:{line}"
        if not isinstance(name, str) or not name:
            raise InputError(f"{where}: group name {name!r} should be a string")
        group = self.group(name, where)
        if parent:
            self.link(parent, name)
            self._check_cycle(name, where)
        if body is None:
            return
        if not isinstance(body, Located):
            raise InputError(f"{where}: group {name!r} should be a mapping with hosts, vars or "
                             "children")
        unknown = set(body) - {"hosts", "vars", "children"}
        if unknown:
            key = sorted(unknown, key=str)[0]
            raise InputError(f"{path}:{body.line_of(key)}: group {name!r}: unknown key {key!r};"
                             " a group has hosts, vars and children")
        hosts = body.get("hosts") or {}
        if not isinstance(hosts, dict):
            raise InputError(f"{path}:{body.line_of('hosts')}: {name}.hosts should be a mapping "
                             "of host names")
        for host, host_vars in hosts.items():
            host_where = f"{path}:{hosts.line_of(host) if isinstance(hosts, Located) else line}"
            if host_vars is not None and not isinstance(host_vars, dict):
                raise InputError(f"{host_where}: variables of host {host!r} should be a mapping")
            self.add_hosts(str(host), name, dict(host_vars or {}), host_where)
        group_vars = body.get("vars") or {}
        if not isinstance(group_vars, dict):
            raise InputError(f"{path}:{body.line_of('vars')}: {name}.vars should be a mapping")
        group.vars.update(_normalise(group_vars))
        children = body.get("children") or {}
        if not isinstance(children, dict):
            raise InputError(f"{path}:{body.line_of('children')}: {name}.children should be a "
                             "mapping of group names")
        for child, child_body in children.items():
            child_line = children.line_of(child) if isinstance(children, Located) else line
            self._yaml_group(path, child, child_body, child_line, parent=name)

    def _load_ini(self, path: Path, text: str) -> None:
        section, kind = "ungrouped", "hosts"
        pending_children: list[tuple[str, str, str]] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            where = f"{path}:{number}"
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                header = _SECTION.match(line)
                if header is None:
                    raise InputError(f"{where}: section header {line!r} is not [group], "
                                     f"[group:vars] or [group:children] (a # comment may "
                                     f"follow it)")
                section, kind = header[1], header[2] or "hosts"
                if kind not in ("hosts", "vars", "children"):
                    raise InputError(f"{where}: unknown section kind {kind!r}; use "
                                     f"[{section}], [{section}:vars] or [{section}:children]")
                self.group(section, where)
                continue
            if kind == "hosts":
                name, *assignments = _split_ini(line, where)
                variables = dict(_ini_assignment(a, where) for a in assignments)
                self.add_hosts(name, section, variables, where)
            elif kind == "vars":
                key, value = _ini_assignment(line, where)
                self.groups[section].vars.update(_normalise({key: value}))
            else:
                pending_children.append((section, line.split()[0], where))
        for parent, child, where in pending_children:
            if child not in self.groups:
                raise InputError(f"{where}: [{parent}:children] names group {child!r}, which is "
                                 f"defined nowhere; add a [{child}] section or remove the line")
            self.link(parent, child)
            self._check_cycle(child, where)

    def _check_cycle(self, start: str, where: str) -> None:
        path: list[str] = []

        def visit(name: str) -> None:
            if name in path:
                cycle = " -> ".join([*path[path.index(name):], name])
                raise InputError(f"{where}: group cycle {cycle}; a group cannot contain itself")
            path.append(name)
            for child in self.groups[name].children:
                visit(child)
            path.pop()

        visit(start)

    # -- resolution ------------------------------------------------------------------------------

    def finish(self) -> Inventory:
        for name, group in self.groups.items():
            if name not in ("all",) and not group.parents:
                self.link("all", name)
        for name in self.host_vars:
            if not any(name in g.hosts for n, g in self.groups.items() if n not in ("all",
                                                                                   "ungrouped")):
                self.groups["ungrouped"].hosts.append(name)
        self._load_vars_dirs()
        depth = self._depths()
        priority = {name: _priority(group) for name, group in self.groups.items()}
        hosts: dict[str, Host] = {}
        for name, own_vars in self.host_vars.items():
            member_of = [g for g in self.groups if self._contains(g, name)]
            merged: dict[str, Any] = {}
            # as ansible-core: shallow groups first, then by ansible_group_priority, name
            for g in sorted(member_of, key=lambda g: (depth[g], priority[g], g)):
                merged.update(self.groups[g].vars)
            merged.update(own_vars)
            merged.update(self.host_file_vars.get(name, {}))
            hosts[name] = Host(name, merged, [g for g in member_of if g != "all"],
                               self.host_where[name])
            _check_connection_vars(hosts[name])
        return Inventory(hosts, self.groups, self.sources)

    def _contains(self, group: str, host: str) -> bool:
        g = self.groups[group]
        return host in g.hosts or group == "all" or any(self._contains(c, host)
                                                        for c in g.children)

    def _depths(self) -> dict[str, int]:
        depth: dict[str, int] = {}

        def of(name: str) -> int:
            if name not in depth:
                parents = self.groups[name].parents
                depth[name] = 1 + max((of(p) for p in parents), default=-1)
            return depth[name]

        for name in self.groups:
            of(name)
        return depth

    def _load_vars_dirs(self) -> None:
        self.host_file_vars: dict[str, dict[str, Any]] = {}
        for base in self.dirs:
            for kind, names in (("group_vars", list(self.groups)),
                                ("host_vars", list(self.host_vars))):
                folder = base / kind
                if not folder.is_dir():
                    continue
                for name in names:     # Ansible ignores files of groups and hosts it lacks
                    for f in vars_files(folder, name):
                        data = load_yaml(f) or {}
                        if not isinstance(data, dict):
                            raise InputError(f"{f}:1: variables file should be a mapping")
                        if kind == "group_vars":
                            self.groups[name].vars.update(_normalise(data))
                        else:
                            self.host_file_vars.setdefault(name, {}).update(_normalise(data))


def _priority(group: Group) -> int:
    """The group's ``ansible_group_priority`` (default 1), taken out of its variables as
    ansible-core does; InputError unless a whole number."""
    value = group.vars.pop("ansible_group_priority", 1)
    if isinstance(value, bool) or not (isinstance(value, int) or
                                       (isinstance(value, str) and value.strip().isdigit())):
        raise InputError(f"{group.where or 'inventory'}: group {group.name}: "
                         f"ansible_group_priority {value!r} is not a whole number")
    return int(value)


def host_and_port(name: str) -> tuple[str, int | None]:
    """``host:2222`` or ``[fe80::1]:2222`` as a host name and its port, as ansible-core
    reads them in inventories (an IPv6 address without brackets has no port)."""
    if name.startswith("[") and "]:" in name:
        address, _, port = name[1:].partition("]:")
        if port.isdigit() and ":" in address:
            return address, int(port)
    elif name.count(":") == 1:
        host, _, port = name.partition(":")
        if port.isdigit() and host:
            return host, int(port)
    return name, None


def vars_files(folder: Path, name: str) -> list[Path]:
    """A group's or host's files in ``group_vars/`` or ``host_vars/`` as ansible-core finds
    them: the first of ``NAME``, ``NAME.yml``, ``NAME.yaml``, ``NAME.json`` that exists
    (``host_vars/10.0.0.5`` is 10.0.0.5's), and when that is a folder, its files with
    those extensions, recursively, in name order (hidden ones left out)."""
    for extension in VARS_EXTENSIONS:
        path = folder / f"{name}{extension}"
        if path.is_dir():
            return sorted(f for f in path.rglob("*") if f.is_file()
                          and not any(part.startswith(".") for part in f.relative_to(path).parts)
                          and f.suffix in VARS_EXTENSIONS)
        if path.is_file():
            return [path]
    return []


def _split_ini(line: str, where: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}; check the quotes") from None


def _ini_assignment(text: str, where: str) -> tuple[str, Any]:
    """``key=value`` with the value typed as ansible-core types INI values, on host lines
    and in ``[group:vars]`` alike: a Python literal (``8080``, ``True``, ``[1, 2]``,
    ``None``, ``1e3``, ``'quoted'``; ``5 # note`` is 5), else the text as written."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key:
        raise InputError(f"{where}: expected key=value, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return key, value
