"""The ``query`` source against a real HTTP server on loopback that answers as
Prometheus's API does (and, as an attacker's server, as it should not)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from fleetctl.analysis.promql import ANSWER_LIMIT, QueryError, ask, render_query
from fleetctl.analysis.sampling import HostSubject, analyse
from fleetctl.analysis.spec import parse_analysis
from fleetctl.yamlfile import load_yaml

from ..fakedevice import FakeClock


class Prometheus(ThreadingHTTPServer):
    """Answers /api/v1/query with ``answer(query)`` (bytes), recording the queries."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.answer = lambda query: b""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)["query"][0]
                server.queries.append(query)
                body = server.answer(query) if parts.path == "/api/v1/query" else b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


@pytest.fixture
def prometheus():
    server = Prometheus()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def vector(*values: str) -> bytes:
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"instance": f"i{n}"}, "value": [1795937645.1, v]}
        for n, v in enumerate(values)]}}).encode()


def test_host_names_enter_a_query_only_as_promql_strings() -> None:
    assert render_query('up{instance=$host}', "jetson-a1") == 'up{instance="jetson-a1"}'
    assert render_query('up{instance=$host}', 'a"}) or vector(1') == \
        'up{instance="a\\"}) or vector(1"}'


def test_a_vector_is_summed_and_a_scalar_read(prometheus: Prometheus) -> None:
    prometheus.answer = lambda q: vector("0.25", "0.5", "NaN")
    assert ask(prometheus.url, "q") == (0.75, 3)
    prometheus.answer = lambda q: vector()
    assert ask(prometheus.url, "q") == (None, 0)
    prometheus.answer = lambda q: json.dumps({"status": "success", "data": {
        "resultType": "scalar", "result": [1795937645.1, "42"]}}).encode()
    assert ask(prometheus.url, "q") == (42.0, 1)


@pytest.mark.parametrize(("answer", "why"), [
    (b"x" * (ANSWER_LIMIT + 1), "larger than"),
    (b"<html>502 Bad Gateway</html>", "not JSON"),
    (b'{"status": "error", "error": "parse error at char 3"}', "query refused: parse error"),
    (json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode(),
     "not an instant vector or scalar"),
    (json.dumps({"status": "success", "data": {"resultType": "vector",
                                               "result": [{"value": [1, "many"]}]}}).encode(),
     "not an instant vector or scalar"),
])
def test_a_server_s_bad_answers_are_refused(prometheus: Prometheus, answer: bytes,
                                            why: str) -> None:
    prometheus.answer = lambda q: answer
    with pytest.raises(QueryError, match=why):
        ask(prometheus.url, "q")


def test_no_server_is_one_line() -> None:
    with pytest.raises(QueryError, match="no answer"):
        ask("http://127.0.0.1:1", "q", timeout=2)


def test_the_canary_and_its_baseline_are_asked_the_same_query(prometheus: Prometheus,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "package.yml"
    path.write_text(f"""analysis:
  metrics:
    - name: errors
      query:
        url: {prometheus.url}
        query: 'sum(rate(http_requests_total{{instance=$host,code=~"5.."}}[1m]))'
      interval: 10s
      count: 2
      success: value <= 2 * baseline.value
""")
    analysis = parse_analysis(load_yaml(path)["analysis"], path)
    rates = {'"a1"': "0.9", '"b1"': "0.1"}
    prometheus.answer = lambda q: vector(next(v for k, v in rates.items() if k in q))
    clock = FakeClock(0.0)
    canary, baseline = (HostSubject(n, None, "app", "r1", {}) for n in ("a1", "b1"))
    verdict = analyse(analysis, canary, [baseline], sleep=clock.sleep, clock=clock)
    assert verdict.outcome == "failed"
    assert verdict.detail == ("errors: value <= 2 * baseline.value failed: value 0.9, "
                              "baseline.value 0.1; baseline: b1")
    assert sorted(prometheus.queries) == [       # asked side by side, in either order
        'sum(rate(http_requests_total{instance="a1",code=~"5.."}[1m]))',
        'sum(rate(http_requests_total{instance="b1",code=~"5.."}[1m]))']
