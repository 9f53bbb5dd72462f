"""The one way a value reaches a shell on a device: quoted.

Every command fleetctl sends is a fixed script plus values; the values (paths,
digests, release ids, env text, inventory strings) go through :func:`quote` or
:func:`assignments`, never into the command text as they are.
"""

from __future__ import annotations

import shlex


def quote(value: object) -> str:
    """``value`` as one shell word, whatever it holds."""
    return shlex.quote(str(value))


def command(*words: object) -> str:
    """A command line of quoted words."""
    return " ".join(quote(w) for w in words)


def assignments(values: dict[str, object]) -> str:
    """``NAME='value'`` lines setting shell variables (names are fleetctl's own)."""
    for name in values:
        if not name.isidentifier() or not name.isascii():
            raise ValueError(f"{name!r} is not a shell variable name")
    return "".join(f"{name}={quote(value)}\n" for name, value in values.items())
