"""Canary analysis on the lab: releases that are healthy but slow, erroring or leaking
stop at the canary with the metric and its numbers; a good release passes and
completes; with no baseline the analysis is inconclusive and the rollout waits for
``rollout promote``.

jetson-a1 (the canary) and jetson-b1 (its baseline) are both Orin Nano on R36.4.3.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import Lab, fleetctl
from .test_deploy import running, serving

PAIR = "jetson-a1:jetson-b1"
ANALYSIS = """\
analysis:
  ollama:
    metrics:
      - name: generate
        requests:
          method: POST
          url: "http://{{ check_address }}:11434/api/generate"
          body: {model: "llama3.2:1b", prompt: "Say hi", stream: false}
          rate: 5
        interval: 2s
        count: 2
        success: p50_latency_ms <= 1.5 * baseline.p50_latency_ms and error_ratio < 0.05
      - name: memory
        container: {}
        interval: 2s
        count: 2
        failure: memory_growth_mb > 16 or restarts > 0
"""


#: probe requests that make traffic, for analyses that judge other sources
TRAFFIC = """\
analysis:
  ollama:
    metrics:
      - name: traffic
        requests: {{method: POST, url: "http://{{{{ check_address }}}}:11434/api/generate",
                   rate: 5}}
        interval: 2s
        count: 2
        success: {success}
"""


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


def on(lab: Lab, state: Path, version: str) -> dict[str, str]:
    """Both hosts on ``version`` (no analysis); their digests."""
    fleetctl("deploy", f"ollama:{version}", "-i", lab.status["inventory"], "--state-dir",
             str(state), "--limit", PAIR, "--steps", "100%", "--allow-downgrade", "--yes")
    return {h: running(lab, h)["digest"] for h in PAIR.split(":")}


def run(lab: Lab, state: Path, tmp_path: Path, version: str, analysis: str = ANALYSIS):
    book = tmp_path / "analysed.yml"
    book.write_text(f"name: analysed ollama\ntargets: {{pattern: '{PAIR}'}}\n"
                    f"packages: [{{name: ollama, version: '{version}'}}]\n"
                    f"strategy: {{steps: [1, 100%], canary: [jetson-a1]}}\n" + analysis)
    events = tmp_path / "events.jsonl"
    result = fleetctl("run", str(book), "-i", lab.status["inventory"], "--state-dir",
                      str(state), "--yes", "--json", "--events", str(events), check=False)
    return result, [json.loads(line) for line in events.read_text().splitlines()]


@pytest.mark.parametrize(("version", "failed"), [
    ("0.7.3", "generate: p50_latency_ms <= 1.5 * baseline.p50_latency_ms and error_ratio "
              "< 0.05 failed: p50_latency_ms 3"),
    ("0.7.4", "generate: p50_latency_ms <= 1.5 * baseline.p50_latency_ms and error_ratio "
              "< 0.05 failed: p50_latency_ms 1"),
    ("0.7.5", "memory: memory_growth_mb > 16 or restarts > 0 met its failure condition: "
              "memory_growth_mb "),
])
def test_a_healthy_but_bad_release_stops_at_the_canary(lab: Lab, state: Path, tmp_path: Path,
                                                        version: str, failed: str) -> None:
    before = on(lab, state, "0.7.0")
    result, _ = run(lab, state, tmp_path, version)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    hosts = {h["host"]: h for h in report["hosts"]}
    assert report["status"] == "failed"
    error = hosts["jetson-a1"]["error"]
    assert hosts["jetson-a1"]["phase"] == "reverted"
    assert error.startswith(f"analysis failed: {failed}"), error
    assert error.endswith("; baseline: jetson-b1")
    if version == "0.7.4":      # one generate in ten answers 500
        assert "error_ratio 0.1 (10 samples)" in error
    assert hosts["jetson-b1"]["phase"] == "cancelled"
    for host in ("jetson-a1", "jetson-b1"):     # the canary back and answering, b1 untouched
        assert running(lab, host)["digest"] == before[host]
        assert serving(lab, host) == "0.7.0"


def test_a_good_release_passes_its_analysis(lab: Lab, state: Path, tmp_path: Path) -> None:
    on(lab, state, "0.6.8")
    result, events = run(lab, state, tmp_path, "0.7.0")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"
    committed = {e["host"]: e["detail"] for e in events if e["phase"] == "committed"}
    assert "; analysis: 2 metrics passed (generate: p50_latency_ms " in committed["jetson-a1"]
    assert "baseline: jetson-b1" in committed["jetson-a1"]
    assert "analysis" not in committed["jetson-b1"]     # the second step: health gate only
    assert [e["detail"] for e in events if e["phase"] == "analysing"] == \
        ["healthy: http://127.0.1.1:11434/api/version answered 3 times in a row; testinfra: "
         "4 passed; measuring for 4s"]
    for host in ("jetson-a1", "jetson-b1"):
        assert serving(lab, host) == "0.7.0"
    status = fleetctl("status", "-i", lab.status["inventory"], "--state-dir", str(state),
                      "--limit", PAIR, "--format", "json")
    a1, b1 = json.loads(status.stdout)
    # the canary's latest analysis, from the journal: its probe requests' numbers
    assert a1["apps"][0]["analysis"]["detail"].startswith(
        "successful: 2 metrics passed (generate: p50_latency_ms ")
    assert "error_ratio 0 (10 samples)" in a1["apps"][0]["analysis"]["detail"]
    assert b1["apps"][0]["analysis"] is None            # never analysed (the second step)


def test_no_baseline_is_inconclusive_and_waits_for_promote(lab: Lab, state: Path,
                                                            tmp_path: Path) -> None:
    on(lab, state, "0.6.8")
    lab.ssh("jetson-a1", "docker rm -f $(docker ps -aq --filter label=io.fleetctl.package=ollama)"
                         " >/dev/null; rm -rf /opt/fleetctl/ollama")    # a first install
    result, _ = run(lab, state, tmp_path, "0.7.0")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    hosts = {h["host"]: h for h in report["hosts"]}
    assert report["status"] == "paused"
    assert report["message"].startswith("step 1: analysis inconclusive: generate: ")
    assert "no baseline (no host of the same class on the previous release)" in \
        report["message"]
    assert f"'fleetctl rollout promote {report['id']}'" in report["message"]
    assert hosts["jetson-a1"]["phase"] == "inconclusive"
    assert serving(lab, "jetson-a1") == "0.7.0"             # runs, not yet committed
    assert serving(lab, "jetson-b1") == "0.6.8"
    promoted = fleetctl("rollout", "promote", report["id"], "-i", lab.status["inventory"],
                        "--state-dir", str(state), "--json", check=False)
    assert promoted.returncode == 0, promoted.stderr
    hosts = {h["host"]: h for h in json.loads(promoted.stdout)["hosts"]}
    assert {h: s["phase"] for h, s in hosts.items()} == {"jetson-a1": "committed",
                                                          "jetson-b1": "committed"}
    assert hosts["jetson-a1"]["error"] is None
    for host in ("jetson-a1", "jetson-b1"):
        assert serving(lab, host) == "0.7.0"


def test_the_app_s_prometheus_metrics_judge_the_canary(lab: Lab, state: Path,
                                                        tmp_path: Path) -> None:
    """The erroring release, judged by the app's own request counters (the probe
    requests only make traffic)."""
    on(lab, state, "0.7.0")
    analysis = TRAFFIC.format(success="requests >= 5") + """\
      - name: server
        prometheus: {url: "http://{{ check_address }}:11434/metrics"}
        interval: 2s
        count: 2
        failure: >-
          increase("ollama_requests_total", status="5..") >
          0.05 * increase("ollama_requests_total")
