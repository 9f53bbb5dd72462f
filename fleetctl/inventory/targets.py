"""Targets: which hosts a command acts on, and how to reach each of them.

``--group`` and ``--limit`` select from the inventory (see :mod:`fleetctl.inventory.ansible`);
:func:`target_for` turns a host's connection variables into a :class:`Target`;
``--where`` selectors filter hosts by their probed facts.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

from fleetctl.errors import InputError
from fleetctl.facts.hostfacts import HostFacts
from fleetctl.inventory.model import Host
from fleetctl.inventory.sshconfig import first, lookup, parse_jumps, port_number, ssh_args
from fleetctl.secrets import register

USER_KNOWN_HOSTS = ("~/.ssh/known_hosts",)
POLICIES = ("strict", "accept-new")


@dataclass(frozen=True)
class Target:
    """Where and how to connect to one host: directly, through jump hosts (``ProxyJump``,
    the first of ``jump`` reached first) or through a ``ProxyCommand``."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    known_hosts: tuple[str, ...] = ()
    jump: tuple[Target, ...] = ()
    proxy_command: str | None = None
    #: ``become``: run every command through sudo as ``become_user``
    become: bool = False
    become_user: str = "root"
    become_password: str | None = field(default=None, repr=False)


def known_hosts_files(host_vars: dict[str, Any], ssh_options: dict[str, str]) -> tuple[str, ...]:
    """known_hosts files for a host: ``fleetctl_known_hosts``, the ``UserKnownHostsFile``
    of its ssh arguments (:func:`.sshconfig.ssh_args`), then the user's own."""
    files: list[str] = []
    own = host_vars.get("fleetctl_known_hosts")
    if own:
        files.extend([own] if isinstance(own, str) else list(own))
    files.extend(str(ssh_options.get("userknownhostsfile") or "").split())
    return tuple(dict.fromkeys([*files, *USER_KNOWN_HOSTS]))


def target_for(host: Host) -> Target:
    """The connection target of an inventory host, as OpenSSH would reach it given the
    host's variables, ssh arguments and ssh_config (see :mod:`.sshconfig`). fleetctl
    logs in as the inventory's user and, with ``ansible_become``, runs every command
    through sudo (the only become method it knows) as ``ansible_become_user``."""
    where = f"{host.where}: host {host.name}"
    method = str(host.vars.get("ansible_become_method") or "sudo")
    if host.become and method != "sudo":
        raise InputError(f"{where}: ansible_become_method {method!r}: fleetctl becomes root "
                         f"with sudo only")
    args = ssh_args(host.vars, where)
    config = lookup(args.get("configfile"), host.address, where)
    port = host.setting("port") or args.get("port") or config.get("port")
    key = host.key_file or first(args.get("identityfile")) or first(config.get("identityfile"))
    known = tuple(dict.fromkeys([*known_hosts_files(host.vars, args),
                                 *str(config.get("userknownhostsfile") or "").split()]))
    jump_spec = args.get("proxyjump") or config.get("proxyjump")
    proxy = args.get("proxycommand") or config.get("proxycommand")
    jumps = () if not jump_spec or jump_spec.lower() == "none" else tuple(
        _jump_target(user, name, hop_port, args.get("configfile"), key, known)
        for user, name, hop_port in parse_jumps(jump_spec))
    return Target(name=host.name,
                  address=str(args.get("hostname") or config.get("hostname") or host.address),
                  port=port_number(port, where) if port else 22,
                  user=str(host.setting("user") or args.get("user") or config.get("user")
                           or "root"),
                  key_file=key, known_hosts=known, jump=jumps,
                  proxy_command=None if jumps or not proxy or proxy.lower() == "none"
                  else proxy,
                  become=host.become, become_user=str(host.setting("become_user") or "root"),
                  become_password=_password(host.setting("become_password")))


def _password(value: object) -> str | None:
    """The become password, registered as a secret (it never reaches logs or errors)."""
    if value is None:
        return None
    register([str(value)])
    return str(value)


