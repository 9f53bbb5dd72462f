"""``requires`` entries as jetson-containers writes them, judged against real host
classes: each form met and unmet, with the message a person reads."""

from __future__ import annotations

import pytest

from fleetctl.catalog.autotag import unmet_requirements

from .test_choose import HOSTS

ORIN = HOSTS["R36.4.3"]          # JetPack 6.2-class: L4T 36.4.3, CUDA 12.6, Ubuntu 22.04
XAVIER = HOSTS["R35.4.1"]
SERVER = HOSTS["x86_64"]         # amd64, CUDA 12.8, Ubuntu 24.04, no L4T


@pytest.mark.parametrize(("spec", "host", "unmet"), [
    (">=r34.1", ORIN, None),
    (">=r36.4.4", ORIN, "L4T >=r36.4.4 (host has 36.4.3)"),
    ("==35.*", XAVIER, None),
    ("==35.*", ORIN, "L4T ==35.* (host has 36.4.3)"),
    ("<36", XAVIER, None),
    (">=r36", SERVER, None),                     # L4T entries bind images, not servers
    (">=cu126", ORIN, None),
    (">=cu128", ORIN, "CUDA >=cu128 (host has 12.6)"),
    ("<cu126", ORIN, "CUDA <cu126 (host has 12.6)"),
    ("==cu114", XAVIER, None),
    ("arm64", ORIN, None),
    ("arm64", SERVER, "arm64 (host Docker is amd64)"),
    ("amd64", SERVER, None),
    ("x86_64", ORIN, "x86_64 (host Docker is arm64)"),
    ("!=amd64", ORIN, None),
    ("!=arm64", ORIN, "!=arm64 (host Docker is arm64)"),
    ("tegra-aarch64", ORIN, None),
    ("tegra-aarch64", HOSTS["x86_64"], "tegra-aarch64 (host Docker is amd64)"),
    ("22.04", ORIN, None),
    ("22.04", SERVER, "Ubuntu 22.04 (host has 24.04)"),
    ("==24.04", SERVER, None),
    ("!=22.04", ORIN, "Ubuntu !=22.04 (host has 22.04)"),
    ("!=22.04", SERVER, None),
])
def test_each_requirement_form(spec: str, host, unmet: str | None) -> None:
    assert unmet_requirements((spec,), host) == ([unmet] if unmet else [])


def test_every_unmet_entry_is_listed_in_order() -> None:
    assert unmet_requirements((">=r36.4.4", "amd64", ">=cu126", "20.04"), ORIN) == [
        "L4T >=r36.4.4 (host has 36.4.3)", "amd64 (host Docker is arm64)",
        "Ubuntu 20.04 (host has 22.04)"]


def test_unknown_host_values_are_unmet_not_passed() -> None:
    from dataclasses import replace

    unknown = replace(ORIN, cuda=None, l4t=None, ubuntu=None, jetpack=None)
    assert unmet_requirements((">=cu126", ">=r34.1", "22.04"), unknown) == [
        "CUDA >=cu126 (host has none)", "L4T >=r34.1 (host has unknown)",
        "Ubuntu 22.04 (host has unknown)"]
