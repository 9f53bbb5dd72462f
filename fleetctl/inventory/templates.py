"""Inventory variables that are Jinja2 templates (``ansible_host: "{{ inventory_hostname
}}.site.local"``), rendered as Ansible renders them when it connects: lazily, with the
host's variables and its magic ones, templates inside referenced variables too.

Inventory values are not trusted: templates run in Jinja2's immutable sandbox, and an
undefined variable, a loop or a sandbox violation is an InputError, never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from fleetctl.errors import InputError

#: how many templates may refer to one another in a chain
MAX_DEPTH = 16
_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)


def is_template(value: Any) -> bool:
    """Whether ``value`` is a string Jinja2 would change."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def render(value: Any, name: str, variables: Mapping[str, Any], host: str,
           groups: Iterable[str], where: str) -> Any:
    """``value`` of variable ``name`` with its template rendered against the host's
    ``variables`` and ``inventory_hostname``, ``inventory_hostname_short``,
    ``group_names``; anything not a template is returned as it is."""
    if not is_template(value):
        return value
    context = {**variables, "inventory_hostname": host,
               "inventory_hostname_short": host.split(".")[0],
               "group_names": sorted(g for g in groups if g != "ungrouped")}
    return _render(value, name, context, where, ())


def _render(value: Any, name: str, context: Mapping[str, Any], where: str,
            chain: tuple[str, ...]) -> Any:
    if not is_template(value):
        return value
    if name in chain or len(chain) >= MAX_DEPTH:
        raise InputError(f"{where}: {' -> '.join((*chain, name))}: the templates refer to "
                         f"each other in a loop (or too deeply); write one of them out")
    try:
        needed = meta.find_undeclared_variables(_ENV.parse(value))
        scope = {k: _render(context[k], k, context, where, (*chain, name))
                 for k in needed if k in context}
        return _ENV.from_string(value).render(scope)
    except jinja2.TemplateError as exc:
        raise InputError(f"{where}: {name} {value!r}: {exc}; define what it uses in the "
                         f"inventory or write the value out") from None
