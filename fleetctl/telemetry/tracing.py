"""Rollouts as OpenTelemetry traces: a journal listener turns a rollout's events into
spans (rollout -> step -> host and package -> phase), with host, package, version and
digest attributes and the canary analysis' verdicts as span events, and the
OpenTelemetry SDK exports them over OTLP/HTTP. Only when ``OTEL_EXPORTER_OTLP_ENDPOINT``
(or ``..._TRACES_ENDPOINT``) is set; the SDK is not even imported otherwise.

Event times become span times, so a trace shows the rollout as the journal saw it. A
rollout resumed by another process starts a new trace for the part it runs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from fleetctl.rollout.journal import FINAL_HOST_PHASES, RolloutRecord

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
#: a rollout's own events that end it (in this process)
ENDINGS = ("completed", "failed", "paused", "incomplete", "rolled-back")
#: host phases whose span ends in error
BAD = ("failed", "reverted", "revert-failed", "deferred", "inconclusive")
#: journal notes that become events on the host's span
NOTES = ("analysing", "analysed", "audit-not-written")


def tracer_from_environment(load: Callable[[str], RolloutRecord]) -> RolloutTracer | None:
    """A tracer exporting to the OTLP endpoint the environment names, or None."""
    if not any(os.environ.get(name) for name in ENDPOINT_VARIABLES):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "fleetctl"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return RolloutTracer(load, provider)


class RolloutTracer:
    """A journal listener that builds each rollout's trace from its events."""

    def __init__(self, load: Callable[[str], RolloutRecord], provider: Any) -> None:
        self.load = load
        self.provider = provider
        self.tracer = provider.get_tracer("fleetctl")
        self.lock = threading.Lock()
        self.rollouts: dict[str, _Trace] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        with self.lock:
            trace = self.rollouts.get(event["rollout"])
            if trace is None:
                trace = self.rollouts[event["rollout"]] = _Trace(
                    self.tracer, self.load(event["rollout"]), event)
            trace.record(event)
            if event["host"] is None and event["phase"] in ENDINGS:
                trace.end(event)            # exported in the background, or at close()
                del self.rollouts[event["rollout"]]

    def close(self) -> None:
        """Export what is left and stop (the process is about to end); a collector that
        does not answer holds this up to the exporter's timeout
        (``OTEL_EXPORTER_OTLP_TIMEOUT``, 10 s by default)."""
        self.provider.shutdown()


def _nanoseconds(event: dict[str, Any]) -> int:
    return int(event["at"] * 1e9)


class _Trace:
    """One rollout's open spans."""

    def __init__(self, tracer: Any, record: RolloutRecord, first: dict[str, Any]) -> None:
        from opentelemetry import trace

        self.trace = trace
        self.tracer = tracer
        self.rollout = record
        self.step_of = {h: i for i, hosts in enumerate(record.steps) for h in hosts}
        self.root = tracer.start_span(
            f"rollout {record.kind} {record.request}", start_time=_nanoseconds(first),
            attributes={"fleetctl.rollout.id": record.id, "fleetctl.rollout.kind": record.kind,
                        "fleetctl.rollout.request": record.request,
                        "fleetctl.rollout.packages": record.packages,
                        "fleetctl.rollout.resumed": first["phase"] != "created"})
        self.steps: dict[int, Any] = {}
        self.hosts: dict[tuple[str, str], Any] = {}
        self.phases: dict[tuple[str, str], Any] = {}

    def _child(self, parent: Any, name: str, event: dict[str, Any],
               attributes: dict[str, Any] | None = None) -> Any:
        return self.tracer.start_span(name, context=self.trace.set_span_in_context(parent),
                                      start_time=_nanoseconds(event), attributes=attributes)

    def record(self, event: dict[str, Any]) -> None:
        if event["host"] is None:
            self.root.add_event(event["phase"], {"detail": event["detail"]},
                                timestamp=_nanoseconds(event))
            return
        key = (event["host"], event["package"])
        phase = event["phase"]
        host_span = self.hosts.get(key) or self._start_host(key, event)
        if phase in NOTES:
            host_span.add_event(phase, {"detail": event["detail"]},
                                timestamp=_nanoseconds(event))
            return
        previous = self.phases.pop(key, None)
        if previous is not None:
            previous.end(end_time=_nanoseconds(event))
        if phase in FINAL_HOST_PHASES or phase in ("deferred", "inconclusive"):
            host_span.set_attribute("fleetctl.phase", phase)
            if event["detail"]:
                host_span.set_attribute("fleetctl.detail", event["detail"])
            if phase in BAD:
                host_span.set_status(self.trace.Status(self.trace.StatusCode.ERROR,
                                                       event["detail"] or phase))
            host_span.end(end_time=_nanoseconds(event))
            del self.hosts[key]
        else:
            self.phases[key] = self._child(host_span, phase, event,
                                           {"fleetctl.detail": event["detail"]})

    def _start_host(self, key: tuple[str, str], event: dict[str, Any]) -> Any:
        index = self.step_of.get(key[0], -1)
        step = self.steps.get(index)
        if step is None:
            for earlier in [i for i in self.steps if i < index]:
                self.steps.pop(earlier).end(end_time=_nanoseconds(event))
            step = self.steps[index] = self._child(
                self.root, f"step {index + 1}", event,
                {"fleetctl.step": index + 1,
                 "fleetctl.step.hosts": self.rollout.steps[index] if index >= 0 else []})
        state = next((s for s in self.rollout.hosts if (s.host, s.package) == key), None)
        attributes = {"fleetctl.host": key[0], "fleetctl.package": key[1]}
        if state is not None:
            attributes.update({k: v for k, v in {
                "fleetctl.from.version": state.from_version,
                "fleetctl.from.digest": state.from_digest,
                "fleetctl.to.version": state.to_version,
                "fleetctl.to.digest": state.to_digest}.items() if v})
        span = self.hosts[key] = self._child(step, f"{key[0]} {key[1]}", event, attributes)
        return span

    def end(self, event: dict[str, Any]) -> None:
        """The rollout ended (in this process): close every open span."""
        at = _nanoseconds(event)
        for span in [*self.phases.values(), *self.hosts.values(), *self.steps.values()]:
            span.end(end_time=at)
        self.root.set_attribute("fleetctl.rollout.status", event["phase"])
        if event["phase"] == "failed":
            self.root.set_status(self.trace.Status(self.trace.StatusCode.ERROR,
                                                   event["detail"]))
        self.root.end(end_time=at)