def _jump_target(user: str | None, name: str, port: int | None, config_file: str | None,
                 key: str | None, known: tuple[str, ...]) -> Target:
    """A jump host as OpenSSH reaches it: its ssh_config entry, else the target's key."""
    config = lookup(config_file, name)
    return Target(name=name, address=str(config.get("hostname") or name),
                  port=port or port_number(config.get("port") or 22, f"jump host {name}"),
                  user=user or str(config.get("user") or "root"),
                  key_file=first(config.get("identityfile")) or key, known_hosts=known)


def host_key_policy(host_vars: dict[str, Any], override: str | None) -> str:
    """``--host-key-policy``, else ``fleetctl_host_key_policy``, else strict."""
    policy = override or str(host_vars.get("fleetctl_host_key_policy") or "strict")
    if policy not in POLICIES:
        raise InputError(f"host key policy {policy!r} should be one of {', '.join(POLICIES)}")
    return policy


# -- --where ------------------------------------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "!=": operator.ne, "==": operator.eq,
    "=": operator.eq, ">": operator.gt, "<": operator.lt,
}
_WHERE = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(>=|<=|!=|==|=|>|<)\s*(.+?)\s*$")

#: selector key -> how to read it from facts; version keys compare as versions
WHERE_KEYS: dict[str, Callable[[HostFacts], Any]] = {
    "l4t": lambda f: f.l4t, "jetpack": lambda f: (f.jetpack or "").split(" ")[0] or None,
    "cuda": lambda f: f.cuda, "ubuntu": lambda f: f.ubuntu,
    "module": lambda f: f.module_short, "part": lambda f: f.part_number, "soc": lambda f: f.soc,
    "arch": lambda f: f.docker_arch or f.machine, "platform": lambda f: f.platform,
    "docker": lambda f: f.docker, "compose": lambda f: f.compose,
    "runtime": lambda f: "nvidia" if f.nvidia_runtime else "none",
    "memory_mb": lambda f: f.memory_total_mb, "disk_free_mb": lambda f: f.disk_free_mb,
    "hostname": lambda f: f.hostname,
}
VERSION_KEYS = {"l4t", "jetpack", "cuda", "ubuntu", "memory_mb", "disk_free_mb"}


@dataclass(frozen=True)
class Where:
    """One ``--where KEY OP VALUE`` selector."""

    key: str
    op: str
    value: str

    def matches(self, facts: HostFacts) -> bool:
        """True when the host's fact satisfies the selector (a missing fact never does)."""
        actual = WHERE_KEYS[self.key](facts)
        if actual is None:
            return False
        if self.key in VERSION_KEYS:
            try:
                return _OPS[self.op](Version(str(actual)), Version(self.value.lstrip("rR")))
            except InvalidVersion:
                return False
        if isinstance(actual, bool):
            return _OPS[self.op](actual, self.value.lower() in ("true", "yes", "1"))
        return _OPS[self.op](str(actual).lower(), self.value.lower())


def parse_where(text: str) -> Where:
    """Parse ``l4t>=36.4`` or ``module=orin-nano``; InputError naming the known keys."""
    match = _WHERE.match(text)
    if not match:
        raise InputError(f"--where {text!r}: expected KEY OP VALUE, e.g. 'l4t>=36.4' or "
                         "'module=orin-nano'")
    key, op, value = match.groups()
    if key not in WHERE_KEYS:
        raise InputError(f"--where {text!r}: unknown key {key!r}; keys: "
                         f"{', '.join(sorted(WHERE_KEYS))}")
    if key in VERSION_KEYS:
        try:
            Version(value.lstrip("rR"))
        except InvalidVersion:
            raise InputError(f"--where {text!r}: {value!r} is not a version") from None
    elif op not in ("=", "==", "!="):
        raise InputError(f"--where {text!r}: {key} compares with =, == or != only")
    return Where(key, op, value)

