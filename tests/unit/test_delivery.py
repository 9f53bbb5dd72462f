"""Delivery over SSH, the pure parts: chain ids as Docker's layer store names them,
digest tags, the docker-save manifest, the delivery mode, the per-site rate limit,
and a bundle's images for offline planning."""

import datetime as dt
import json
from pathlib import Path

import pytest

from fleetctl.delivery.bundle import Verified
from fleetctl.delivery.bundle_manifest import BundleImage, BundleManifest
from fleetctl.delivery.images import ImageParts, RateLimit, chain_ids, delivery_mode, local_tag
from fleetctl.digest import Digest
from fleetctl.errors import FleetError
from fleetctl.facts.hostfacts import digest_from_tag

# Read from a Docker 28 engine (overlay2): `docker inspect -f '{{json .RootFS.Layers}}'`
# of a committed two-layer image, and the names of image/overlay2/layerdb/sha256/*.
DIFF_IDS = ["sha256:006f45d93abf3aa77a3ebc6bf3320af686fc18a8e551acf4c85210590ea95226",
            "sha256:bf5bf0c15efbb44990bacdbe50e50a1281a8134fe7708e7deba6d8773f5037ea"]
LAYERDB = ["006f45d93abf3aa77a3ebc6bf3320af686fc18a8e551acf4c85210590ea95226",
           "bebb2fccd59ea3ee11ab151fade7f69ecd8637ceb96c1d679e1ff0f96e95a8be"]
REF = ("127.0.0.1:5000/dustynv/ollama@"
       "sha256:fa3edbb0ac8be0ac76d1a74cc25edb27d9ce9158254c60e6253be16ee6d78ab9")


def test_chain_ids_match_the_layer_store() -> None:
    assert [c[7:] for c in chain_ids(DIFF_IDS)] == LAYERDB
    assert chain_ids(DIFF_IDS[:1]) == DIFF_IDS[:1]
    assert chain_ids([]) == []


def test_local_tag_names_the_digest_and_facts_read_it_back() -> None:
    tag = local_tag(REF)
    assert tag == ("127.0.0.1:5000/dustynv/ollama:"
                   "sha256-fa3edbb0ac8be0ac76d1a74cc25edb27d9ce9158254c60e6253be16ee6d78ab9")
    assert digest_from_tag(tag.rpartition(":")[2]) == REF.rpartition("@")[2]
    for other in ("0.7.0-r36.4.0-cu126-22.04", "latest", None, "sha256-abc"):
        assert digest_from_tag(other) is None
    with pytest.raises(ValueError, match="not pinned"):
        local_tag("dustynv/ollama:0.7.0")


def test_save_manifest_loads_gzipped_layers_under_the_local_tag() -> None:
    parts = ImageParts(REF, Digest("sha256:" + "c" * 64),
                       ((Digest("sha256:" + "a" * 64), 10), (Digest("sha256:" + "b" * 64), 20)),
                       tuple(map(Digest, DIFF_IDS)))
    [entry] = json.loads(parts.save_manifest())
    assert entry == {"Config": f"blobs/sha256/{'c' * 64}", "RepoTags": [local_tag(REF)],
                     "Layers": [f"blobs/sha256/{'a' * 64}", f"blobs/sha256/{'b' * 64}"]}


def test_delivery_mode_command_line_then_host_var_then_registry() -> None:
    assert delivery_mode("b1", {}, None) == "registry"
    assert delivery_mode("b1", {"fleetctl_delivery": "ssh"}, None) == "ssh"
    assert delivery_mode("b1", {"fleetctl_delivery": "ssh"}, "registry") == "registry"
    with pytest.raises(FleetError, match="host b1: fleetctl_delivery: 'usb' is not one of "
                                         "registry, ssh"):
        delivery_mode("b1", {"fleetctl_delivery": "usb"}, None)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limit_holds_the_site_rate_across_senders() -> None:
    clock = FakeClock()
    limit = RateLimit(64_000, clock.time, clock.sleep)     # 512kbit
    for _ in range(4):                                     # four hosts, 64 kB each
        limit.take(64_000)
    assert clock.now == pytest.approx(103.0)      # the first goes at once, then 1 s each
    unlimited = RateLimit(None, clock.time, clock.sleep)
    unlimited.take(10**9)
    assert clock.now == pytest.approx(103.0)


def test_a_bundles_images_are_what_offline_planning_may_choose() -> None:
    digest = Digest(REF.rpartition("@")[2])
    now = dt.datetime.now(dt.timezone.utc)
    image = BundleImage(REF, digest, Digest("sha256:" + "c" * 64), (), 0)
    verified = Verified(Path("x.bundle"), BundleManifest("x", "default", 1, now, now,
                                                         {REF: image}, {}), "key")
    plan = {"registry": {
        "127.0.0.1:5000/dustynv/ollama:0.7.0-r36.4.0-cu126-22.04#amd64":
            {"digest": digest, "size": 1034051},
        "127.0.0.1:5000/dustynv/ollama:0.6.8-r36.4.0-cu126-22.04#amd64":
            {"digest": "sha256:" + "9" * 64, "size": 1034051}}}
    [image] = verified.platform_images(plan)["dustynv/ollama"]
    assert (image.tag, image.digest, image.arch, image.size) == (
        "0.7.0-r36.4.0-cu126-22.04", digest, "amd64", 1034051)
