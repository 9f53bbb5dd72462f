"""How OpenSSH, and so Ansible, would reach a host: the ``-o``, ``-J``, ``-i``, ``-p``,
``-l`` and ``-F`` options in ``ansible_ssh_common_args`` / ``ansible_ssh_extra_args``, then
``~/.ssh/config`` (or the ``-F`` file) looked up by the host's address: ``HostName``,
``User``, ``Port``, ``IdentityFile``, ``ProxyJump``, ``ProxyCommand``,
``UserKnownHostsFile``. As in OpenSSH, the first value obtained wins; the inventory's
own ``ansible_port``, ``ansible_user`` and key come before all of them, as Ansible passes
them first.
"""

from __future__ import annotations

import functools
import os
import shlex
from pathlib import Path
from typing import Any

import paramiko

from fleetctl.errors import InputError

USER_CONFIG = "~/.ssh/config"
ARGS_VARS = ("ansible_ssh_common_args", "ansible_ssh_extra_args")
#: single-letter ssh options that take a value, and the ssh_config keyword each sets
_FLAGS = {"-J": "proxyjump", "-i": "identityfile", "-p": "port", "-l": "user", "-F": "configfile"}


def ssh_args(host_vars: dict[str, Any], where: str) -> dict[str, str]:
    """The ssh_config keywords (lowercase) the host's ssh arguments set, first one winning;
    ``configfile`` for ``-F``."""
    found: dict[str, str] = {}
    for var in ARGS_VARS:
        try:
            words = shlex.split(str(host_vars.get(var) or ""))
        except ValueError as exc:
            raise InputError(f"{where}: {var}: {exc}; check the quotes") from None
        index = 0
        while index < len(words):
            word = words[index]
            flag, value = word[:2], word[2:]
            if flag == "-o" or flag in _FLAGS:
                if not value and index + 1 < len(words):
                    index += 1
                    value = words[index]
                if flag == "-o":
                    key, _, option = value.replace("=", " ", 1).partition(" ")
                    found.setdefault(key.strip().lower(), option.strip())
                else:
                    found.setdefault(_FLAGS[flag], value)
            index += 1
    return found


def lookup(config_file: str | None, host: str, where: str = "") -> dict[str, Any]:
    """What the ssh_config file (``~/.ssh/config`` when None) says for ``host``; nothing
    when that file does not exist (a ``-F`` file must)."""
    path = Path(os.path.expanduser(config_file or USER_CONFIG))
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        if config_file:
            raise InputError(f"{where}: ssh config {path} (-F): no such file") from None
        return {}
    return dict(_parsed(str(path), stamp).lookup(host))


@functools.lru_cache(maxsize=16)
def _parsed(path: str, stamp: int) -> paramiko.SSHConfig:
    try:
        return paramiko.SSHConfig.from_path(path)
    except (OSError, paramiko.ConfigParseError, ValueError) as exc:
        raise InputError(f"ssh config {path}: {exc}") from None


def first(value: Any) -> str | None:
    """The first of a keyword that may repeat (``IdentityFile``), expanded."""
    if isinstance(value, list):
        value = value[0] if value else None
    return os.path.expanduser(str(value)) if value else None


def port_number(value: Any, where: str) -> int:
    """A port from ssh arguments or ssh_config (InputError naming ``where``)."""
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InputError(f"{where}: port {value!r} is not a port number (1-65535)")
    return int(text)


def parse_jumps(spec: str) -> list[tuple[str | None, str, int | None]]:
    """``ProxyJump`` (``-J``) hops as (user, host, port): ``[user@]host[:port]`` or
    ``ssh://[user@]host[:port]``, separated by commas."""
    hops = []
    for hop in spec.split(","):
        hop = hop.strip().removeprefix("ssh://")
        user, _, rest = hop.rpartition("@")
        host, port = rest, None
        if rest.startswith("[") and "]" in rest:
            host, _, tail = rest[1:].partition("]")
            port = tail[1:] if tail.startswith(":") else None
        elif rest.count(":") == 1:
            host, _, port = rest.partition(":")
        if not host:
            raise InputError(f"ProxyJump {spec!r}: {hop!r} names no host")
        hops.append((user or None, host, port_number(port, f"ProxyJump {spec!r}")
                     if port else None))
    return hops
