"""Canary analysis without a device: conditions, Prometheus exposition arithmetic, the
``analysis:`` schema's errors, and the measuring loop against fake hosts and a fake
clock (a slow or erroring canary fails with its numbers, no baseline is inconclusive,
a failed metric stops the analysis at once)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fleetctl.analysis.conditions import parse_condition
from fleetctl.analysis.measurements import (
    PROMETHEUS_FUNCTIONS,
    REQUEST_NAMES,
    ContainerSample,
    Request,
    RequestStats,
    Scrapes,
    parse_exposition,
)
from fleetctl.analysis.sampling import SampleError, Unavailable, analyse
from fleetctl.analysis.spec import Analysis, Metric, parse_analysis
from fleetctl.analysis.verdict import judge
from fleetctl.errors import InputError
from fleetctl.facts.tegrastats import TegraStats, parse_tegrastats
from fleetctl.yamlfile import load_yaml

from ..fakedevice import FakeClock

#: what the lab's fake ollama serves on /metrics (and a real client library writes)
EXPOSITION = """\
# HELP ollama_requests_total Requests answered, by path and status.
# TYPE ollama_requests_total counter
ollama_requests_total{{path="/api/generate",status="200"}} {ok}
ollama_requests_total{{path="/api/generate",status="500"}} {failed}
# HELP ollama_request_duration_seconds Time to answer a request.
# TYPE ollama_request_duration_seconds histogram
ollama_request_duration_seconds_bucket{{le="0.05"}} {b1}
ollama_request_duration_seconds_bucket{{le="0.1"}} {b2}
ollama_request_duration_seconds_bucket{{le="0.25"}} {b3}
ollama_request_duration_seconds_bucket{{le="+Inf"}} {b4}
ollama_request_duration_seconds_sum 1.5
ollama_request_duration_seconds_count {b4}
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes {rss}
"""


def scrape(ok=0, failed=0, b1=0, b2=0, b3=0, b4=0, rss=1e6):
    return parse_exposition(EXPOSITION.format(ok=ok, failed=failed, b1=b1, b2=b2, b3=b3,
                                              b4=b4, rss=rss))


def test_conditions_read_names_baseline_and_refuse_code() -> None:
    cond = parse_condition("p95_latency_ms <= 1.25 * baseline.p95_latency_ms and "
                           "error_ratio < 0.01", REQUEST_NAMES)
    fast = RequestStats([Request(0.1, True)] * 20)
    slow = RequestStats([Request(0.3, True)] * 20)
    from fleetctl.analysis.conditions import evaluate, explain
    assert evaluate(cond, fast, slow) is True
    assert evaluate(cond, slow, fast) is False
    assert evaluate(cond, slow, None) is None             # no baseline: inconclusive
    assert explain(cond, slow, fast) == ("p95_latency_ms 300, baseline.p95_latency_ms 100, "
                                         "error_ratio 0")
    for bad, why in [("__import__('os').system('id')", "unknown function"),
                     ("p95_latency_ms.__class__", "only baseline.NAME"),
                     ("latency < 5", "unknown name 'latency'"),
                     ("[1][0] < 2", "not allowed"),
                     ("p95_latency_ms <", "not an expression")]:
        with pytest.raises(ValueError, match=why):
            parse_condition(bad, REQUEST_NAMES)


def test_request_stats_percentiles_and_error_ratio() -> None:
    stats = RequestStats([Request(i / 1000, i % 10 != 0) for i in range(1, 101)])
    assert stats.value("p50_latency_ms") == pytest.approx(50)
    assert stats.value("p95_latency_ms") == pytest.approx(95)
    assert stats.value("p99_latency_ms") == pytest.approx(99)
    assert stats.value("error_ratio") == 0.1 and stats.value("requests") == 100
    assert RequestStats([]).value("p95_latency_ms") is None


def test_prometheus_increase_rate_quantile_and_gauge() -> None:
    before = scrape(ok=100, failed=0, b1=50, b2=90, b3=100, b4=100)
    after = scrape(ok=190, failed=10, b1=60, b2=100, b3=200, b4=200, rss=5e6)
    scrapes = Scrapes(before, after, 10.0)
    assert scrapes.call("increase", ["ollama_requests_total"], {}) == 100
    assert scrapes.call("increase", ["ollama_requests_total"], {"status": "5.."}) == 10
    assert scrapes.call("rate", ["ollama_requests_total"], {"status": "2.."}) == 9
    # 100 new observations: 10 <= 0.05, none in (0.05, 0.1], 90 in (0.1, 0.25]: the 95th
    # is the 85th of 90 in that bucket, interpolated as Prometheus's histogram_quantile
    assert scrapes.call("quantile", [0.95, "ollama_request_duration_seconds"], {}) == \
        pytest.approx(0.1 + 0.15 * 85 / 90)
    assert scrapes.call("value", ["process_resident_memory_bytes"], {}) == 5e6
    assert scrapes.call("increase", ["no_such_metric"], {}) is None
    errors = parse_condition('increase("ollama_requests_total", status="5..") > '
                             '0.05 * increase("ollama_requests_total")', frozenset(),
                             PROMETHEUS_FUNCTIONS)
    from fleetctl.analysis.conditions import evaluate, explain
    assert evaluate(errors, scrapes, None) is True
    assert explain(errors, scrapes, None) == ('increase("ollama_requests_total", status="5..") '
                                              '10, increase("ollama_requests_total") 100')
    slow = parse_condition('quantile(0.95, "ollama_request_duration_seconds") > '
                           '2 * baseline.quantile(0.95, "ollama_request_duration_seconds")',
                           frozenset(), PROMETHEUS_FUNCTIONS)
    assert evaluate(slow, scrapes, scrapes) is False and evaluate(slow, scrapes, None) is None
    for bad in ('increase(ollama_requests_total)', 'rate("x", 5)', 'value()',
                'quantile("x")', 'increase("x") < latency', 'quantile("a", "b") > 1',
                '"abc" < 5', 'increase("x", status=5) > 1', 'increase("x", status="(") > 1'):
        with pytest.raises(ValueError):
            parse_condition(bad, frozenset(), PROMETHEUS_FUNCTIONS)
    reset = Scrapes(after, scrape(ok=5, b4=5), 10.0)         # the app restarted
    assert reset.call("increase", ["ollama_requests_total"], {"status": "200"}) == 5
    with pytest.raises(ValueError):
        parse_exposition("ollama_requests_total{status=200} one\n")
    odd = parse_exposition('h_bucket{le="abc"} 5\nh_bucket{le="+Inf"} 5\n')
    assert Scrapes({}, odd, 1.0).call("quantile", [0.5, "h"], {}) == 0.0   # "abc" skipped
    beyond = Scrapes(before, scrape(b1=50, b2=90, b3=100, b4=110), 10.0)
    assert beyond.call("quantile", [0.95, "ollama_request_duration_seconds"], {}) == 0.25


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "package.yml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str) -> Analysis:
    path = write(tmp_path, text)
    return parse_analysis(load_yaml(path)["analysis"], path)


GOOD = """\
analysis:
  metrics:
    - name: generate
      requests: {method: POST, url: "http://{{ check_address }}:11434/api/generate",
                 body: {model: "llama3.2:1b", prompt: hi, stream: false}, rate: 3}
      interval: 2s
      count: 3
      success: p95_latency_ms <= 1.5 * baseline.p95_latency_ms and error_ratio < 0.05
    - name: memory
      container: {}
      interval: 2s
      count: 3
      failure: memory_growth_mb > 50 or restarts > 0
