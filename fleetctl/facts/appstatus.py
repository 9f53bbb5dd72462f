"""What ``fleetctl status`` reads from a host in one round trip (``status.sh``): the
containers fleetctl deployed (package, version, release, image digest, state, health,
restarts, start time), the device's memory and clock, and a tegrastats line. Every
field comes from the device and is parsed, never trusted: a line of another shape is
left out, a malformed section is None.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from importlib import resources

from fleetctl.facts.hostfacts import image_digest, split_sections
from fleetctl.facts.tegrastats import TegraStats, parse_tegrastats

STATUS_SCRIPT = (resources.files("fleetctl.facts") / "status.sh").read_text()


@dataclass(frozen=True)
class AppContainer:
    """One container fleetctl deployed, as Docker reports it."""

    name: str
    package: str
    version: str
    release: str
    digest: str | None
    state: str
    health: str
    restarts: int
    uptime: float | None        # seconds since it started, by the device's clock


@dataclass(frozen=True)
class DeviceStatus:
    """One host's answer to the status probe."""

    containers: list[AppContainer] = field(default_factory=list)
    mem_total_mb: int | None = None
    mem_available_mb: int | None = None
    tegrastats: TegraStats | None = None


def parse_status(output: str) -> DeviceStatus:
    """The status probe's output; ProbeOutputError when it is not that."""
    sections = split_sections(output)
    now = _number(sections.get("now", ""))
    memory = {}
    for line in sections.get("meminfo", "").splitlines():
        key, _, value = line.partition(":")
        amount = value.split()[0] if value.split() else ""
        if amount.isdigit():
            memory[key.strip()] = int(amount) // 1024
    containers = [c for c in (_container(line, now) for line in
                              sections.get("containers", "").splitlines()) if c]
    try:
        stats = parse_tegrastats(sections["tegrastats"]) if "tegrastats" in sections else None
    except ValueError:
        stats = None
    return DeviceStatus(containers, memory.get("MemTotal"), memory.get("MemAvailable"), stats)


def _container(line: str, now: float | None) -> AppContainer | None:
    parts = line.split("|")
    if len(parts) != 9 or not parts[7].isdigit():
        return None
    name, package, version, release, image, state, health, restarts, started = parts
    try:
        digest = image_digest(image)
    except ValueError:
        digest = None
    return AppContainer(name.lstrip("/"), package, version, release,
                        str(digest) if digest else None, state, health, int(restarts),
                        _uptime(started, now) if state == "running" else None)


def _uptime(started: str, now: float | None) -> float | None:
    """Seconds from Docker's ``2026-11-29T07:31:20.123456789Z`` to the device's now."""
    if now is None:
        return None
    stamp = started.rstrip("Z").partition(".")[0]
    try:
        begin = dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None
    return max(0.0, now - begin.timestamp())


def _number(text: str) -> float | None:
    return float(text.strip()) if text.strip().isdigit() else None
