"""autotag.choose() on the real dustynv/ollama and dustynv/pytorch tag lists
(jetson-facts.md §4.4, §5.5), for hosts on every JetPack and an x86 server.
Each expected answer is written out; upstream's answer is in the comment when
it differs."""

import random

import pytest

from fleetctl.catalog.autotag import Candidate, choose, merge_local
from fleetctl.facts.hostfacts import HostFacts

OLLAMA_TAGS = ["0.6.8-r36.4-cu126-22.04", "0.6.8-r36.4", "r36.4.0-cu128-24.04", "r36.4.0",
               "main-r36.4.0", "0.6.3-r36.4.0", "r36.4.3", "0.5.7-r36.4.0", "0.5.1-r36.4.0",
               "0.4.0-r36.4.0", "r36.3.0", "r36.2.0", "r35.4.1"]
PYTORCH_TAGS = {"2.7-r36.4.0-cu128-24.04": "arm64", "2.6-r36.4.0-cu128-24.04": "arm64",
                "2.1-r36.2.0": "arm64", "1.11-r35.3.1": "arm64",
                "2.6-amd64-cu128-24.04": "amd64"}
OLLAMA_REQUIRES = (">=r34.1",)
PYTORCH_REQUIRES = (">=r32.7",)


def host(l4t: str | None, cuda: str | None, ubuntu: str, arch: str = "arm64") -> HostFacts:
    machine = "aarch64" if arch == "arm64" else "x86_64"
    return HostFacts(hostname="h", machine=machine, kernel="5.15.148-tegra", l4t=l4t,
                     cuda=cuda, ubuntu=ubuntu, docker=True, docker_arch=arch,
                     soc="tegra234" if l4t else None)


HOSTS = {
    "R32.7.6": host("32.7.6", "10.2", "18.04"),
    "R35.4.1": host("35.4.1", "11.4", "20.04"),
    "R36.3.0": host("36.3.0", "12.2", "22.04"),
    "R36.4.3": host("36.4.3", "12.6", "22.04"),
    "R38.2.0": host("38.2.0", "13.0", "24.04"),
    "x86_64": host(None, "12.8", "24.04", "amd64"),
}


def registry(tags: dict[str, str] | list[str]) -> list[Candidate]:
    arches = tags if isinstance(tags, dict) else dict.fromkeys(tags, "arm64")
    return [Candidate(t, f"sha256:{i:064x}", a, "registry", 1000 + i)
            for i, (t, a) in enumerate(arches.items())]


def ollama(name: str, requested: str | None = None):
    return choose(HOSTS[name], requires=OLLAMA_REQUIRES, requested=requested,
                  default="0.23.0", candidates=registry(OLLAMA_TAGS))


def pytorch(name: str, requested: str | None = None):
    return choose(HOSTS[name], requires=PYTORCH_REQUIRES, requested=requested,
                  default="2.6", candidates=registry(PYTORCH_TAGS))


@pytest.mark.parametrize(("name", "requested", "tag"), [
    # no 0.23.0 image: the highest version that fits, then CUDA as the host's
    ("R36.4.3", None, "0.6.8-r36.4-cu126-22.04"),
    ("R36.4.3", "0.6.8", "0.6.8-r36.4-cu126-22.04"),
    ("R36.4.3", "0.5.1", "0.5.1-r36.4.0"),
    ("R36.3.0", None, "r36.3.0"),         # closest L4T on the r36.0-36.3 side of the split
    ("R35.4.1", None, "r35.4.1"),
])
def test_ollama_picks(name: str, requested: str | None, tag: str) -> None:
    choice = ollama(name, requested)
    assert choice.candidate is not None, choice.reason
    assert choice.candidate.tag == tag
    assert choice.candidate.digest.startswith("sha256:")


def test_ollama_reason_says_why() -> None:
    choice = ollama("R36.4.3")
    assert choice.reason.startswith("0.6.8, the highest that fits (no 0.23.0 image fits)")
    assert "CUDA 12.6 as host" in choice.reason and "from the registry" in choice.reason


@pytest.mark.parametrize(("name", "requested"), [("R36.3.0", "0.6.8"), ("R35.4.1", "0.6.8")])
def test_requested_version_is_exact(name: str, requested: str) -> None:
    choice = ollama(name, requested)        # upstream: none as well
    assert choice.candidate is None
    assert "no compatible image of version 0.6.8" in choice.reason


def test_jetpack4_host_refuses_r35_and_r36_images() -> None:
    # upstream (#875): 0.6.8-r36.4-cu126-22.04 on a JetPack 4 host
    assert "requires L4T >=r34.1 (host has 32.7.6" in ollama("R32.7.6").reason
    choice = choose(HOSTS["R32.7.6"], default="0.23.0", candidates=registry(OLLAMA_TAGS))
    assert choice.candidate is None
    assert {r.reason.split(";")[1].strip() for r in choice.rejected} == {
        "host L4T 32.7.6: JetPack 4.6 takes r32.7 images only"}


