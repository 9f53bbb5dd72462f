"""Taking an analysis' measurements: probe requests at each metric's rate, scrapes and
container samples at each interval, on the canary and on its baseline hosts at the same
moments, then judging every interval as it ends (a failed metric stops the analysis at
once).

A :class:`Subject` is one host's side; :class:`HostSubject` reaches it over the host's
SSH connection (requests and scrapes through a forwarded channel, container stats with
the device script), so nothing on the host listens beyond what the app already does.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from fleetctl import device
from fleetctl.analysis.conditions import Values
from fleetctl.analysis.measurements import (
    ContainerSample,
    ContainerStats,
    DeviceStats,
    Pooled,
    QueryResult,
    Request,
    RequestStats,
    Scrape,
    Scrapes,
    parse_exposition,
)
from fleetctl.analysis.promql import QueryError, ask, render_query
from fleetctl.analysis.spec import Analysis, Metric
from fleetctl.analysis.verdict import Judged, MetricRun, Verdict, judge, verdict
from fleetctl.facts.tegrastats import TegraStats, parse_tegrastats
from fleetctl.ssh import Connection, SSHFailure

#: the most of an app's metrics page fleetctl reads
SCRAPE_LIMIT = 4 * 2**20
#: the most of a probe request's answer fleetctl reads (the rest is not waited for)
ANSWER_LIMIT = 2**20

T = TypeVar("T")


class SampleError(Exception):
    """A measurement could not be taken (no answer, not the expected format)."""


class Unavailable(SampleError):
    """The host cannot measure this source at all (no tegrastats): the metric is left
    out of its analysis, and the verdict says so."""


class Subject(Protocol):
    """One host measured by an analysis."""

    name: str

    def send(self, metric: Metric) -> Request: ...

    def scrape(self, metric: Metric) -> Scrape: ...

    def container(self) -> ContainerSample: ...

    def device(self) -> TegraStats: ...

    def query(self, metric: Metric) -> QueryResult: ...


@dataclass
class HostSubject:
    """A host reached over its SSH connection: the package's containers of ``release``,
    the metrics' URLs rendered for this host."""

    name: str
    conn: Connection
    package: str
    release: str
    urls: dict[str, str]

    def send(self, metric: Metric) -> Request:
        assert metric.request is not None
        answer = self.conn.http_request(
            metric.request.method, self.urls[metric.name], body=metric.request.body.encode(),
            headers=metric.request.headers, timeout=metric.request.timeout,
            limit=ANSWER_LIMIT)
        return Request(answer.seconds, 200 <= answer.status < 400)

    def scrape(self, metric: Metric) -> Scrape:
        url = self.urls[metric.name]
        answer = self.conn.http_request("GET", url, timeout=10.0, limit=SCRAPE_LIMIT)
        if answer.status != 200:
            raise SampleError(f"GET {url}: {answer.status or answer.reason}")
        try:
            return parse_exposition(answer.body.decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise SampleError(f"GET {url}: not Prometheus's text format ({exc})") from None

    def container(self) -> ContainerSample:
        try:
            ours = [c for c in device.containers(self.conn, self.package)
                    if c.release == self.release]
            usage = device.stats(self.conn, self.package)
        except (device.StepFailed, SSHFailure) as exc:
            raise SampleError(f"container stats: {exc}") from None
        if not ours:
            raise SampleError(f"no container of release {self.release}")
        names = {c.name for c in ours}
        mine = [u for u in usage if u.name in names]
        return ContainerSample(sum(c.restarts for c in ours),
                               sum(u.memory_mb for u in mine), sum(u.cpu_percent for u in mine))

    def device(self) -> TegraStats:
        try:
            line = device.tegrastats(self.conn)
        except (device.StepFailed, SSHFailure) as exc:
            raise SampleError(f"tegrastats: {exc}") from None
        if line is None:
            raise Unavailable("tegrastats is not installed on the host")
        try:
            return parse_tegrastats(line)
        except ValueError as exc:
            raise SampleError(str(exc)) from None

    def query(self, metric: Metric) -> QueryResult:
        assert metric.url is not None and metric.query is not None
        try:
            return QueryResult(*ask(metric.url, render_query(metric.query, self.name)))
        except QueryError as exc:
            raise SampleError(f"query: {exc}") from None


@dataclass
class _State:
    """What one metric has gathered on one subject since its last measurement."""

    requests: list[Request] = field(default_factory=list)
    scrape: Scrape | None = None
    first: ContainerSample | TegraStats | None = None
    error: str | None = None
    unavailable: str | None = None


#: ``fan_out(work, items)``: ``work`` on every item, results in order (threads, or in
#: turn in tests with a fake clock)
FanOut = Callable[[Callable[[Any], Any], list[Any]], list[Any]]
#: the longest a metric waits before it notices that another one failed
STOP_CHECK = 0.5


def analyse(analysis: Analysis, canary: Subject, baselines: list[Subject], *,
            sleep: Callable[[float], None], clock: Callable[[], float],
            fan_out: FanOut | None = None) -> Verdict:
    """Measure ``canary`` and ``baselines`` side by side as ``analysis`` says and judge
    each interval. The metrics run side by side too (a slow ``docker stats`` holds up
    no probe request); a failed metric stops them all."""
    fan_out = fan_out or _threads
    stop = threading.Event()
    runs = fan_out(partial(_run_metric, [canary, *baselines], sleep, clock, fan_out, stop),
                   list(analysis.metrics))
    return verdict(runs, [b.name for b in baselines])


def _run_metric(subjects: list[Subject], sleep: Callable[[float], None],
                clock: Callable[[], float], fan_out: FanOut, stop: threading.Event,
                metric: Metric) -> MetricRun:
    """One metric's schedule: its requests at its rate, its first sample, a measurement
    at the end of each interval, judged as it comes."""
    run = MetricRun(metric)
    states = {s.name: _State() for s in subjects}
    start = clock()
    first = "send" if metric.source == "requests" else "sample"
    events = [(start, 0, first), *((start + i * metric.interval, i, "measure")
                                   for i in range(1, metric.count + 1))]
    order, sends = len(events), 0
    while events and not run.finished and not stop.is_set():
        at, _, kind = heapq.heappop(events)
        while clock() < at and not stop.is_set():
            sleep(min(STOP_CHECK, at - clock()))
        if stop.is_set():
            break
        if kind == "send":
            assert metric.request is not None
            sent = fan_out(partial(_send, metric), subjects)
            for subject, request in zip(subjects, sent, strict=True):
                states[subject.name].requests.append(request)
            sends += 1                  # the k-th send at start + k / rate: no drift
            following = start + sends / metric.request.rate
            if following < start + metric.interval * metric.count:
                order += 1
                heapq.heappush(events, (following, order, "send"))
        elif kind == "sample":
            fan_out(partial(_first_sample, metric, states), subjects)
            run.unavailable = states[subjects[0].name].unavailable
        else:
            values = fan_out(partial(_measure, metric, states), subjects)
            run.judged.append(_judge(metric, values[0], values[1:]))
            if run.failed:
                stop.set()
    return run


def _threads(work: Callable[[Any], T], items: list[Any]) -> list[T]:
    if len(items) == 1:
        return [work(items[0])]
    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(work, items))


