"""Rollouts as OpenTelemetry traces, exported by the SDK over OTLP/HTTP to a real
receiver on loopback that decodes the protobuf it is sent (no mocked exporter)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from fleetctl.telemetry.tracing import tracer_from_environment

from .test_engine import NEW, Fleet, analysed


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: every span it was sent, decoded."""

    def __init__(self) -> None:
        self.spans: list = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.paths.append(self.path)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        receiver.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def receiver(monkeypatch):
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    yield server
    server.shutdown()


def attributes(span) -> dict:
    return {a.key: (a.value.string_value or a.value.int_value or a.value.bool_value)
            for a in span.attributes}


def test_a_rollout_is_one_trace_of_steps_hosts_and_phases(tmp_path: Path, receiver) -> None:
    fleet = analysed(tmp_path, 3)
    for device in fleet.devices.values():
        device.latency[NEW.rpartition("@")[2]] = 0.3         # the canary fails its analysis
    tracer = tracer_from_environment(fleet.ctx.journal.get)
    assert tracer is not None
    fleet.ctx.journal.listeners.append(tracer)
    record = fleet.deploy(steps=["1", "100%"])
    tracer.close()
    assert record.status == "failed" and receiver.paths[0] == "/v1/traces"
    spans = {s.name: s for s in receiver.spans}
    root = spans["rollout deploy app:2.0"]
    assert len({s.trace_id for s in receiver.spans}) == 1
    assert attributes(root)["fleetctl.rollout.id"] == record.id
    assert root.status.code == 2 and "failed on h1" in root.status.message    # ERROR
    step = spans["step 1"]
    host = spans["h1 app"]
    assert step.parent_span_id == root.span_id and host.parent_span_id == step.span_id
    assert attributes(host).items() >= {"fleetctl.host": "h1", "fleetctl.to.version": "2.0",
                                        "fleetctl.to.digest": NEW.rpartition("@")[2],
                                        "fleetctl.phase": "reverted"}.items()
    assert host.status.code == 2
    phases = [s.name for s in sorted(receiver.spans, key=lambda s: s.start_time_unix_nano)
              if s.parent_span_id == host.span_id]
    assert phases == ["locked", "staged", "activated", "reverting"]
    [analysed_event] = [e for e in host.events if e.name == "analysed"]
    detail = attributes(analysed_event)["detail"]
    assert detail.startswith("failed: latency: p95_latency_ms <= 1.5 * baseline.p95_latency_ms "
                             "failed: p95_latency_ms 300, baseline.p95_latency_ms 50")
    cancelled = spans["h2 app"]          # never started: cancelled, under step 2
    assert attributes(cancelled)["fleetctl.phase"] == "cancelled"
    assert cancelled.parent_span_id == spans["step 2"].span_id
    assert not [s for s in receiver.spans if s.parent_span_id == cancelled.span_id]


def test_no_endpoint_no_tracer(monkeypatch, tmp_path: Path) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert tracer_from_environment(Fleet(tmp_path, 1).ctx.journal.get) is None
