"""Fleet status in Prometheus's text exposition format (written by prometheus_client),
for node-exporter's textfile collector or a scrape: hosts by JetPack and module, each
app's health, restarts and check latency, the device's RAM, GPU load and temperature,
and the latest rollout's hosts by phase and analysis verdicts."""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from fleetctl.rollout.journal import RolloutRecord
from fleetctl.telemetry.status import HostStatus


def exposition(statuses: list[HostStatus], rollout: RolloutRecord | None = None,
               verdicts: dict[tuple[str, str], str] | None = None) -> str:
    """The metrics as text; ``verdicts`` maps (host, package) to the latest rollout's
    analysis outcome."""
    registry = CollectorRegistry()

    def gauge(name: str, text: str, labels: tuple[str, ...]) -> Gauge:
        return Gauge(name, text, labels, registry=registry)

    up = gauge("fleetctl_host_up", "1 when the status probe reached the host", ("host",))
    hosts = gauge("fleetctl_hosts", "Hosts by JetPack and module", ("jetpack", "module"))
    healthy = gauge("fleetctl_app_healthy", "1 when the app runs and its health check "
                    "answers 2xx", ("host", "package", "version"))
    restarts = gauge("fleetctl_app_restarts", "Restarts of the app's container",
                     ("host", "package"))
    uptime = gauge("fleetctl_app_uptime_seconds", "Seconds since the app's container "
                   "started", ("host", "package"))
    check = gauge("fleetctl_app_check_seconds", "How long the health check took",
                  ("host", "package"))
    ram = gauge("fleetctl_device_ram_used_bytes", "RAM in use (shared by CPU and GPU)",
                ("host",))
    ram_total = gauge("fleetctl_device_ram_total_bytes", "RAM of the module", ("host",))
    gpu = gauge("fleetctl_device_gpu_load_ratio", "GR3D load, 0 to 1", ("host",))
    temp = gauge("fleetctl_device_temperature_celsius", "The hottest thermal zone",
                 ("host",))
    by_class: Counter[tuple[str, str]] = Counter()
    for status in statuses:
        up.labels(status.host).set(1 if status.reachable else 0)
        by_class[(status.jetpack or "unknown", status.module or "unknown")] += 1
        for app in status.apps:
            c = app.container
            healthy.labels(status.host, c.package, c.version).set(1 if app.healthy else 0)
            restarts.labels(status.host, c.package).set(c.restarts)
            if c.uptime is not None:
                uptime.labels(status.host, c.package).set(c.uptime)
            if app.check_ms is not None:
                check.labels(status.host, c.package).set(app.check_ms / 1000)
        stats = status.tegrastats
        if stats is not None:
            ram.labels(status.host).set(stats.ram_used_mb * 2**20)
            ram_total.labels(status.host).set(stats.ram_total_mb * 2**20)
            if stats.gpu_load_percent is not None:
                gpu.labels(status.host).set(stats.gpu_load_percent / 100)
            if stats.temp_max_c is not None:
                temp.labels(status.host).set(stats.temp_max_c)
    for (jetpack, module), count in by_class.items():
        hosts.labels(jetpack, module).set(count)
    if rollout is not None:
        phases = gauge("fleetctl_rollout_hosts", "Hosts of the latest rollout by phase",
                       ("rollout", "phase"))
        for phase, count in Counter(s.phase for s in rollout.hosts).items():
            phases.labels(rollout.id, phase).set(count)
        analysis = gauge("fleetctl_analysis_outcome", "The latest rollout's canary analysis "
                         "per host: 1 for its outcome", ("host", "package", "outcome"))
        for (host, package), outcome in (verdicts or {}).items():
            analysis.labels(host, package, outcome).set(1)
    return generate_latest(registry).decode()
