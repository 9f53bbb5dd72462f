"""Secret values: registered once where they are read, redacted everywhere they could
be written.

A package marks env names as secrets (``secrets: [WEBUI_SECRET_KEY]``), and so can
a playbook's package entry; whenever a package holds a value for such a name, the
value is registered here. The journal, the events it sends (the live table, the
events file, ``--json``), the device audit log and every error printed pass their
text through :func:`redact`, which replaces each registered value with ``***``, as
Ansible's ``no_log`` does. Plan files hold no env at all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

MASK = "***"
#: shorter values are not redacted: they would mask ordinary words and numbers
MIN_LENGTH = 4

_lock = threading.Lock()
_values: set[str] = set()


def register(values: Iterable[str]) -> None:
    """Remember values that must never be written out."""
    with _lock:
        for value in values:    # each line too: tools print multi-line values line by line
            _values.update(v for v in (value, *value.splitlines()) if len(v) >= MIN_LENGTH)


def redact(text: str | None) -> str | None:
    """``text`` with every registered secret value replaced by ``***``."""
    if not text or not _values:
        return text
    with _lock:
        values = sorted(_values, key=len, reverse=True)  # a longer secret before its parts
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text
