"""Each fault kind, observed from a client the way a real failure would be."""

import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..conftest import Lab, fleetctl


@contextmanager
def fault(host: str, kind: str, *options: str) -> Iterator[None]:
    fleetctl("lab", "fault", host, kind, *options)
    try:
        yield
    finally:
        fleetctl("lab", "heal", host)


def timed_ssh(lab: Lab, host: str, command: str = "true", timeout: int = 2):
    start = time.monotonic()
    result = lab.ssh(host, command, check=False, timeout=timeout)
    return result, time.monotonic() - start


def test_sshd_down_is_refused_and_heals(lab: Lab) -> None:
    with fault("jetson-a2", "sshd-down"):
        result, _ = timed_ssh(lab, "jetson-a2")
        assert result.returncode == 255 and "Connection refused" in result.stderr
    assert lab.ssh("jetson-a2", "hostname").stdout.strip() == "jetson-a2"


def test_hang_times_out_in_the_banner_exchange(lab: Lab) -> None:
    with fault("jetson-a3", "hang"):
        result, took = timed_ssh(lab, "jetson-a3", timeout=2)
        assert result.returncode == 255
        assert "banner exchange" in result.stderr
        assert took >= 1.9
    assert lab.ssh("jetson-a3", "hostname").stdout.strip() == "jetson-a3"


def test_unreachable_times_out_connecting(lab: Lab) -> None:
    with fault("jetson-b3", "unreachable"):
        result, took = timed_ssh(lab, "jetson-b3", timeout=2)
        assert result.returncode == 255 and "Connection timed out" in result.stderr
        assert took >= 1.9
    assert lab.ssh("jetson-b3", "hostname").stdout.strip() == "jetson-b3"


def test_dockerd_down_cannot_connect_and_heals(lab: Lab) -> None:
    with fault("jetson-b1", "dockerd-down"):
        result = lab.ssh("jetson-b1", "docker info", check=False)
        assert result.returncode != 0
        assert "Cannot connect to the Docker daemon" in result.stderr
    assert lab.ssh("jetson-b1", "docker info --format '{{.Name}}'").stdout.strip() == "jetson-b1"


def test_disk_full_gives_no_space_left(lab: Lab) -> None:
    with fault("jetson-a1", "disk-full"):
        result = lab.ssh("jetson-a1", "dd if=/dev/zero of=/var/lib/docker/x bs=64k count=4",
                         check=False)
        assert result.returncode != 0 and "No space left on device" in result.stderr
        assert lab.ssh("jetson-a1", "echo hi > /opt/f", check=False).returncode != 0
    lab.ssh("jetson-a1", "dd if=/dev/zero of=/var/lib/docker/x bs=64k count=4 && "
            "rm /var/lib/docker/x /opt/f -f")


def test_slow_link_delays_and_caps_bandwidth(lab: Lab) -> None:
    _, fast = timed_ssh(lab, "jetson-b2", "head -c 50000 /dev/zero")
    with fault("jetson-b2", "slow-link", "--delay-ms", "150", "--kbps", "128"):
        result, slow = timed_ssh(lab, "jetson-b2", "head -c 50000 /dev/zero", timeout=10)
        assert result.returncode == 0 and len(result.stdout) == 50000
        assert slow >= 50000 * 8 / 128_000  # 3.1 s at 128 kbit/s
        status = json.loads(fleetctl("lab", "status", "--json").stdout)
        link = next(h for h in status["hosts"] if h["name"] == "jetson-b2")["faults"]
        stats_file = Path(link["slow-link"]["stats"])
        deadline = time.monotonic() + 5  # counts are saved when the connection has closed
        while json.loads(stats_file.read_text())["down"] < 50000:
            assert time.monotonic() < deadline, stats_file.read_text()
            time.sleep(0.1)
    _, healed = timed_ssh(lab, "jetson-b2", "head -c 50000 /dev/zero")
    assert healed < slow / 2 and fast < slow / 2


def test_bad_releases_are_unhealthy_or_crash_loop(lab: Lab) -> None:
    addr = lab.address("jetson-b1")
    compose = f"""services:
  broken:
    image: 127.0.0.1:5000/dustynv/ollama:0.7.1-r36.4.0-cu126-22.04-broken
    network_mode: host
    environment: {{OLLAMA_HOST: "{addr}:11435"}}
    healthcheck: {{test: [CMD, wget, -q, -O-, "http://{addr}:11435/api/tags"],
                  interval: 1s, timeout: 1s, retries: 2}}
  crash:
    image: 127.0.0.1:5000/dustynv/ollama:0.7.2-r36.4.0-cu126-22.04-crash
    network_mode: host
    restart: unless-stopped
"""
    lab.ssh("jetson-b1", "mkdir -p /opt/bad && cat > /opt/bad/docker-compose.yml",
            input=compose.encode())
    try:
        lab.ssh("jetson-b1", "cd /opt/bad && docker-compose -p bad up -d", timeout=10)
        deadline = time.monotonic() + 30
        health = restarts = None
        while time.monotonic() < deadline:
            health = lab.ssh("jetson-b1", "docker inspect -f '{{.State.Health.Status}}' "
                             "bad_broken_1").stdout.strip()
            restarts = int(lab.ssh("jetson-b1", "docker inspect -f '{{.RestartCount}}' "
                                   "bad_crash_1").stdout)
            if health == "unhealthy" and restarts >= 2:
                break
            time.sleep(0.5)
        assert health == "unhealthy"
        assert restarts >= 2
        exit_code = lab.ssh("jetson-b1", "docker inspect -f '{{.State.ExitCode}}' bad_crash_1")
        assert exit_code.stdout.strip() in ("3", "0")  # 0 while it is being restarted
        try:
            urllib.request.urlopen(f"http://{addr}:11435/api/tags", timeout=1)
            raise AssertionError("the broken release should not answer")
        except OSError:
            pass
    finally:
        lab.ssh("jetson-b1", "cd /opt/bad && docker-compose -p bad down -t 1; rm -rf /opt/bad",
                check=False, timeout=30)


def test_faults_on_unknown_hosts_are_one_line_errors(lab: Lab) -> None:
    result = fleetctl("lab", "fault", "jetson-zz", "hang", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("the lab has: " + ", ".join(sorted(lab.hosts)))
    assert "jetson-a1, jetson-a2" in result.stderr
    assert "Traceback" not in result.stderr
