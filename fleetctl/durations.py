"""Durations as people write them: ``30s``, ``5m``, ``500ms``, ``90d``."""

from __future__ import annotations

from typing import Any


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``30s``, ``5m``, ``1h``, ``90d`` or ``500ms``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().lower()
    for suffix, scale in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)):
        if text.endswith(suffix) and text[:-len(suffix)].replace(".", "", 1).isdigit():
            return float(text[:-len(suffix)]) * scale
    if text.replace(".", "", 1).isdigit():
        return float(text)
    raise ValueError(value)
