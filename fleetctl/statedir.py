"""The state directory's permissions: it holds the journal, cached facts, trusted
keys, host keys and unpacked bundles, so it is the controller user's alone (0700,
files 0600) however it is first created (``keys trust``, ``run --bundle``, a probe).
"""

from __future__ import annotations

import os
from pathlib import Path


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (made, or narrowed, to 0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def private_file(path: Path) -> Path:
    """``path`` as a file only its owner can read (made empty, or narrowed, to 0600)."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path
