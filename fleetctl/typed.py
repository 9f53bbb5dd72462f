"""Typed reads of JSON documents fleetctl did not write itself this run (plan files,
journal rows): a dataclass from a dict, each field's type checked, errors naming
the field's path (``entries[3].pull_bytes: expected int, got 'x'``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from fleetctl.errors import InputError

T = TypeVar("T")
_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "Any": (object,),
    "str | None": (str, type(None)), "dict[str, Any]": (dict,),
}


def check(value: Any, annotation: str, where: str) -> Any:
    """``value`` checked against a plain annotation: a scalar, ``X | None``,
    ``list[X]`` or ``dict[str, X]``."""
    if annotation in _SCALARS:
        return expect(value, _SCALARS[annotation], where)
    if annotation.endswith(" | None"):
        return None if value is None else check(value, annotation[:-7], where)
    if annotation.startswith("list[") and annotation.endswith("]"):
        return [check(item, annotation[5:-1], f"{where}[{i}]")
                for i, item in enumerate(expect(value, (list,), where))]
    if annotation.startswith("dict[str, ") and annotation.endswith("]"):
        return {expect(key, (str,), f"{where} key"): check(item, annotation[10:-1],
                                                           f"{where}[{key!r}]")
                for key, item in expect(value, (dict,), where).items()}
    raise TypeError(f"typed.check cannot read {annotation!r}")


def expect(value: Any, kinds: tuple[type, ...], where: str) -> Any:
    """``value`` if it is one of ``kinds`` (a bool is not an int here); InputError else."""
    if isinstance(value, bool) and bool not in kinds:
        kinds = ()
    if not isinstance(value, kinds):
        names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds) \
            or "not a bool"
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise InputError(f"{where}: expected {names}, got {shown}")
    return value


def build(cls: type[T], doc: Any, where: str,
          convert: dict[str, Callable[[Any, str], Any]] | None = None) -> T:
    """``cls(**doc)`` with every field checked against its annotation; ``convert`` maps
    a field to a function (value, where) -> value for fields that need more."""
    expect(doc, (dict,), where or "document")
    convert = convert or {}
    fields = {f.name: f for f in dataclasses.fields(cls)}   # type: ignore[arg-type]
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise InputError(f"{where}.{unknown[0]}: not a field fleetctl knows")
    values = {}
    for name, field in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in doc:
            if field.default is dataclasses.MISSING and \
                    field.default_factory is dataclasses.MISSING:
                raise InputError(f"{path}: missing")
            continue
        value = doc[name]
        values[name] = convert[name](value, path) if name in convert else \
            check(value, str(field.type), path)
    return cls(**values)
