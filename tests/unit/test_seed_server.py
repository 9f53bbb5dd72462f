"""The seed's blob server (``fleetctl/delivery/seed.py``, run here as the device runs it): its
token never on argv, compared whole, byte ranges answered as HTTP says, garbage
ranges no crash."""

from __future__ import annotations

import hashlib
import http.client
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SEED = Path(__file__).resolve().parents[2] / "fleetctl" / "delivery" / "seed.py"


@pytest.fixture
def seed(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, int, str, str]]:
    blob = b"0123456789" * 100
    name = hashlib.sha256(blob).hexdigest()
    (tmp_path / name).write_bytes(blob)
    token = secrets.token_hex(16)
    server = subprocess.Popen([sys.executable, str(SEED), "serve", str(tmp_path), "127.0.0.1"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    server.stdin.write(token + "\n")
    server.stdin.flush()
    port = int(server.stdout.readline().split()[1])
    yield server, port, token, name
    server.stdin.close()
    server.wait(timeout=10)


def get(port: int, path: str, headers: dict | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("GET", path)
    for key, value in (headers or {}).items():
        conn.putheader(key, value)
    conn.endheaders()
    return conn.getresponse()


def test_the_token_is_not_on_the_command_line(seed) -> None:
    server, _, token, _ = seed
    assert token.encode() not in Path(f"/proc/{server.pid}/cmdline").read_bytes()


def test_only_the_whole_token_opens_a_blob(seed) -> None:
    _, port, token, name = seed
    assert get(port, f"/{token}/{name}").status == 200
    assert get(port, f"/{token[:-1]}/{name}").status == 404
    assert get(port, f"/{token}x/{name}").status == 404
    assert get(port, f"/{token}/../{name}").status == 404


def test_ranges_get_content_range_and_garbage_gets_the_whole_blob(seed) -> None:
    _, port, token, name = seed
    part = get(port, f"/{token}/{name}", {"Range": "bytes=990-"})
    assert part.status == 206 and part.getheader("Content-Range") == "bytes 990-999/1000"
    assert part.read() == b"0123456789"
    beyond = get(port, f"/{token}/{name}", {"Range": "bytes=5000-"})
    assert beyond.status == 416 and beyond.getheader("Content-Range") == "bytes */1000"
    garbage = get(port, f"/{token}/{name}", {"Range": "bytes=\udcb2-".encode(
        "utf-8", "surrogateescape").decode("latin-1")})
    assert garbage.status == 200 and len(garbage.read()) == 1000
    assert get(port, f"/{token}/{name}").status == 200          # still serving
