"""Measurements: what one interval of one source saw, as the names and functions a
condition reads.

- :class:`RequestStats`: probe requests sent to the app (latency percentiles, error
  ratio);
- :class:`ContainerStats`: the release's containers (restarts, memory, CPU);
- :class:`DeviceStats`: the Jetson itself, from ``tegrastats`` (RAM, GPU load,
  temperatures, power);
- :class:`Scrapes`: two scrapes of the app's Prometheus ``/metrics`` (``increase``,
  ``rate``, ``quantile`` of a histogram, ``value`` of a gauge), PromQL's way;
- :class:`Pooled`: the same measurement on several baseline hosts, averaged per host.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetctl.analysis.conditions import Values
from fleetctl.facts.tegrastats import TegraStats

#: names each source measures, for checking a condition when the package is loaded
REQUEST_NAMES = frozenset({"requests", "errors", "error_ratio", "p50_latency_ms",
                           "p90_latency_ms", "p95_latency_ms", "p99_latency_ms",
                           "max_latency_ms", "mean_latency_ms"})
CONTAINER_NAMES = frozenset({"restarts", "memory_mb", "memory_growth_mb", "cpu_percent"})
QUERY_NAMES = frozenset({"value", "series"})
DEVICE_NAMES = frozenset({"ram_used_mb", "ram_total_mb", "ram_ratio", "ram_growth_mb",
                          "swap_used_mb", "cpu_load_percent", "gpu_load_percent",
                          "emc_load_percent", "temp_max_c", "power_mw"})
#: Prometheus functions and how many numbers come before the metric name
PROMETHEUS_FUNCTIONS = {"increase": 0, "rate": 0, "quantile": 1, "value": 0}


@dataclass(frozen=True)
class Request:
    """One probe request: how long it took and whether it succeeded (2xx or 3xx)."""

    seconds: float
    ok: bool


@dataclass
class RequestStats(Values):
    """Probe requests of one interval."""

    requests: list[Request] = field(default_factory=list)

    def value(self, name: str) -> float | None:
        if name == "requests":
            return float(len(self.requests))
        if not self.requests:
            return None
        errors = sum(not r.ok for r in self.requests)
        if name == "errors":
            return float(errors)
        if name == "error_ratio":
            return errors / len(self.requests)
        latencies = sorted(r.seconds * 1000 for r in self.requests)
        if name == "mean_latency_ms":
            return sum(latencies) / len(latencies)
        if name == "max_latency_ms":
            return latencies[-1]
        return percentile(latencies, float(name[1:3]) / 100)

    def call(self, function: str, args: list, labels: dict[str, str]) -> float | None:
        return None


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values, by the nearest-rank method."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True)
class ContainerSample:
    """The release's containers at one moment: restarts, memory (MiB) and CPU (%)."""

    restarts: int
    memory_mb: float
    cpu_percent: float


@dataclass
class ContainerStats(Values):
    """The last sample of an interval, against the first of the whole analysis."""

    first: ContainerSample
    last: ContainerSample

    def value(self, name: str) -> float | None:
        if name == "memory_growth_mb":
            return self.last.memory_mb - self.first.memory_mb
        return float(getattr(self.last, name))

    def call(self, function: str, args: list, labels: dict[str, str]) -> float | None:
        return None


@dataclass
class DeviceStats(Values):
    """The last tegrastats line of an interval, against the first of the analysis."""

    first: TegraStats
    last: TegraStats

    def value(self, name: str) -> float | None:
        if name == "ram_growth_mb":
            return float(self.last.ram_used_mb - self.first.ram_used_mb)
        return self.last.values()[name]

    def call(self, function: str, args: list, labels: dict[str, str]) -> float | None:
        return None


@dataclass
class QueryResult(Values):
    """A PromQL query's answer at the end of an interval: its value and series count."""

    result: float | None
    series: int

    def value(self, name: str) -> float | None:
        return self.result if name == "value" else float(self.series)

    def call(self, function: str, args: list, labels: dict[str, str]) -> float | None:
        return None


#: one scrape: sample name -> [(labels, value)]
Scrape = dict[str, list[tuple[dict[str, str], float]]]


def parse_exposition(text: str) -> Scrape:
    """Read Prometheus's text exposition format (prometheus_client's parser);
    ValueError on anything that is not."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: Scrape = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels),
                                                        float(sample.value)))
    return samples


@dataclass
class Scrapes(Values):
    """Two scrapes ``seconds`` apart: counters and histograms by their increase."""

    before: Scrape
    after: Scrape
    seconds: float

    def value(self, name: str) -> float | None:
        return None

    def call(self, function: str, args: list, labels: dict[str, str]) -> float | None:
        if function == "value":
            found = _matching(self.after, args[0], labels)
            return sum(v for _, v in found) if found else None
        if function in ("increase", "rate"):
            grown = self._increase(args[0], labels)
            if grown is None or function == "increase":
                return grown
            return grown / self.seconds if self.seconds > 0 else None
        q, name = float(args[0]), args[1]
        return self._quantile(q, name, labels)

    def _increase(self, name: str, labels: dict[str, str]) -> float | None:
        after = _matching(self.after, name, labels)
        if not after:
            return None
        before = {_key(lab): v for lab, v in _matching(self.before, name, labels)}
        total = 0.0
        for lab, value in after:
            old = before.get(_key(lab), 0.0)
            total += value - old if value >= old else value    # a counter reset
        return total

    def _quantile(self, q: float, name: str, labels: dict[str, str]) -> float | None:
        """``histogram_quantile``: the bucket where the q-th observation of the interval
        falls, interpolated linearly inside it."""
        buckets: dict[float, float] = {}
        before = {_key(lab): v for lab, v in _matching(self.before, f"{name}_bucket", labels)}
        for lab, value in _matching(self.after, f"{name}_bucket", labels):
            old = before.get(_key(lab), 0.0)
            try:
                bound = float(lab.get("le", "nan"))
            except ValueError:          # the app's answer: not trusted to be well formed
                continue
            buckets[bound] = buckets.get(bound, 0.0) + (value - old if value >= old else value)
        bounds = sorted(b for b in buckets if not math.isnan(b))
        if not bounds or bounds[-1] != math.inf or buckets[math.inf] <= 0:
            return None
        rank = q * buckets[math.inf]
        lower, below = 0.0, 0.0
        for bound in bounds:
            count = buckets[bound]
            if count >= rank:
                if bound == math.inf:
                    return lower
                inside = count - below
                return lower + (bound - lower) * ((rank - below) / inside if inside else 0)
            lower, below = bound, count
        return None


def _matching(scrape: Scrape, name: str, labels: dict[str, str]) -> list[tuple[dict[str, str],
                                                                              float]]:
    """Series of ``name`` whose labels fully match each ``labels`` regex, as PromQL's
    ``=~`` does."""
    patterns = {k: re.compile(v) for k, v in labels.items()}
    return [(lab, value) for lab, value in scrape.get(name, [])
            if all(p.fullmatch(lab.get(k, "")) for k, p in patterns.items())]


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


@dataclass
class Pooled(Values):
    """Several hosts' measurements of one interval: the mean of those that have one."""

    members: list[Values]

    def value(self, name: str) -> float | None:
        return _mean([m.value(name) for m in self.members])

    def call(self, function: str, args: list, labels: dict[str, str]) -> float | None:
        return _mean([m.call(function, args, labels) for m in self.members])


def _mean(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return sum(found) / len(found) if found else None
