"""The ``analysis:`` section of a package (or of a playbook, per package): which metrics
judge a canary, from which source, how often, and what passes or fails.

    analysis:
      steps: first            # first (the canary step) or all
      inconclusive: pause     # pause (wait for promote or rollback) or fail
      baseline_hosts: 3       # hosts still on the previous release measured beside
      metrics:
        - name: generate
          requests: {method: POST, url: "http://{{ check_address }}:11434/api/generate",
                     body: {model: "llama3.2:1b", prompt: hi, stream: false}, rate: 2}
          interval: 10s
          count: 3
          success: p95_latency_ms <= 1.25 * baseline.p95_latency_ms and error_ratio < 0.01

Every error names the file and line and what to write instead.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetctl.analysis.conditions import Condition, parse_condition
from fleetctl.analysis.measurements import (
    CONTAINER_NAMES,
    DEVICE_NAMES,
    PROMETHEUS_FUNCTIONS,
    QUERY_NAMES,
    REQUEST_NAMES,
)
from fleetctl.durations import parse_duration
from fleetctl.errors import InputError
from fleetctl.yamlfile import Located, LocatedList

KEYS = {"steps", "inconclusive", "baseline_hosts", "metrics"}
METRIC_KEYS = {"name", "requests", "prometheus", "container", "device", "query", "interval",
               "count", "duration", "success", "failure", "failure_limit", "min_samples"}
SOURCES = ("requests", "prometheus", "container", "device", "query")
REQUEST_KEYS = {"url", "method", "body", "headers", "rate", "timeout"}
METHODS = ("GET", "POST", "PUT", "HEAD")


@dataclass(frozen=True)
class ProbeRequest:
    """A request fleetctl sends to the app, through the host's SSH connection, ``rate``
    times a second; ``url`` is a template like the health check's."""

    url: str
    method: str = "GET"
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    rate: float = 2.0
    timeout: float = 10.0


@dataclass(frozen=True)
class Metric:
    """One metric: a source measured every ``interval``, ``count`` times; each
    measurement passes ``success`` and does not meet ``failure``, or counts as failed
    (more than ``failure_limit`` failed measurements fail the metric)."""

    name: str
    source: str
    interval: float
    count: int
    success: Condition | None
    failure: Condition | None
    failure_limit: int = 0
    min_samples: int = 1
    request: ProbeRequest | None = None
    url: str | None = None          # the app's /metrics, or the Prometheus server (query)
    query: str | None = None        # PromQL, ``$host`` the host's name


@dataclass(frozen=True)
class Analysis:
    """A package's canary analysis."""

    metrics: tuple[Metric, ...]
    steps: str = "first"
    inconclusive: str = "pause"
    baseline_hosts: int = 3

    @property
    def window(self) -> float:
        """Seconds the longest metric measures."""
        return max(m.interval * m.count for m in self.metrics)

    def to_json(self) -> dict[str, Any]:
        """The analysis as ``packages show --json`` prints it."""
        return {"steps": self.steps, "inconclusive": self.inconclusive,
                "baseline_hosts": self.baseline_hosts,
                "metrics": [{"name": m.name, "source": m.source, "interval": m.interval,
                             "count": m.count, "success": str(m.success or "") or None,
                             "failure": str(m.failure or "") or None,
                             "failure_limit": m.failure_limit} for m in self.metrics]}

    def applies_to(self, step: int) -> bool:
        """Whether the step (0-based) is analysed."""
        return self.steps == "all" or step == 0


def parse_analysis(raw: Any, path: Path, where: str = "analysis") -> Analysis:
    """``raw`` (the ``analysis`` mapping of a package or playbook) as an Analysis;
    InputError at file:line."""
    line = raw.line if isinstance(raw, Located) else 0
    if not isinstance(raw, Located):
        raise InputError(f"{path}:{line}: {where} is a mapping with metrics (and steps, "
                         f"inconclusive, baseline_hosts)")
    _known(raw, KEYS, path, where)
    steps = raw.get("steps", "first")
    if steps not in ("first", "all"):
        raise InputError(f"{path}:{raw.line_of('steps')}: {where}.steps is first (the "
                         f"canary step) or all")
    inconclusive = raw.get("inconclusive", "pause")
    if inconclusive not in ("pause", "fail"):
        raise InputError(f"{path}:{raw.line_of('inconclusive')}: {where}.inconclusive is "
                         f"pause (wait for promote or rollback) or fail; it never passes")
    baseline = _whole(raw, "baseline_hosts", 3, 0, path, where)
    metrics = raw.get("metrics")
    if not isinstance(metrics, LocatedList) or not metrics:
        raise InputError(f"{path}:{raw.line_of('metrics')}: {where}.metrics is a list of "
                         f"metrics, each with a name, a source ({', '.join(SOURCES)}) and "
                         f"success or failure")
    parsed = tuple(_metric(m, metrics.line_of(i), path, f"{where}.metrics[{i}]")
                   for i, m in enumerate(metrics))
    names = [m.name for m in parsed]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise InputError(f"{path}:{metrics.line}: {where}.metrics: two metrics named "
                         f"{duplicate!r}; names must differ")
    return Analysis(parsed, steps, inconclusive, baseline)