"""
    result, _ = run(lab, state, tmp_path, "0.7.4", analysis)
    assert result.returncode == 1, result.stderr
    hosts = {h["host"]: h for h in json.loads(result.stdout)["hosts"]}
    assert hosts["jetson-a1"]["error"].startswith(
        "analysis failed: server: increase(\"ollama_requests_total\", status=\"5..\") > 0.05 * "
        "increase(\"ollama_requests_total\") met its failure condition: "
        "increase(\"ollama_requests_total\", status=\"5..\") 1, "
        "increase(\"ollama_requests_total\") "), hosts["jetson-a1"]["error"]
    assert serving(lab, "jetson-a1") == "0.7.0"


DEVICE = TRAFFIC.format(success="error_ratio < 0.05") + """\
      - name: jetson
        device: {}
        interval: 2s
        count: 2
        failure: gpu_load_percent > 95 or ram_ratio > 0.95
"""


def test_a_saturated_gpu_fails_the_canary_on_tegrastats(lab: Lab, state: Path,
                                                        tmp_path: Path) -> None:
    on(lab, state, "0.6.8")
    fleetctl("lab", "fault", "jetson-a1", "gpu-saturated")
    try:
        result, _ = run(lab, state, tmp_path, "0.7.0", DEVICE)
    finally:
        fleetctl("lab", "heal", "jetson-a1")
    assert result.returncode == 1, result.stderr
    hosts = {h["host"]: h for h in json.loads(result.stdout)["hosts"]}
    assert hosts["jetson-a1"]["error"].startswith(
        "analysis failed: jetson: gpu_load_percent > 95 or ram_ratio > 0.95 met its failure "
        "condition: gpu_load_percent 99, ram_ratio 0."), hosts["jetson-a1"]["error"]
    assert serving(lab, "jetson-a1") == "0.6.8"


def test_a_host_without_tegrastats_is_judged_on_the_other_sources(lab: Lab, state: Path,
                                                                   tmp_path: Path) -> None:
    on(lab, state, "0.6.8")
    lab.ssh("jetson-a1", "mv /usr/local/bin/tegrastats /usr/local/bin/tegrastats.away")
    try:
        result, events = run(lab, state, tmp_path, "0.7.0", DEVICE)
    finally:
        lab.ssh("jetson-a1", "mv /usr/local/bin/tegrastats.away /usr/local/bin/tegrastats")
    assert result.returncode == 0, result.stderr
    committed = {e["host"]: e["detail"] for e in events if e["phase"] == "committed"}
    assert "analysis: 1 metric passed (traffic: error_ratio 0 (10 samples)); baseline: " \
           "jetson-b1; not measured: jetson (tegrastats is not installed on the host)" \
           in committed["jetson-a1"], committed["jetson-a1"]