def _send(metric: Metric, subject: Subject) -> Request:
    return subject.send(metric)


def _first_sample(metric: Metric, states: dict[str, _State], subject: Subject) -> None:
    state = states[subject.name]
    try:
        if metric.source == "query":
            return                          # each interval asks the server afresh
        if metric.source == "prometheus":
            state.scrape = subject.scrape(metric)
        elif metric.source == "device":
            state.first = subject.device()
        else:
            state.first = subject.container()
    except Unavailable as exc:
        state.unavailable = str(exc)
    except SampleError as exc:
        state.error = str(exc)


def _measure(metric: Metric, states: dict[str, _State],
             subject: Subject) -> tuple[Values | None, int | None, str | None]:
    """One subject's measurement of the interval that just ended: (values, samples,
    why there are none)."""
    state = states[subject.name]
    if metric.source == "requests":
        requests, state.requests = state.requests, []
        return RequestStats(requests), len(requests), None
    try:
        if metric.source == "query":
            return subject.query(metric), None, None
        if metric.source == "prometheus":
            now = subject.scrape(metric)
            before, state.scrape = state.scrape, now
            if before is None:
                return None, None, state.error or "no earlier scrape"
            return Scrapes(before, now, metric.interval), None, None
        if state.unavailable:
            return None, None, state.unavailable
        if metric.source == "device":
            line = subject.device()
            if not isinstance(state.first, TegraStats):
                state.first = line
            return DeviceStats(state.first, line), None, None
        now_sample = subject.container()
        if not isinstance(state.first, ContainerSample):
            state.first = now_sample
        return ContainerStats(state.first, now_sample), None, None
    except SampleError as exc:
        return None, None, str(exc)


def _judge(metric: Metric, canary: tuple[Values | None, int | None, str | None],
           baselines: Iterable[tuple[Values | None, int | None, str | None]]) -> Judged:
    values, samples, error = canary
    if values is None:
        return Judged("inconclusive", f"{metric.name}: {error}")
    pooled = [v for v, _, _ in baselines if v is not None]
    return judge(metric, values, Pooled(pooled) if pooled else None, samples)
