"""Real parts for attacker tests: signed bundles built from bytes in memory (then
tampered with in the ways an attacker would), and a malicious registry that is a
real HTTP server on loopback."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.server
import json
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetctl.delivery import bundle
from fleetctl.delivery.keys import generate_key, key_id, load_private_key
from fleetctl.digest import Digest

REPO = "127.0.0.1:5999/acme/app"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_blobs(layer: bytes = b"layer bytes " * 100) -> tuple[str, dict[str, bytes]]:
    """One small image: (its pinned reference, blobs by digest)."""
    config = json.dumps({"architecture": "arm64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": sha(config),
                                                          "size": len(config)},
                           "layers": [{"digest": sha(layer), "size": len(layer)}]}).encode()
    return f"{REPO}@{sha(manifest)}", {sha(manifest): manifest, sha(config): config,
                                      sha(layer): layer}


def keypair(folder: Path, name: str = "site") -> tuple[Ed25519PrivateKey, Path]:
    public, _ = generate_key(folder / f"{name}.key")
    return load_private_key(folder / f"{name}.key"), public


def make_bundle(out: Path, key: Ed25519PrivateKey, *, sequence: int = 100,
                channel: str = "default", expires_in: float = 86400.0,
                files: dict[str, bytes] | None = None) -> Path:
    """A real bundle, made by fleetctl's own ``bundle.create``, signed by ``key``."""
    reference, blobs = image_blobs()

    def fetch(_reference: str, digest: Digest, _manifest: bool) -> Iterator[bytes]:
        yield blobs[digest]

    contents = bundle.Contents(
        "test", files or {"playbook.yml": b"name: test\n", "plan.json": b"{}"}, [reference],
        channel, sequence,
        dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        + dt.timedelta(seconds=expires_in))
    bundle.create(out, contents, fetch, key)
    return out


def members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar]


def _entry(name: str, data: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info.tobuf(tarfile.PAX_FORMAT) + data + b"\0" * (-len(data) % 512)


def write_tar(path: Path, entries: list[tuple[str, bytes]]) -> Path:
    """A tar of exactly these members, in this order."""
    path.write_bytes(b"".join(_entry(n, d) for n, d in entries) + b"\0" * 1024)
    return path


def sign(key: Ed25519PrivateKey, manifest: bytes) -> bytes:
    return json.dumps({"algorithm": "ed25519", "key": key_id(key.public_key()),
                       "signature": base64.b64encode(key.sign(manifest)).decode()}).encode()


def huge_member_tar(path: Path, before: list[tuple[str, bytes]], name: str,
                    size: int) -> Path:
    """A tar whose member ``name`` claims ``size`` bytes of zeros; the file on disk is
    sparse (a few KB), as an attacker's download would be."""
    with path.open("wb") as f:
        f.write(b"".join(_entry(n, d) for n, d in before))
        info = tarfile.TarInfo(name)
        info.size = size
        f.write(info.tobuf(tarfile.PAX_FORMAT))
        f.truncate(f.tell() + size + (-size % 512) + 1024)
    return path


class MaliciousRegistry:
    """A registry on loopback that answers whatever ``routes`` say: path -> (status,
    headers, body). Records every request (path and Authorization header)."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append((self.path, self.headers.get("Authorization")))
                status, headers, body = outer.routes.get(self.path.split("?")[0],
                                                         (404, {}, b"{}"))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[MaliciousRegistry]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def strip_signature(source: Path, dest: Path) -> Path:
    """A copy of the bundle without its ``manifest.sig``: an unsigned bundle."""
    return write_tar(dest, [(m.name, data) for m, data in members(source)
                            if m.name != "manifest.sig"])
