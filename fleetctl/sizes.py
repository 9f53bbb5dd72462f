"""Sizes as people write them: ``64m``, ``2g``, ``512k``."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^(\d+)([kmg]?)$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str | int) -> int:
    """Bytes in a size like ``2g``, ``64m`` or ``512k``; ValueError otherwise."""
    match = _SIZE.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a size like 64m or 2g")
    return int(match[1]) * _UNITS[match[2].lower()]


_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmg]?)bit(?:/s)?$", re.IGNORECASE)


def parse_rate(text: str | int) -> float:
    """Bytes per second in a link rate written as tc does: ``512kbit``, ``10mbit``,
    ``1gbit`` (decimal units of bits); ValueError otherwise."""
    match = _RATE.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a rate like 512kbit or 10mbit")
    return float(match[1]) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match[2].lower()] / 8
