"""Dynamic inventories: an executable called with ``--list`` (and ``--host NAME`` when its
answer has no ``_meta.hostvars``), and Ansible inventory plugin configurations
(``plugin:`` YAML), which ansible-core's ``ansible-inventory --list`` runs when it is
installed. Both answer Ansible's inventory JSON, read here as ansible-core's script plugin
reads it. A script's output is not trusted: its size is capped, its shape checked, and
any failure is one line with the tail of what it wrote to stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleetctl.errors import InputError
from fleetctl.inventory.builder import InventoryBuilder

#: seconds an inventory script may take for one call
SCRIPT_TIMEOUT = 120.0
#: the most a script may print for one call
MAX_OUTPUT = 256 * 2**20


def run_inventory(command: list[str], where: str, timeout: float = SCRIPT_TIMEOUT) -> Any:
    """Run an inventory program and parse what it printed as JSON (InputError naming
    ``where`` when it cannot run, fails, times out, prints too much or not JSON)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            status = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            raise InputError(f"{where}: gave no answer within {timeout:.0f}s") from None
        except OSError as exc:
            raise InputError(f"{where}: cannot run it: {exc.strerror}") from None
        err.seek(0)
        tail = err.read()[-2000:].decode(errors="replace").strip().splitlines()
        said = f" (stderr: {tail[-1]})" if tail else ""
        if status:
            raise InputError(f"{where}: exited with status {status}{said}")
        if out.tell() > MAX_OUTPUT:
            raise InputError(f"{where}: printed {out.tell():,} bytes, more than the "
                             f"{MAX_OUTPUT:,} fleetctl reads")
        out.seek(0)
        text = out.read()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError(f"{where}: did not print JSON ({exc}){said}") from None


def parse_script(builder: InventoryBuilder, path: Path, timeout: float = SCRIPT_TIMEOUT) -> None:
    """Add what an inventory script answers to ``--list`` (and ``--host``) to
    ``builder``."""
    where = f"{path} --list"

    def ask(host: str) -> tuple[str, Any]:
        host_where = f"{path} --host {host}"
        return host_where, run_inventory([str(path), "--host", host], host_where, timeout)

    _read(builder, run_inventory([str(path), "--list"], where, timeout), where, ask)


def parse_plugin(builder: InventoryBuilder, path: Path, plugin: str) -> None:
    """Add what ansible-core's ``ansible-inventory --list`` makes of a plugin
    configuration to ``builder``; InputError with the advice when it is not installed."""
    program = shutil.which("ansible-inventory") or str(Path(sys.executable).parent /
                                                       "ansible-inventory")
    if not os.access(program, os.X_OK):
        raise InputError(f"{path}: an Ansible inventory plugin configuration (plugin: "
                         f"{plugin}); fleetctl runs it through ansible-inventory, which is "
                         f"not installed: pip install ansible-core, or pass the inventory "
                         f"'ansible-inventory -i {path} --list' prints")
    where = f"ansible-inventory -i {path} --list"
    _read(builder, run_inventory([program, "-i", str(path), "--list"], where), where,
          lambda host: (where, {}))


def _read(builder: InventoryBuilder, data: Any, where: str,
          ask: Callable[[str], tuple[str, Any]]) -> None:
    """Add Ansible's inventory JSON to ``builder``: its groups, then each host with its
    ``_meta.hostvars`` entry, or what ``ask(host)`` answers (where, vars) without
    ``_meta``."""
    hosts = _groups(builder, data, where)
    meta = data.get("_meta")
    hostvars = meta.get("hostvars") if isinstance(meta, dict) else None
    if meta is not None and not isinstance(hostvars, dict):
        raise InputError(f"{where}: _meta.hostvars should be a mapping of hosts to variables")
    for host in hosts:
        host_where, got = (where, hostvars.get(host, {})) if hostvars is not None \
            else ask(host)
        if not isinstance(got, dict):
            raise InputError(f"{host_where}: the variables of host {host!r} should be a "
                             f"mapping")
        builder.add_host(host, "all", got, where)


def _groups(builder: InventoryBuilder, data: Any, where: str) -> list[str]:
    """Declare the groups of Ansible's inventory JSON; the hosts they name, in order."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: printed {type(data).__name__}, not a mapping of groups")
    hosts: dict[str, None] = {}
    for name, body in data.items():
        if name == "_meta":
            continue
        builder.group(name, where)
        if not isinstance(body, dict):
            body = {"hosts": body}
        elif not any(key in body for key in ("hosts", "vars", "children")):
            body = {"hosts": [name], "vars": body}
        if "hosts" in body:
            if not isinstance(body["hosts"], list):
                raise InputError(f"{where}: {name}.hosts should be a list of host names")
            for host in body["hosts"]:
                if not isinstance(host, str):
                    raise InputError(f"{where}: {name}.hosts: {host!r} is not a host name")
                hosts[host] = None
                builder.add_host(host, name, {}, where)
        if "vars" in body:
            if not isinstance(body["vars"], dict):
                raise InputError(f"{where}: {name}.vars should be a mapping")
            for key, value in body["vars"].items():
                builder.set_group_var(name, key, value, where)
        for child in body.get("children") or []:
            if not isinstance(child, str):
                raise InputError(f"{where}: {name}.children: {child!r} is not a group name")
            builder.group(child, where)
            builder.link(name, child, where)
    return list(hosts)
