"""The probe parser on recorded and composed outputs of Jetsons and servers."""

from pathlib import Path

import pytest

from fleetctl.facts.hostfacts import (
    PROBE_SCRIPT,
    HostFacts,
    ProbeOutputError,
    parse_nvpmodel,
    parse_probe,
)

OUTPUTS = Path(__file__).parent / "probe_outputs"


def facts(name: str) -> HostFacts:
    return parse_probe((OUTPUTS / name).read_text())


def test_lab_orin_nano() -> None:
    f = facts("lab-orin-nano-jp62.txt")
    assert (f.hostname, f.l4t, f.l4t_source, f.jetpack) == ("jetson-a1", "36.4.3",
                                                            "nv_tegra_release", "6.2")
    assert (f.cuda, f.cuda_source, f.ubuntu) == ("12.6", "version.json", "22.04")
    assert f.model == "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"
    assert (f.part_number, f.module_short, f.soc, f.cuda_arch) == (
        "p3767-0005", "orin-nano", "tegra234", "8.7")
    assert f.serial == "1423123045678"
    assert f.machine == "x86_64" and f.docker_arch == "amd64"  # the lab is honest
    assert f.docker and f.nvidia_runtime and f.default_runtime == "runc"
    assert f.compose == "v1" and f.platform == "jetson"
    assert f.memory_total_mb == 7620 and f.disk_free_mb > 0


def test_lab_x86_server_is_a_server_not_an_error() -> None:
    f = facts("lab-x86-server.txt")
    assert (f.platform, f.l4t, f.jetpack, f.cuda, f.model) == ("x86_64", None, None, None, None)
    assert not f.docker and f.compose == "none"


def test_agx_orin_on_ubuntu_with_docker_27() -> None:
    f = facts("agx-orin-jp61-ubuntu.txt")
    assert (f.l4t, f.jetpack, f.cuda, f.ubuntu) == ("36.4.0", "6.1", "12.6", "22.04")
    assert (f.module_short, f.part_number) == ("agx-orin", "p3701-0005")
    assert f.nvpmodel == "MAXN" and f.kernel == "5.15.148-tegra"
    assert (f.docker_version, f.docker_arch, f.default_runtime) == ("27.5.1", "arm64", "nvidia")
    assert f.compose == "v2" and f.disk_free_mb == 393390744 // 1024
    app = f.containers[0]
    assert (app.name, app.state, app.health, app.package, app.version) == (
        "ollama-ollama-1", "running", "healthy", "ollama", "0.6.8")
    assert app.digest == ("sha256:7a6c1a22bd1b2bd5c8dff3fb51dbb87fc8d0c5e8b1d14dd3b1b0e5b3a1d2"
                          "c3f4")
    assert f.containers[1].health is None and f.containers[1].package is None
    assert f.images[1].tag == "22.04" and f.images[0].tag is None


def test_nano_without_release_file_uses_dpkg_and_keeps_the_patch() -> None:
    f = facts("nano-jp46-dpkg-only-docker-down.txt")
    assert (f.l4t, f.l4t_source, f.jetpack) == ("32.7.4", "nvidia-l4t-core", "4.6.4")
    assert (f.cuda, f.cuda_source, f.ubuntu) == ("10.2", "l4t", "18.04")
    assert (f.module_short, f.soc, f.cuda_arch) == ("nano", "tegra210", "5.3")
    assert not f.docker and "Cannot connect to the Docker daemon" in f.docker_error
    assert f.nvpmodel == "5W" and f.compose == "v1"


def test_thor_on_jetpack7_without_docker() -> None:
    f = facts("thor-jp70-no-docker.txt")
    assert (f.l4t, f.jetpack, f.cuda, f.ubuntu) == ("38.2.0", "7.0", "13.0", "24.04")
    assert (f.module_short, f.soc, f.cuda_arch) == ("agx-thor", "tegra264", "11.0")
    assert f.nvpmodel == "MAXN_SUPER-120W"  # names with dashes stay whole
    assert not f.docker and f.docker_error is None and f.compose == "none"


@pytest.mark.parametrize("text", [
    (OUTPUTS / "garbage-login-shell.txt").read_text(),
    "",
    "\n@@fleetctl:begin\n1\n@@fleetctl:hostname\nx\n",  # cut off before the end
])
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(ProbeOutputError, match="garbage output"):
        parse_probe(text)


def test_json_form_round_trips_and_is_versioned() -> None:
    f = facts("agx-orin-jp61-ubuntu.txt")
    data = f.to_json()
    assert data["schema"] == 1
    assert HostFacts.from_json(data) == f
    with pytest.raises(ValueError, match="schema"):
        HostFacts.from_json({**data, "schema": 99})


def test_nvpmodel_keeps_the_whole_mode_name() -> None:
    assert parse_nvpmodel("NV Power Mode: MODE_15W_6CORE\n2") == "MODE_15W_6CORE"
    assert parse_nvpmodel("NV Power Mode: 25W DLA\n3") == "25W DLA"
    assert parse_nvpmodel("nvpmodel: not found") is None


def test_probe_script_is_posix_sh_with_one_begin_and_end() -> None:
    assert PROBE_SCRIPT.startswith("#!/bin/sh")
    assert PROBE_SCRIPT.count("m begin") == 1 and PROBE_SCRIPT.count("m end") == 1
    assert "bash" not in PROBE_SCRIPT and "python" not in PROBE_SCRIPT
