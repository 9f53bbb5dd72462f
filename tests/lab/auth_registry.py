"""Registries that ask for credentials, for the registry client's auth tests.

Both serve the lab registry's storage read-only with the same docker-registry
binary: one with ``auth: htpasswd`` (basic auth), one with ``auth: token``,
whose tokens come from a small issuer here that signs ES256 JWTs with a key
the registry trusts through ``rootcertbundle``, the way Docker Hub's
auth.docker.io works.
"""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import bcrypt
import jwt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetctl.lab.registry import CONFIG, unpacked
from fleetctl.lab.system import LabPaths

SERVICE = "fleetlab-registry"
ISSUER = "fleetlab-token-issuer"


class TokenIssuer:
    """An HTTP token endpoint: pull access for anyone, or only for ``users``."""

    def __init__(self, workdir: Path, users: dict[str, str] | None = None) -> None:
        self.users = users
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .sign(self.key, hashes.SHA256()))
        self.cert_file = workdir / "token-issuer.pem"
        self.cert_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.issued = 0
        self.refused = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                if not issuer.allowed(self.headers.get("Authorization", "")):
                    issuer.refused += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                issuer.issued += 1
                body = json.dumps({"token": issuer.token(query.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_port}/token"

    def allowed(self, authorization: str) -> bool:
        if self.users is None:
            return True
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        return self.users.get(user) == password

    def token(self, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name,
                           "actions": [a for a in actions.split(",") if a == "pull"]})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": "fleetctl-tests", "aud": SERVICE, "iat": now,
                  "nbf": now - 5, "exp": now + 300, "jti": uuid.uuid4().hex, "access": access}
        chain = [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": chain})

    def auth_config(self) -> dict:
        """The registry's ``auth:`` section for tokens from this issuer."""
        return {"token": {"realm": self.realm, "service": SERVICE, "issuer": ISSUER,
                          "rootcertbundle": str(self.cert_file)}}

    def __enter__(self) -> TokenIssuer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def htpasswd_config(workdir: Path, users: dict[str, str]) -> dict:
    """The ``auth:`` section for basic auth with bcrypt-hashed ``users``."""
    path = workdir / "htpasswd"
    path.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt()).decode()}\n"
                            for u, p in users.items()))
    return {"htpasswd": {"realm": "fleetlab", "path": str(path)}}


@contextmanager
def auth_registry(workdir: Path, addr: str, auth: dict) -> Iterator[str]:
    """Run the lab's registry binary and config read-only on ``addr``, over the lab's
    storage, with ``auth``; yields ``addr``."""
    paths = LabPaths.default()
    settings = yaml.safe_load(CONFIG.format(data=paths.registry / "data", addr=addr))
    settings["storage"]["maintenance"] = {"readonly": {"enabled": True}}
    settings["auth"] = auth
    config = workdir / f"registry-{addr.rsplit(':', 1)[1]}.yml"
    config.write_text(yaml.safe_dump(settings))
    log = (workdir / f"{config.stem}.log").open("wb")
    process = subprocess.Popen([str(unpacked(paths, "docker-registry")), "serve", str(config)],
                               stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while not _answers(addr):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"registry on {addr} did not start; see {log.name}")
            time.sleep(0.05)
        yield addr
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _answers(addr: str) -> bool:
    try:
        urllib.request.urlopen(f"http://{addr}/v2/", timeout=1)
    except urllib.error.HTTPError:
        return True     # 401: up and asking for credentials
    except OSError:
        return False
    return True


def docker_config(workdir: Path, registry: str, user: str, password: str) -> Path:
    """A Docker config dir holding a login for ``registry``, as `docker login` writes it."""
    folder = workdir / "docker-config"
    folder.mkdir(exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (folder / "config.json").write_text(json.dumps({"auths": {registry: {"auth": auth}}}))
    return folder
