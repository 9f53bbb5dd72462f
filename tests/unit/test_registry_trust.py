"""A malicious registry is a real HTTP server on loopback: its answers are refused
where they are not what they claim, and credentials go only where they may."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest

from fleetctl.catalog.registry import RegistryClient, RegistryError, blob_fetcher
from fleetctl.delivery.blobstore import BlobMismatch, BlobStore
from fleetctl.delivery.bundle import Contents, create
from fleetctl.delivery.keys import generate_key, load_private_key
from fleetctl.digest import DigestError

from ..trustkit import MaliciousRegistry, image_blobs, sha

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def serve_image(manifest: bytes, blobs: dict[str, bytes], tag: str = "1.0"):
    routes = {f"/v2/acme/app/manifests/{tag}": (200, {"Content-Type": MANIFEST_TYPE},
                                                 manifest),
              f"/v2/acme/app/manifests/{sha(manifest)}": (200, {"Content-Type": MANIFEST_TYPE},
                                                           manifest)}
    routes.update({f"/v2/acme/app/blobs/{d}": (200, {}, data) for d, data in blobs.items()})
    return MaliciousRegistry(routes)


def test_a_path_in_a_layer_digest_writes_nothing(tmp_path: Path) -> None:
    _, blobs = image_blobs()
    config = next(d for d, b in blobs.items() if b"rootfs" in b)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                           "config": {"digest": config, "size": len(blobs[config])},
                           "layers": [{"digest": "sha256:../../../../" + str(tmp_path / "x"),
                                       "size": 10}]}).encode()
    with serve_image(manifest, blobs).running() as registry:
        client = RegistryClient(registry.address)
        with pytest.raises(DigestError, match=rf"registry {registry.address}: manifest "
                                              rf"acme/app:1.0: 'sha256:\.\./.*' is not a digest"):
            client.images("acme/app", "1.0")
        key_path = tmp_path / "k.key"
        generate_key(key_path)
        reference = f"{registry.address}/acme/app@{sha(manifest)}"
        contents = Contents("t", {"plan.json": b"{}"}, [reference], "default", 1,
                            dt.datetime.now(dt.timezone.utc))
        with pytest.raises(DigestError, match="is not a digest"):
            create(tmp_path / "out.bundle", contents, blob_fetcher(None),
                   load_private_key(key_path))
    assert not (tmp_path / "x").exists() and not (tmp_path / "out.bundle").exists()
    assert not list(tmp_path.glob(".fleetctl-bundle-*"))


def test_other_bytes_under_a_digest_are_not_kept(tmp_path: Path) -> None:
    reference, blobs = image_blobs()
    layer = max(blobs, key=lambda d: len(blobs[d]))
    lying = {**blobs, layer: b"evil" * 300}
    manifest = blobs[reference.rpartition("@")[2]]
    with serve_image(manifest, lying).running() as registry:
        store = BlobStore(tmp_path / "blobs", blob_fetcher(None))
        ref = f"{registry.address}/acme/app@{sha(manifest)}"
        with pytest.raises(BlobMismatch, match=rf"registry of {ref}: the bytes received are "
                                               rf"sha256:\w+, not {layer}"):
            store.ensure(ref, layer)
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []


def test_a_manifest_that_is_not_its_digest_is_refused(tmp_path: Path) -> None:
    reference, blobs = image_blobs()
    manifest = blobs[reference.rpartition("@")[2]]
    other = manifest.replace(b'"schemaVersion": 2', b'"schemaVersion": 2 ')
    routes = {f"/v2/acme/app/manifests/{sha(manifest)}": (200, {}, other),
              "/v2/acme/app/manifests/1.0": (200, {"Docker-Content-Digest": sha(manifest)},
                                             other)}
    with MaliciousRegistry(routes).running() as registry:
        client = RegistryClient(registry.address)
        with pytest.raises(RegistryError, match="the bytes received have digest"):
            client.manifest("acme/app", sha(manifest))
        with pytest.raises(RegistryError, match="the bytes received have digest"):
            client.manifest("acme/app", "1.0")


def test_a_huge_answer_is_cut_off(tmp_path: Path) -> None:
    routes = {"/v2/acme/app/tags/list": (200, {}, b'{"tags": ["' + b"a" * 5 * 2**20 + b'"]}')}
    with MaliciousRegistry(routes).running() as registry, \
            pytest.raises(RegistryError, match="larger than 4,194,304 bytes"):
        RegistryClient(registry.address).tags("acme/app")


def docker_login(folder: Path, registry: str, monkeypatch) -> None:
    auth = base64.b64encode(b"alice:s3cret").decode()
    (folder / "config.json").write_text(json.dumps({"auths": {registry: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))


def test_basic_credentials_only_after_the_registry_asks(tmp_path: Path, monkeypatch) -> None:
    asked = (401, {"WWW-Authenticate": 'Basic realm="registry"'}, b"{}")
    registry = MaliciousRegistry({"/v2/acme/app/tags/list": asked})
    docker_login(tmp_path, registry.address, monkeypatch)
    with registry.running():
        client = RegistryClient(registry.address)
        with pytest.raises(RegistryError, match="credentials refused"):
            client.tags("acme/app")
    first, second = registry.requests
    assert first[1] is None                         # nothing sent before the challenge
    assert second[1] == "Basic " + base64.b64encode(b"alice:s3cret").decode()


def test_credentials_never_go_to_a_plain_http_realm(tmp_path: Path, monkeypatch) -> None:
    realm = 'Bearer realm="http://tokens.example.com/token",service="x"'
    registry = MaliciousRegistry({"/v2/acme/app/tags/list": (401, {"WWW-Authenticate": realm},
                                                             b"{}")})
    docker_login(tmp_path, registry.address, monkeypatch)
    with registry.running(), pytest.raises(
            RegistryError, match=r"refusing to send credentials to "
                                 r"http://tokens\.example\.com: not HTTPS"):
        RegistryClient(registry.address).tags("acme/app")
    assert len(registry.requests) == 1 and registry.requests[0][1] is None
