"""Reading Ansible inventories: a file or a folder of them (INI or YAML, told apart as
ansible-core tells them apart), with ``group_vars/`` and ``host_vars/`` beside it.

A folder is read as ansible-core reads one: its entries in name order, subfolders too,
leaving out hidden entries, ``group_vars``, ``host_vars``, ``vars_plugins`` and backups,
notes and the like (``*.bak``, ``*.swp``, ``*.md``, ``*.orig``, ``*.cfg``...).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fleetctl.errors import InputError
from fleetctl.inventory.builder import InventoryBuilder
from fleetctl.inventory.dynamic import parse_plugin, parse_script
from fleetctl.inventory.ini_format import parse_ini
from fleetctl.inventory.model import Inventory
from fleetctl.inventory.yaml_format import parse_yaml
from fleetctl.vault import Vault
from fleetctl.yamlfile import load_yaml, read_text

DEFAULT_DIR = Path("inventories")
ENV_VAR = "FLEETCTL_INVENTORY"
#: the largest inventory file read (a 50,000-host INI file is about 20 MB)
MAX_INVENTORY = 256 * 2**20
YAML_EXTENSIONS = (".yml", ".yaml", ".json")
#: folder entries ansible-core does not read as inventories (its IGNORED, defaults)
_IGNORED = re.compile(r"^\.|^host_vars$|^group_vars$|^vars_plugins$|(?:" + "|".join(
    re.escape(e) for e in (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt",
                           ".rst", ".orig", ".cfg", ".retry")) + ")$")
_SECRET = re.compile(r"pass|secret|token|credential|private_key$", re.IGNORECASE)


def default_source() -> Path:
    """``$FLEETCTL_INVENTORY``, else ``inventories/``."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)


def load_inventory(source: Path | None = None, vault: Vault | None = None) -> Inventory:
    """Load an inventory file or folder, with the ``group_vars/`` and ``host_vars/``
    beside the file (in the folder); ``vault`` opens what ansible-vault encrypted."""
    source = source or default_source()
    if source.is_dir():
        files = list(inventory_files(source))
        if not files:
            raise InputError(f"{source}: no inventory files here; pass -i FILE or set "
                             f"{ENV_VAR}")
    elif source.exists():
        files = [source]
    else:
        raise InputError(f"{source}: no such inventory; pass -i FILE or set {ENV_VAR}")
    builder = InventoryBuilder()
    try:
        for path in files:
            builder.sources.append(path)
            _load_file(builder, path)
        return builder.finish([source if source.is_dir() else source.parent], vault)
    except RecursionError:
        raise InputError(f"{source}: groups nested too deeply to read") from None


def inventory_files(folder: Path) -> Iterator[Path]:
    """The inventory files of a folder, in the order ansible-core reads them."""
    for name in sorted(os.listdir(folder)):
        if _IGNORED.search(name):
            continue
        path = folder / name
        if path.is_dir():
            yield from inventory_files(path)
        else:
            yield path


def _load_file(builder: InventoryBuilder, path: Path) -> None:
    """One file, in the order ansible-core tries its plugins: a program (executable, with
    a ``#!`` line or ELF) is a dynamic inventory; a YAML mapping (in a file named .yml,
    .yaml, .json or without an extension) is a YAML inventory or, with ``plugin:``, an
    inventory plugin's configuration; anything else INI."""
    if os.access(path, os.X_OK) and _is_program(path):
        parse_script(builder, path)
        return
    text = read_text(path, MAX_INVENTORY)
    extension = os.path.splitext(path.name)[1]
    yaml_problem: InputError | None = None
    if extension in YAML_EXTENSIONS or not extension:
        try:
            doc = load_yaml(path, text)
        except InputError as exc:
            doc, yaml_problem = None, exc
        if isinstance(doc, dict) and doc:
            if doc.get("plugin"):
                parse_plugin(builder, path, str(doc["plugin"]))
            else:
                parse_yaml(builder, path, doc)
            return
        if doc is None and yaml_problem is None:
            return                                  # empty
        if yaml_problem is None and extension in YAML_EXTENSIONS:
            yaml_problem = InputError(f"{path}:1: a YAML inventory is a mapping of groups "
                                      f"(e.g. 'all:'), not {type(doc).__name__}")
    try:
        parse_ini(builder, path, text)
    except InputError:
        if yaml_problem is not None and extension in YAML_EXTENSIONS:
            raise yaml_problem from None
        raise


def _is_program(path: Path) -> bool:
    with path.open("rb") as f:
        start = f.read(4)
    return start.startswith(b"#!") or start == b"\x7fELF"


def redact(variables: dict[str, Any]) -> dict[str, Any]:
    """Variables with the values of secret-looking keys (passwords, tokens) masked."""
    return {k: "***" if _SECRET.search(str(k)) and v not in (None, "") else v
            for k, v in variables.items()}
