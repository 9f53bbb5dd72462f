"""YAML loading that remembers where every value came from.

Mappings load as :class:`Located` dicts and sequences as :class:`LocatedList`,
each knowing the line of every key or item, so validation errors can say
``fleet.yml:12: hosts[3].disk: ...`` instead of just the key.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from fleetctl.errors import InputError
from fleetctl.vault import Vaulted

#: the largest YAML file fleetctl reads (inventories, playbooks, packages, lab specs)
MAX_TEXT = 8 * 2**20
#: values in a document once aliases are expanded
MAX_NODES = 200_000


class Located(dict):
    """A mapping that knows its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        """Line of ``key`` in the file, or the mapping's own line when absent."""
        return self.key_lines.get(key, self.line)


class LocatedList(list):
    """A sequence that knows its own line and the line of each item (1-based)."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        """Line of item ``index`` in the file."""
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class _Loader(yaml.CSafeLoader):
    """libyaml's SafeLoader that builds Located containers."""

    path: Path | str = ""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    own = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)        # puts the pairs of '<<: *base' first
    merged = len(node.value) - own
    result = Located()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    written: set[Any] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable) or isinstance(key, (list, dict)):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value, not a list or mapping",
                key_node.start_mark)
        if index >= merged:             # a merged key may be overridden, a written one not
            if key in written:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            written.add(key)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LocatedList:
    result = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


def _vaulted(loader: _Loader, node: yaml.ScalarNode) -> Vaulted:
    """Ansible's ``!vault |`` value, kept closed until a vault password opens it."""
    return Vaulted(str(loader.construct_scalar(node)),
                   f"{getattr(loader, 'path', '')}:{node.start_mark.line + 1}")


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)
_Loader.add_constructor("!vault", _vaulted)


def _expanded_size(node: yaml.Node, seen: dict[int, int]) -> int:
    """Nodes in the document once every alias is expanded (counted without expanding)."""
    if id(node) in seen:
        return seen[id(node)]
    seen[id(node)] = 1          # a node that refers to itself counts once
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, seen) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, seen) + _expanded_size(v, seen) for k, v in node.value)
    seen[id(node)] = size
    return size


def load_yaml(path: Path, text: str | None = None) -> Any:
    """Load one YAML document from ``path`` (or ``text`` read from it) with line information.

    Raises :class:`InputError` naming the file and line for unreadable files, YAML
    syntax errors, keys written twice (a key from a ``<<:`` merge may be overridden),
    keys that are not plain values, and documents that are too big (a file over
    :data:`MAX_TEXT` bytes, or more values than :data:`MAX_NODES` plus half its characters
    once aliases are expanded: an alias bomb is refused before it is built).
    """
    if text is None:
        text = read_text(path)
    max_nodes = MAX_NODES + len(text) // 2      # a big file may hold many values, not a bomb
    loader = _Loader(text)
    loader.path = path
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > max_nodes:
            raise InputError(f"{path}:{node.start_mark.line + 1}: more than {max_nodes:,} "
                             f"values once its aliases are expanded (an alias bomb?); "
                             f"write it out plainly")
        return loader.construct_document(node)
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to read") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise InputError(f"{path}{line}: YAML error: {problem}; fix the syntax there") from None
    except yaml.reader.ReaderError as exc:      # a character YAML does not allow (NUL)
        raise InputError(f"{path}: not YAML text: {exc}".replace("\n", " ")) from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: YAML error: {exc}") from None
    finally:
        loader.dispose()


def read_text(path: Path, limit: int = MAX_TEXT) -> str:
    """The file's text; InputError naming the file when it cannot be read, is larger than
    ``limit`` bytes or is not UTF-8."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > limit:
        raise InputError(f"{path}: larger than {limit:,} bytes; is this the right file?")
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text (byte {exc.start}); save it as "
                         f"UTF-8") from None


def line_of(container: Any, key: Any) -> int:
    """Best-known line of ``key`` inside ``container`` (0 when unknown)."""
    if isinstance(container, (Located, LocatedList)):
        return container.line_of(key)
    return 0
