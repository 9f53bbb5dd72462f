"""``fleetctl status`` without a device: the status probe's output parsed (a capture from a
lab Orin, then damaged), and the Prometheus exposition read back by prometheus_client's
own parser."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetctl.facts.appstatus import parse_status
from fleetctl.facts.hostfacts import ProbeOutputError
from fleetctl.rollout.journal import HostState, RolloutRecord
from fleetctl.telemetry.prometheus import exposition
from fleetctl.telemetry.status import AppStatus, HostStatus

DIGEST = "sha256:ef219aff437a7bf1854c355ebc3236b903842018cfc86c9676b6eecb8057bb44"
CAPTURE = f"""
@@fleetctl:begin
1

@@fleetctl:now
1795937645

@@fleetctl:meminfo
MemTotal:        7802880 kB
MemAvailable:    7636859 kB

@@fleetctl:containers
/ollama_ollama_1|ollama|0.7.0|20261129T073350-a7fb|127.0.0.1:5000/dustynv/ollama@{DIGEST}\
|running|healthy|0|2026-11-29T07:33:51.685346548Z
/open-webui_open-webui_1|open-webui|0.6.9|20261129T073350-a7fb|ghcr.io/x@sha256:nothex\
|restarting|none|3|2026-11-29T07:33:58Z
/half|a|b
/odd|p|v|r|img|running|none|many|2026

@@fleetctl:tegrastats
11-29-2026 07:34:06 RAM 1200/7620MB (lfb 3x4MB) SWAP 0/3810MB (cached 0MB) CPU \
[0%@729,0%@729,0%@729,0%@729,off,off] EMC_FREQ 0% GR3D_FREQ 3% cpu@41.5C soc2@41.4C \
soc0@41.2C gpu@41.9C tj@41.5C soc1@41.1C VDD_IN 4080mW/4080mW VDD_CPU_GPU_CV 510mW/510mW \
VDD_SOC 1360mW/1360mW

@@fleetctl:end
1
"""


def test_the_status_probe_s_answer() -> None:
    status = parse_status(CAPTURE)
    assert (status.mem_total_mb, status.mem_available_mb) == (7620, 7457)
    ollama, webui = status.containers        # the two malformed lines are left out
    assert (ollama.package, ollama.version, ollama.digest) == ("ollama", "0.7.0", DIGEST)
    assert (ollama.state, ollama.health, ollama.restarts) == ("running", "healthy", 0)
    assert ollama.uptime == pytest.approx(1795937645 - 1795937631)
    assert (webui.digest, webui.restarts, webui.uptime) == (None, 3, None)
    assert status.tegrastats is not None and status.tegrastats.gpu_load_percent == 3


def test_an_answer_that_is_not_the_status_probe_s() -> None:
    with pytest.raises(ProbeOutputError):
        parse_status("Welcome to Ubuntu 22.04\n")
    bare = parse_status("@@fleetctl:begin\n1\n@@fleetctl:tegrastats\nsegfault\n"
                        "@@fleetctl:end\n1\n")
    assert bare.containers == [] and bare.tegrastats is None and bare.mem_total_mb is None


def test_the_exposition_reads_back_with_prometheus_client() -> None:
    device = parse_status(CAPTURE)
    statuses = [
        HostStatus("jetson-a1", True, apps=[AppStatus(device.containers[0], 200, 4.2)],
                   tegrastats=device.tegrastats, jetpack="6.2", module="Orin Nano"),
        HostStatus("jetson-b2", False, "refused: nothing listens", jetpack="6.2",
                   module="Orin Nano"),
        HostStatus("jetson-\"x\n", True, apps=[AppStatus(device.containers[1])]),
    ]
    rollout = RolloutRecord("r1", "deploy", "ollama", ["ollama"], "me", "ctl", "incomplete",
                            [["jetson-a1", "jetson-b2"]], 1, {}, {}, None, 0.0, 0.0,
                            [HostState("jetson-a1", "ollama", 0, "committed"),
                             HostState("jetson-b2", "ollama", 0, "deferred")])
    text = exposition(statuses, rollout, {("jetson-a1", "ollama"): "successful"})
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("fleetctl_host_up", (("host", "jetson-b2"),))] == 0
    assert samples[("fleetctl_hosts", (("jetpack", "6.2"), ("module", "Orin Nano")))] == 2
    assert samples[("fleetctl_app_healthy", (("host", "jetson-a1"), ("package", "ollama"),
                                             ("version", "0.7.0")))] == 1
    assert samples[("fleetctl_app_healthy", (("host", "jetson-\"x\n"),
                                             ("package", "open-webui"),
                                             ("version", "0.6.9")))] == 0
    assert samples[("fleetctl_device_ram_used_bytes", (("host", "jetson-a1"),))] == 1200 * 2**20
    assert samples[("fleetctl_device_gpu_load_ratio", (("host", "jetson-a1"),))] == 0.03
    assert samples[("fleetctl_rollout_hosts", (("phase", "deferred"), ("rollout", "r1")))] == 1
    assert samples[("fleetctl_analysis_outcome", (("host", "jetson-a1"), ("outcome",
                                                  "successful"), ("package", "ollama")))] == 1