"""


def test_the_schema_reads_a_good_analysis(tmp_path: Path) -> None:
    analysis = load(tmp_path, GOOD)
    generate, memory = analysis.metrics
    assert generate.request is not None and generate.request.method == "POST"
    assert generate.request.body == '{"model": "llama3.2:1b", "prompt": "hi", "stream": false}'
    assert (generate.min_samples, memory.min_samples) == (5, 1)
    assert analysis.window == 6 and analysis.applies_to(0) and not analysis.applies_to(1)
    soak = load(tmp_path, GOOD.replace("count: 3\n      success", "duration: 61s\n      success"))
    assert soak.metrics[0].count == 31                  # every 2 s for at least 61 s


@pytest.mark.parametrize("change, message", [
    (("rate: 3", "rate: 0"), r"package.yml:5: analysis.metrics\[0\].requests.rate is "
                             r"requests a second"),
    (("error_ratio < 0.05", "error_rate < 0.05"), r"package.yml:8: analysis.metrics\[0\]"
                                                  r".success: unknown name 'error_rate'"),
    (("container: {}", "container: yes"), r"package.yml:10: .*container takes no settings"),
    (("count: 3\n      success", "count: 0\n      success"), r"package.yml:7: .*count must "
                                                             r"be a whole number of at least 1"),
    (("interval: 2s\n      count: 3\n      fail", "interval: soon\n      count: 3\n      fail"),
     r"package.yml:11: .*interval 'soon' is not a duration"),
    (("    - name: memory", "    - name: generate"), r"two metrics named 'generate'"),
    (("count: 3\n      success", "count: 3\n      duration: 1m\n      success"),
     r"package.yml:8: .*\(generate\) takes count or duration"),
    (("  metrics:", "  steps: every\n  metrics:"), r"package.yml:2: analysis.steps is first"),
    (("      failure: memory", "      oops: 1\n      failure: memory"),
     r"package.yml:13: unknown analysis.metrics\[1\] key 'oops'"),
])
def test_the_schema_names_file_line_and_fix(tmp_path: Path, change: tuple[str, str],
                                            message: str) -> None:
    with pytest.raises(InputError, match=message):
        load(tmp_path, GOOD.replace(*change, 1))


@dataclass
class FakeApp:
    """A host's app: latency and error share per request, memory growth per sample."""

    name: str
    clock: FakeClock
    latency: float = 0.1
    error_every: int = 0
    leak_mb: float = 0.0
    sent: int = 0
    samples: int = 0
    down: bool = False
    gpu: int | None = 10              # GR3D_FREQ; None: the host has no tegrastats
    log: list[tuple[float, str]] = field(default_factory=list)

    def send(self, metric: Metric) -> Request:
        self.sent += 1
        self.log.append((self.clock.now, "send"))
        failed = self.error_every and self.sent % self.error_every == 0
        return Request(self.latency, not failed)

    def scrape(self, metric: Metric):
        raise SampleError("not used")

    def device(self) -> TegraStats:
        if self.gpu is None:
            raise Unavailable("tegrastats is not installed on the host")
        self.samples += 1
        used = 2000 + int(self.leak_mb * self.samples)
        return parse_tegrastats(f"RAM {used}/7620MB GR3D_FREQ {self.gpu}% gpu@50C "
                                f"VDD_IN 4000mW/4000mW")

    def container(self) -> ContainerSample:
        if self.down:
            raise SampleError("no container of release r1")
        self.samples += 1
        return ContainerSample(0, 100 + self.leak_mb * self.samples, 5.0)


