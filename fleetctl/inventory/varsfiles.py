"""``group_vars/`` and ``host_vars/`` beside an inventory, found as ansible-core's
host_group_vars plugin finds them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fleetctl import secrets
from fleetctl.errors import InputError
from fleetctl.vault import PASSWORD_ENV, Vault, is_vaulted
from fleetctl.yamlfile import load_yaml, read_text

#: a vars file is NAME or NAME with one of these; in a NAME/ folder, files with one of them
VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")


class VarsFolder:
    """One ``group_vars/`` or ``host_vars/`` folder, listed once (a big inventory asks it
    about every host)."""

    def __init__(self, folder: Path, vault: Vault | None = None) -> None:
        self.folder = folder
        self.vault = vault
        self.entries = set(os.listdir(folder)) if folder.is_dir() else set()

    def files(self, name: str) -> list[Path]:
        """The first of ``NAME``, ``NAME.yml``, ``NAME.yaml``, ``NAME.json`` that exists
        (``host_vars/10.0.0.5`` is 10.0.0.5's); when it is a folder, its vars files."""
        for extension in VARS_EXTENSIONS:
            if name + extension in self.entries:
                path = self.folder / (name + extension)
                return folder_files(path) if path.is_dir() else [path]
        return []

    def variables(self, name: str) -> dict[str, Any]:
        """The variables of ``name``'s files merged in order (later files win)."""
        merged: dict[str, Any] = {}
        for path in self.files(name):
            merged.update(read_vars(path, self.vault))
        return merged


def folder_files(folder: Path) -> list[Path]:
    """A NAME/ folder's vars files in name order: no extension or a vars extension, hidden
    files and backups (``~``) left out, subfolders without an extension read too."""
    found: list[Path] = []
    for entry in sorted(os.listdir(folder)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        path, extension = folder / entry, os.path.splitext(entry)[1]
        if path.is_dir() and not extension:
            found += folder_files(path)
        elif path.is_file() and extension in VARS_EXTENSIONS:
            found.append(path)
    return found


def read_vars(path: Path, vault: Vault | None = None) -> dict[str, Any]:
    """A vars file's mapping (JSON or YAML; empty is no variables). A vaulted file is
    opened with ``vault`` and each of its values registered as a secret."""
    text = read_text(path)
    vaulted = is_vaulted(text)
    if vaulted:
        if vault is None:
            raise InputError(f"{path}: vaulted; pass --vault-password-file or set "
                             f"{PASSWORD_ENV[0]}")
        text = vault.open(text, str(path))
    data: Any
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = load_yaml(path, text)
    else:
        data = load_yaml(path, text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}:1: a vars file should be a mapping of variables, not "
                         f"{type(data).__name__}")
    if vaulted:
        secrets.register(leaf_strings(data))
    return dict(data)


def leaf_strings(value: Any) -> list[str]:
    """Every string inside ``value`` (mappings' values, lists' items)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in leaf_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in leaf_strings(v)]
    return []
