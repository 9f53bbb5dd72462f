"""Lab images are reproducible and carry the platform they claim."""

import json
from pathlib import Path

from fleetctl.lab.images import LabImage, build_layer, image_config, load_images, machine_arch


def test_layers_and_configs_are_byte_for_byte_reproducible(tmp_path: Path) -> None:
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF stand-in")
    first, second = build_layer("ollama", busybox), build_layer("ollama", busybox)
    assert first == second
    image = LabImage("dustynv/ollama", "0.6.8-r36.4.0-cu126-22.04", "ollama", "0.6.8")
    assert image_config(image, first[1], "amd64") == image_config(image, second[1], "amd64")


def test_config_records_platform_version_and_mode() -> None:
    image = LabImage("dustynv/ollama", "x", "ollama", "0.7.1", mode="broken")
    config = json.loads(image_config(image, "sha256:" + "0" * 64, "arm64"))
    assert (config["architecture"], config["os"]) == ("arm64", "linux")
    assert "FLEETLAB_MODE=broken" in config["config"]["Env"]
    assert config["config"]["Labels"]["org.opencontainers.image.version"] == "0.7.1"


def test_image_list_has_jetson_containers_tags_and_bad_releases() -> None:
    images = {i.tag: i for i in load_images()}
    assert {"0.6.8-r36.4.0-cu126-22.04", "r35.4.1",
            "0.23.0-r36.4.tegra-aarch64-cu126-22.04"} <= set(images)
    assert {i.mode for i in images.values()} == {"ok", "broken", "crash", "slow", "errors",
                                                 "leak"}
    assert images["0.23.0-r36.4.tegra-aarch64-cu126-22.04"].arches == ["arm64"]
    assert images["0.6.8-r36.4.0-cu126-22.04"].arches == [machine_arch()]
    assert images["0.6.9"].arches == [machine_arch(), "arm64"]  # a manifest list
