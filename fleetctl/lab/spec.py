"""The lab's host spec file: a YAML description of the simulated fleet.

Parsing is strict: an unknown key, a bad value or a duplicate name or address
is an :class:`InputError` naming the file, the line and the fix.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetctl.errors import InputError
from fleetctl.facts.jetson import parse_nv_tegra_release
from fleetctl.lab.l4trepo import package_version
from fleetctl.sizes import parse_size
from fleetctl.yamlfile import Located, LocatedList, line_of, load_yaml

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_GROUP = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_CUDA = re.compile(r"^\d+\.\d+$")
_MIN_DISK = 16 * 1024**2

HOST_KEYS = {
    "name", "address", "groups", "vars", "nv_tegra_release", "model", "compatible", "serial",
    "cuda", "memory_mb", "disk", "docker", "nvidia_runtime", "compose", "bastion",
}


@dataclass(frozen=True)
class HostSpec:
    """One simulated host, with every default filled in."""

    index: int
    name: str
    address: str
    groups: tuple[str, ...] = ()
    vars: dict[str, Any] = field(default_factory=dict)
    nv_tegra_release: str | None = None
    model: str | None = None
    compatible: tuple[str, ...] = ()
    serial: str = ""
    cuda: str | None = None
    memory_mb: int = 7620
    disk_bytes: int = 2 * 1024**3
    docker: bool = True
    nvidia_runtime: bool = True
    compose: str = "v1"
    #: a jump host: its sshd logs each forwarded channel (LogLevel DEBUG1)
    bastion: bool = False

    @property
    def is_jetson(self) -> bool:
        """True when the host carries any Jetson identity file."""
        return bool(self.nv_tegra_release or self.model or self.compatible)

    @property
    def l4t(self) -> str | None:
        """The L4T version from the release line, or None for a plain server."""
        return parse_nv_tegra_release(self.nv_tegra_release) if self.nv_tegra_release else None

    @property
    def l4t_core_version(self) -> str | None:
        """The ``nvidia-l4t-core`` dpkg version: L4T plus the release date as a build stamp."""
        return package_version(self.nv_tegra_release) if self.nv_tegra_release else None


@dataclass(frozen=True)
class LabSpec:
    """The whole simulated fleet, in spec order."""

    path: Path
    hosts: tuple[HostSpec, ...]

    def host(self, name: str) -> HostSpec:
        """The host called ``name``; InputError naming the known hosts otherwise."""
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise InputError(f"no lab host named {name!r}; the lab has: {known}")


def default_address(index: int) -> str:
    """Address of the ``index``-th host (1-based): 127.0.1.1 .. 127.0.1.254, then 127.0.2.1 .."""
    block, offset = divmod(index - 1, 254)
    return f"127.0.{1 + block}.{offset + 1}"


class _HostReader:
    """Validates one ``hosts[i]`` entry, with errors that point at its lines."""

    def __init__(self, path: Path, index: int, raw: Located) -> None:
        self.path, self.index, self.raw = path, index, raw
        self.label = f"hosts[{index - 1}]"
        if isinstance(raw.get("name"), str):
            self.label += f" ({raw['name']})"

    def fail(self, key: str | None, problem: str) -> InputError:
        line = line_of(self.raw, key) if key else self.raw.line
        where = f"{self.label}.{key}" if key else self.label
        return InputError(f"{self.path}:{line}: {where}: {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any, what: str) -> Any:
        if key not in self.raw or (self.raw[key] is None and default is None):
            return default
        value = self.raw[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(key, f"should be {what}, got {value!r}")
        return value

    def read(self) -> HostSpec:
        unknown = sorted(set(self.raw) - HOST_KEYS, key=str)
        if unknown:
            allowed = ", ".join(sorted(HOST_KEYS))
            raise self.fail(unknown[0], f"unknown key {unknown[0]!r}; allowed keys: {allowed}")
        if "name" not in self.raw:
            raise self.fail(None, "missing required key 'name'")
        name = self.get("name", str, None, "a host name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise self.fail("name", f"{name!r} is not a valid host name (a-z, 0-9 and '-')")
        address = self.get("address", str, default_address(self.index), "an IPv4 address")
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            raise self.fail("address", f"{address!r} is not an IPv4 address") from None
        if not ip.is_loopback or address == "127.0.0.1":
            raise self.fail("address", f"{address} must be a loopback address other than 127.0.0.1")
        groups = self.get("groups", list, [], "a list of group names")
        for group in groups:
            if not isinstance(group, str) or not _GROUP.match(group):
                raise self.fail("groups", f"{group!r} is not a valid group name")
        host_vars = self.get("vars", dict, {}, "a mapping of inventory variables")
        release = self.get("nv_tegra_release", str, None, "the first line of /etc/nv_tegra_release")
        if release is not None:
            try:
                parse_nv_tegra_release(release)
            except ValueError:
                raise self.fail(
                    "nv_tegra_release",
                    f"{release[:60]!r} is not an L4T release line; expected e.g. "
                    "'# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, ...'",
                ) from None
        compatible = self.get("compatible", list, [], "a list of device-tree compatible strings")
        if not all(isinstance(c, str) and c for c in compatible):
            raise self.fail("compatible", "every entry should be a non-empty string")
        cuda = self.get("cuda", (str, float), None, "a CUDA version like '12.6'")
        if cuda is not None:
            cuda = str(cuda)
            if not _CUDA.match(cuda):
                raise self.fail("cuda", f"{cuda!r} is not a CUDA version like '12.6'")
        memory_mb = self.get("memory_mb", int, 7620, "a whole number of MiB")
        if memory_mb < 64:
            raise self.fail("memory_mb", f"{memory_mb} MiB is too small; use at least 64")
        disk = self.get("disk", (str, int), "2g", "a size like 64m or 2g")
        try:
            disk_bytes = parse_size(disk)
        except ValueError as exc:
            raise self.fail("disk", str(exc)) from None
        if disk_bytes < _MIN_DISK:
            raise self.fail("disk", f"{disk} is too small; use at least 16m")
        docker = self.get("docker", bool, True, "true or false")
        runtime = self.get("nvidia_runtime", bool, docker, "true or false")
        compose = self.get("compose", str, "v1" if docker else "none", "'v1' or 'none'")
        if compose not in ("v1", "none"):
            raise self.fail("compose", f"{compose!r} should be 'v1' or 'none'")
        if not docker and (runtime or compose != "none"):
            key = "nvidia_runtime" if runtime else "compose"
            raise self.fail(key, "needs docker: true (this host has no Docker engine)")
        return HostSpec(
            index=self.index, name=name, address=address, groups=tuple(groups),
            vars=dict(host_vars), nv_tegra_release=release,
            model=self.get("model", str, None, "a device-tree model string"),
            compatible=tuple(compatible),
            serial=str(self.get("serial", (str, int), f"lab{self.index:010d}", "a serial number")),
            cuda=cuda, memory_mb=memory_mb, disk_bytes=disk_bytes, docker=docker,
            nvidia_runtime=runtime, compose=compose,
            bastion=self.get("bastion", bool, False, "true or false"),
        )


def load_spec(path: Path, hosts: int | None = None, text: str | None = None) -> LabSpec:
    """Read and validate a lab spec file (``text``: its content, already read).

    With ``hosts``, keep that many hosts: the first ones of the file, or, when
    the file has fewer, its hosts repeated in order under numbered names.
    """
    doc = load_yaml(path, text)
    if not isinstance(doc, Located):
        raise InputError(f"{path}:1: a lab spec is a mapping with a 'hosts' list")
    extra = sorted(set(doc) - {"hosts"}, key=str)
    if extra:
        raise InputError(f"{path}:{doc.line_of(extra[0])}: unknown key {extra[0]!r}; "
                         "a lab spec has only 'hosts'")
    raw_hosts = doc.get("hosts")
    if not isinstance(raw_hosts, LocatedList) or not raw_hosts:
        raise InputError(f"{path}:{doc.line_of('hosts')}: 'hosts' should be a non-empty list")
    entries = list(raw_hosts)
    if hosts is not None:
        if hosts < 1:
            raise InputError(f"--hosts must be at least 1, got {hosts}")
        entries = [_repeat(raw_hosts[i % len(raw_hosts)], i // len(raw_hosts))
                   for i in range(hosts)]
    parsed: list[HostSpec] = []
    names: dict[str, int] = {}
    addresses: dict[str, str] = {}
    for i, raw in enumerate(entries, start=1):
        if not isinstance(raw, Located):
            raise InputError(f"{path}:{raw_hosts.line_of((i - 1) % len(raw_hosts))}: "
                             f"hosts[{i - 1}]: should be a mapping of host keys")
        host = _HostReader(path, i, raw).read()
        if host.name in names:
            raise InputError(f"{path}:{raw.line_of('name')}: hosts[{i - 1}].name: duplicate "
                             f"host {host.name!r} (also hosts[{names[host.name]}]); rename one")
        if host.address in addresses:
            raise InputError(f"{path}:{raw.line_of('address')}: hosts[{i - 1}].address: "
                             f"{host.address} is already used by {addresses[host.address]}; "
                             "give each host its own address")
        names[host.name] = i - 1
        addresses[host.address] = host.name
        parsed.append(host)
    return LabSpec(path=path, hosts=tuple(parsed))


def _repeat(raw: Located, round_: int) -> Located:
    """A copy of a spec entry for the ``round_``-th repetition (0 = the entry itself)."""
    if round_ == 0:
        return raw
    copy = Located(raw)
    copy.line, copy.key_lines = raw.line, dict(raw.key_lines)
    if isinstance(raw.get("name"), str):
        copy["name"] = f"{raw['name']}-{round_ + 1}"
    copy.pop("address", None)
    copy.pop("serial", None)
    return copy