def _metric(raw: Any, line: int, path: Path, where: str) -> Metric:
    if not isinstance(raw, Located):
        raise InputError(f"{path}:{line}: {where} is a mapping with name, a source and "
                         f"success or failure")
    _known(raw, METRIC_KEYS, path, where)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{path}:{raw.line_of('name')}: {where} needs a name")
    sources = [s for s in SOURCES if s in raw]
    if len(sources) != 1:
        raise InputError(f"{path}:{raw.line}: {where} ({name}) needs exactly one source: "
                         f"{', '.join(SOURCES)}")
    source = sources[0]
    interval = _duration(raw, "interval", 10.0, path, where)
    if "count" in raw and "duration" in raw:
        raise InputError(f"{path}:{raw.line_of('duration')}: {where} ({name}) takes count or "
                         f"duration (a soak: count = duration / interval), not both")
    count = math.ceil(_duration(raw, "duration", 0, path, where) / interval) \
        if "duration" in raw else _whole(raw, "count", 3, 1, path, where)
    request, url, query = None, None, None
    if source == "query":
        settings = raw["query"]
        if not isinstance(settings, Located) or set(settings) != {"url", "query"} or \
                not str(settings["url"]).startswith(("http://", "https://")) or \
                not isinstance(settings["query"], str):
            raise InputError(f"{path}:{raw.line_of('query')}: {where}.query is {{url: "
                             f"http://prometheus:9090, query: 'PromQL, $host the host'}}")
        url, query, names, functions = str(settings["url"]), settings["query"], \
            QUERY_NAMES, {}
    elif source == "requests":
        request = _request(raw["requests"], raw.line_of("requests"), path, f"{where}.requests")
        names, functions = REQUEST_NAMES, {}
    elif source == "prometheus":
        settings = raw["prometheus"]
        if not isinstance(settings, Located) or set(settings) != {"url"} or \
                not str(settings["url"]).startswith("http://"):
            raise InputError(f"{path}:{raw.line_of('prometheus')}: {where}.prometheus is "
                             f"{{url: http://...}}, the app's metrics page")
        url, names, functions = str(settings["url"]), frozenset(), PROMETHEUS_FUNCTIONS
    else:
        if raw[source] not in (None, {}):
            raise InputError(f"{path}:{raw.line_of(source)}: {where}.{source} takes "
                             f"no settings: write {source}: {{}}")
        names, functions = (CONTAINER_NAMES if source == "container" else DEVICE_NAMES), {}
    conditions = {}
    for key in ("success", "failure"):
        if key in raw:
            try:
                conditions[key] = parse_condition(str(raw[key]), names, functions)
            except ValueError as exc:
                raise InputError(f"{path}:{raw.line_of(key)}: {where}.{key}: {exc}") from None
    if not conditions:
        raise InputError(f"{path}:{raw.line}: {where} ({name}) needs success or failure, "
                         f"e.g. success: p95_latency_ms < 800")
    return Metric(name, source, interval, count, conditions.get("success"),
                  conditions.get("failure"), _whole(raw, "failure_limit", 0, 0, path, where),
                  _whole(raw, "min_samples", 5 if source == "requests" else 1, 1, path, where),
                  request, url, query)


def _request(raw: Any, line: int, path: Path, where: str) -> ProbeRequest:
    if not isinstance(raw, Located) or "url" not in raw:
        raise InputError(f"{path}:{line}: {where} is a mapping with url (and method, body, "
                         f"headers, rate, timeout)")
    _known(raw, REQUEST_KEYS, path, where)
    url = str(raw["url"])
    if not url.startswith("http://"):
        raise InputError(f"{path}:{raw.line_of('url')}: {where}.url must be an http:// URL")
    method = str(raw.get("method", "GET")).upper()
    if method not in METHODS:
        raise InputError(f"{path}:{raw.line_of('method')}: {where}.method is one of "
                         f"{', '.join(METHODS)}")
    body = raw.get("body", "")
    body = body if isinstance(body, str) else json.dumps(body)
    headers = raw.get("headers", {})
    if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and "\n" not in k + v
            for k, v in headers.items()):
        raise InputError(f"{path}:{raw.line_of('headers')}: {where}.headers maps names to "
                         f"one-line strings")
    rate = raw.get("rate", 2.0)
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 < rate <= 50:
        raise InputError(f"{path}:{raw.line_of('rate')}: {where}.rate is requests a second, "
                         f"more than 0 and at most 50")
    return ProbeRequest(url, method, body, tuple(headers.items()), float(rate),
                        _duration(raw, "timeout", 10.0, path, where))


def _known(raw: Located, keys: set[str], path: Path, where: str) -> None:
    unknown = sorted(set(raw) - keys, key=str)
    if unknown:
        raise InputError(f"{path}:{raw.line_of(unknown[0])}: unknown {where} key "
                         f"{unknown[0]!r}; keys: {', '.join(sorted(keys))}")


def _duration(raw: Located, key: str, default: float, path: Path, where: str) -> float:
    try:
        value = parse_duration(raw[key]) if key in raw else default
    except ValueError:
        value = -1.0
    if value <= 0:
        raise InputError(f"{path}:{raw.line_of(key)}: {where}.{key} {raw.get(key)!r} is not "
                         f"a duration such as 10s or 1m")
    return value


def _whole(raw: Located, key: str, default: int, least: int, path: Path, where: str) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise InputError(f"{path}:{raw.line_of(key)}: {where}.{key} must be a whole number "
                         f"of at least {least}")
    return value