def run(analysis: Analysis, canary: FakeApp, *baselines: FakeApp):
    return analyse(analysis, canary, list(baselines), sleep=canary.clock.sleep,
                   clock=canary.clock, fan_out=lambda work, subjects: [work(s) for s in subjects])


def test_a_good_canary_passes_with_its_numbers(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    verdict = run(load(tmp_path, GOOD), FakeApp("a1", clock), FakeApp("b1", clock, 0.1))
    assert verdict.outcome == "successful", verdict.detail
    assert clock.now == 12          # two metrics of three 2 s intervals, in turn here
    assert "p95_latency_ms 100, baseline.p95_latency_ms 100" in verdict.detail
    assert verdict.detail.endswith("baseline: b1")
    assert [m["samples"] for m in verdict.measurements["generate"]] == [6, 6, 6]


def test_a_slow_canary_fails_at_the_first_interval(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    canary, baseline = FakeApp("a1", clock, latency=0.3), FakeApp("b1", clock)
    verdict = run(load(tmp_path, GOOD), canary, baseline)
    assert verdict.outcome == "failed"
    assert verdict.detail == ("generate: p95_latency_ms <= 1.5 * baseline.p95_latency_ms and "
                              "error_ratio < 0.05 failed: p95_latency_ms 300, "
                              "baseline.p95_latency_ms 100, error_ratio 0 (6 samples); "
                              "baseline: b1")
    assert clock.now == 2 and canary.sent == baseline.sent == 6    # stopped at once


def test_errors_and_a_leak_fail_their_metrics(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    verdict = run(load(tmp_path, GOOD), FakeApp("a1", clock, error_every=4),
                  FakeApp("b1", clock))
    assert verdict.outcome == "failed" and "error_ratio 0.167" in verdict.detail
    clock = FakeClock(0.0)
    verdict = run(load(tmp_path, GOOD), FakeApp("a1", clock, leak_mb=30), FakeApp("b1", clock))
    assert verdict.outcome == "failed"
    assert verdict.detail.startswith("memory: memory_growth_mb > 50 or restarts > 0 met its "
                                     "failure condition: memory_growth_mb 60, restarts 0")


def test_no_baseline_is_inconclusive_never_a_pass(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    verdict = run(load(tmp_path, GOOD), FakeApp("a1", clock))
    assert verdict.outcome == "inconclusive"
    assert verdict.detail == ("generate: p95_latency_ms <= 1.5 * baseline.p95_latency_ms and "
                              "error_ratio < 0.05: no baseline (no host of the same class on "
                              "the previous release) (6 samples); no baseline host")


def test_too_few_samples_and_a_missing_container_are_inconclusive(tmp_path: Path) -> None:
    metric = load(tmp_path, GOOD).metrics[0]
    few = judge(metric, RequestStats([Request(0.1, True)] * 3), None, 3)
    assert (few.outcome, few.detail) == ("inconclusive", "generate: only 3 samples, 5 needed")
    clock = FakeClock(0.0)
    memory_only = Analysis((load(tmp_path, GOOD).metrics[1],))
    verdict = run(memory_only, FakeApp("a1", clock, down=True))
    assert verdict.outcome == "inconclusive"
    assert verdict.detail.startswith("memory: no container of release r1")


DEVICE = GOOD + """\
    - name: jetson
      device: {}
      interval: 2s
      count: 3
      failure: gpu_load_percent > 95 or ram_growth_mb > 500 or temp_max_c > 90
"""


def test_a_saturated_gpu_fails_and_a_host_without_tegrastats_says_so(tmp_path: Path) -> None:
    clock = FakeClock(0.0)
    analysis = load(tmp_path, DEVICE)
    verdict = run(analysis, FakeApp("a1", clock, gpu=99), FakeApp("b1", clock))
    assert verdict.outcome == "failed"
    assert verdict.detail.startswith("jetson: gpu_load_percent > 95 or ram_growth_mb > 500 or "
                                     "temp_max_c > 90 met its failure condition: "
                                     "gpu_load_percent 99, ram_growth_mb 0, temp_max_c 50")
    clock = FakeClock(0.0)
    verdict = run(analysis, FakeApp("a1", clock, gpu=None), FakeApp("b1", clock))
    assert verdict.outcome == "successful", verdict.detail      # judged on the others
    assert verdict.detail.endswith("; baseline: b1; not measured: jetson (tegrastats is not "
                                   "installed on the host)")
    only_device = Analysis((analysis.metrics[2],))
    clock = FakeClock(0.0)
    verdict = run(only_device, FakeApp("a1", clock, gpu=None))
    assert verdict.outcome == "inconclusive"
    assert verdict.detail.startswith("no metric could be measured")
