"""Host names as Ansible inventories write them: ranges (``cam[01:12]``, ``web[a:f]``,
``h[1:10:3]``) and ports (``host:2222``, ``[fe80::1]:2222``)."""

from __future__ import annotations

import re
import string

from fleetctl.errors import InputError


def expand_hosts(pattern: str, where: str = "") -> list[str]:
    """Expand Ansible host ranges as ansible-core does: ``web[01:03]`` (zero-padded to the
    start bound's width), ``web[a:c]``, strides ``h[1:10:3]``, several ranges in one
    name. A malformed range (``h[1:c]``, ``h[3:1]`` of letters) is an InputError at
    ``where``, as ansible-core refuses it."""
    if "[" not in pattern:
        return [pattern]
    head, _, rest = pattern.partition("[")
    body, closed, tail = rest.partition("]")
    try:
        if not closed:
            raise ValueError("a host range needs its closing ]")
        bounds = body.split(":")
        if len(bounds) not in (2, 3):
            raise ValueError("host range must be begin:end or begin:end:step")
        begin, end = bounds[0] or "0", bounds[1]
        if not end:
            raise ValueError("host range must specify end value")
        width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
        if width and width != len(end):
            raise ValueError("host range must specify equal-length begin and end formats")
        step = _number(bounds[2]) if len(bounds) == 3 else 1
        if step == 0:
            raise ValueError("a host range's step cannot be 0")
        if begin in string.ascii_letters and end in string.ascii_letters:
            first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
            if first > last:
                raise ValueError("host range must have begin <= end")
            items: list[str] = list(string.ascii_letters[first:last + 1:step])
        else:
            items = [str(i) for i in range(_number(begin), _number(end) + 1, step)]
    except ValueError as exc:
        raise InputError(f"{where + ': ' if where else ''}host {pattern!r}: {exc}") from None
    return [name for item in items
            for name in expand_hosts(f"{head}{item.zfill(width)}{tail}", where)]


def _number(bound: str) -> int:
    try:
        return int(bound)
    except ValueError:
        raise ValueError(f"host range bound {bound!r} is neither a number nor a letter "
                         f"matching the other bound") from None


def host_and_port(name: str) -> tuple[str, int | None]:
    """``host:2222`` or ``[fe80::1]:2222`` as a host name and its port, as ansible-core
    reads them in inventories (an IPv6 address without brackets has no port)."""
    if name.startswith("[") and "]:" in name:
        address, _, port = name[1:].partition("]:")
        if port.isdigit() and ":" in address:
            return address, int(port)
    elif re.sub(r"\[[^\]]*\]", "", name).count(":") == 1:    # ranges may hold colons
        host, _, port = name.rpartition(":")
        if port.isdigit() and host:
            return host, int(port)
    return name, None