def test_jetpack7_host_refuses_jetpack6_images() -> None:
    # upstream (#1557): 0.6.8-r36.4-cu126-22.04 on Thor
    choice = ollama("R38.2.0")
    assert choice.candidate is None
    assert len(choice.rejected) == len(OLLAMA_TAGS)
    assert all("JetPack 7 takes r38/r39 images only" in r.reason for r in choice.rejected)


def test_x86_server_gets_no_jetson_image() -> None:
    # upstream: an arm64 Jetson image on x86
    choice = ollama("x86_64")
    assert choice.candidate is None
    assert all("a Jetson image); host is x86_64" in r.reason for r in choice.rejected)


@pytest.mark.parametrize(("name", "requested", "tag"), [
    ("R36.4.3", None, "2.6-r36.4.0-cu128-24.04"),   # the default; CUDA 12.x, reason says 12.8
    ("R36.4.3", "2.7", "2.7-r36.4.0-cu128-24.04"),
    ("R36.3.0", None, "2.1-r36.2.0"),                # no 2.6 for r36.0-36.3: highest that fits
    ("R35.4.1", None, "1.11-r35.3.1"),
    ("x86_64", None, "2.6-amd64-cu128-24.04"),       # platform amd64, no L4T
])
def test_pytorch_picks(name: str, requested: str | None, tag: str) -> None:
    choice = pytorch(name, requested)
    assert choice.candidate is not None, choice.reason
    assert choice.candidate.tag == tag


def test_pytorch_reason_shows_cuda_and_ubuntu_differences() -> None:
    reason = pytorch("R36.4.3").reason
    assert "CUDA 12.8 (host 12.6)" in reason and "Ubuntu 24.04 (host 22.04)" in reason


def test_pytorch_on_jetpack4_and_7_finds_nothing() -> None:
    for name in ("R32.7.6", "R38.2.0"):
        choice = pytorch(name)
        assert choice.candidate is None
        assert choice.reason.startswith("no compatible image: none of 5 images fits")


def test_cuda_major_must_match() -> None:
    cu11 = HostFacts(hostname="h", machine="aarch64", kernel="k", l4t="36.4.3", cuda="11.8",
                     ubuntu="22.04", docker=True, docker_arch="arm64", soc="tegra234")
    choice = choose(cu11, default="0.6.8", candidates=registry(["0.6.8-r36.4-cu126-22.04"]))
    assert choice.candidate is None
    assert choice.rejected[0].reason == "CUDA 12.6, host has CUDA 11.8 (major differs)"


def test_platform_must_be_the_host_docker_arch() -> None:
    candidates = registry({"0.23.0-r36.4.tegra-aarch64-cu126-22.04": "arm64"})
    lab_jetson = HostFacts(hostname="h", machine="x86_64", kernel="k", l4t="36.4.3",
                           cuda="12.6", ubuntu="22.04", docker=True, docker_arch="amd64")
    choice = choose(lab_jetson, default="0.23.0", candidates=candidates)
    assert choice.candidate is None
    assert choice.rejected[0].reason == "platform arm64, host Docker is amd64"


def test_local_image_is_checked_like_registry_ones() -> None:
    # upstream (#324, #353): a stale local r36 build wins on an r35 host
    local = [Candidate("r36.4.0", "sha256:" + "a" * 64, "arm64", "local")]
    choice = choose(HOSTS["R35.4.1"], default="0.23.0",
                    candidates=merge_local(registry(OLLAMA_TAGS), local))
    assert choice.candidate.tag == "r35.4.1"
    assert choice.candidate.source == "registry"
    stale = [r for r in choice.rejected if r.source == "local"]
    assert stale and "built for L4T r36.4.0" in stale[0].reason


def test_image_already_on_the_host_is_preferred_when_digests_match() -> None:
    remote = registry(OLLAMA_TAGS)
    best = next(c for c in remote if c.tag == "0.6.8-r36.4-cu126-22.04")
    pulled = Candidate(None, best.digest, "arm64", "local")  # pulled by digest: no tag
    choice = choose(HOSTS["R36.4.3"], default="0.23.0", candidates=merge_local(remote, [pulled]))
    assert (choice.candidate.tag, choice.candidate.source) == (best.tag, "local")
    assert choice.candidate.size == 0 and "already on the host" in choice.reason


def test_untagged_unknown_local_image_is_rejected() -> None:
    pulled = [Candidate(None, "sha256:" + "b" * 64, "arm64", "local")]
    choice = choose(HOSTS["R36.4.3"], default="0.6.8", candidates=pulled)
    assert choice.candidate is None and "untagged" in choice.rejected[0].reason


def test_same_inputs_same_choice_in_any_order() -> None:
    candidates = registry(OLLAMA_TAGS)
    first = ollama("R36.4.3")
    for seed in range(5):
        shuffled = candidates[:]
        random.Random(seed).shuffle(shuffled)
        again = choose(HOSTS["R36.4.3"], requires=OLLAMA_REQUIRES, default="0.23.0",
                       candidates=shuffled)
        assert again == first
