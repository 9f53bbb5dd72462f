"""L4T release lines, parsed from real files."""

import pytest

from fleetctl.facts.jetson import (
    cuda_for_l4t,
    jetpack_for_l4t,
    module_from_compatible,
    parse_nv_tegra_release,
    split_compatible,
    strip_nul,
    ubuntu_for_l4t,
)

REAL_LINES = {
    "# R32 (release), REVISION: 7.1, GCID: 29689809, BOARD: t186ref, EABI: aarch64, "
    "DATE: Wed Feb  2 21:33:23 UTC 2022": "32.7.1",
    "# R32 (release), REVISION: 7.3, GCID: 31982016, BOARD: t210ref, EABI: aarch64, "
    "DATE: Tue Nov 22 17:30:08 UTC 2022": "32.7.3",
    "# R34 (release), REVISION: 1.1, GCID: 30414990, BOARD: t186ref, EABI: aarch64, "
    "DATE: Tue May 17 04:20:55 UTC 2022": "34.1.1",
    "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, "
    "DATE: Tue Aug  1 19:57:35 UTC 2023": "35.4.1",
    "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, "
    "DATE: Fri Sep 13 04:36:44 UTC 2024": "36.4.0",
    "# R38 (release), REVISION: 2.2, GCID: 42205042, BOARD: generic, EABI: aarch64, "
    "DATE: Thu Sep 25 22:47:11 UTC 2025": "38.2.2",
}

JP62_FILE = (
    "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
    "DATE: Wed Jan  8 01:49:37 UTC 2025\n"
    "# KERNEL_VARIANT: oot\n"
    "TARGET_USERSPACE_LIB_DIR=nvidia\n"
    "TARGET_USERSPACE_LIB_DIR_PATH=usr/lib/aarch64-linux-gnu/nvidia\n"
)


@pytest.mark.parametrize(("line", "l4t"), REAL_LINES.items())
def test_real_release_lines(line: str, l4t: str) -> None:
    assert parse_nv_tegra_release(line) == l4t


def test_only_the_first_line_of_a_jetpack6_file_counts() -> None:
    assert parse_nv_tegra_release(JP62_FILE) == "36.4.3"


def test_trailing_nul_and_crlf_are_ignored() -> None:
    assert parse_nv_tegra_release(JP62_FILE.replace("\n", "\r\n", 1) + "\0") == "36.4.3"


@pytest.mark.parametrize("text", ["", "R36.4.3", "# R36 (release)", "garbage\n# R36 ..."])
def test_garbage_is_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="not an L4T release line"):
        parse_nv_tegra_release(text)


@pytest.mark.parametrize(("l4t", "jetpack", "cuda", "ubuntu"), [
    ("32.7.6", "4.6.6", "10.2", "18.04"),
    ("35.4.1", "5.1.2", "11.4", "20.04"),
    ("36.3.0", "6.0", "12.4", "22.04"),
    ("36.4", "6.1", "12.6", "22.04"),
    ("36.4.3", "6.2", "12.6", "22.04"),
    ("38.2.0", "7.0", "13.0", "24.04"),
])
def test_l4t_tables(l4t: str, jetpack: str, cuda: str, ubuntu: str) -> None:
    assert jetpack_for_l4t(l4t) == jetpack
    assert cuda_for_l4t(l4t) == cuda
    assert ubuntu_for_l4t(l4t) == ubuntu


def test_unknown_l4t_stays_unknown() -> None:
    assert jetpack_for_l4t("36.9.9") is None  # no guess at the newest JetPack
    assert jetpack_for_l4t(None) is None and cuda_for_l4t(None) is None
    assert cuda_for_l4t("30.1.0") is None


@pytest.mark.parametrize(("compatible", "part", "short", "soc", "arch"), [
    ("nvidia,p3449-0000-b00+p3448-0000-b00\0nvidia,jetson-nano\0nvidia,tegra210\0",
     "p3448-0000", "nano", "tegra210", "5.3"),
    ("nvidia,p3509-0000+p3668-0001\0nvidia,tegra194\0", "p3668-0001", "xavier-nx", "tegra194",
     "7.2"),
    ("nvidia,p3737-0000+p3701-0005\0nvidia,p3701-0005\0nvidia,tegra234\0", "p3701-0005",
     "agx-orin", "tegra234", "8.7"),
    ("nvidia,p3768-0000+p3767-0005-super\0nvidia,p3767-0005\0nvidia,tegra234\0", "p3767-0005",
     "orin-nano", "tegra234", "8.7"),
    ("nvidia,p4071-0000+p3834-0008\0nvidia,p3834-0008\0nvidia,tegra264", "p3834-0008",
     "agx-thor", "tegra264", "11.0"),
])
def test_module_from_real_compatible_strings(compatible: str, part: str, short: str, soc: str,
                                             arch: str) -> None:
    module = module_from_compatible(compatible)
    assert (module["part_number"], module["module_short"], module["soc"], module["cuda_arch"]) \
        == (part, short, soc, arch)
    assert module["module"].startswith("NVIDIA Jetson")


def test_the_carrier_board_is_never_taken_for_the_module() -> None:
    # p3509-0000 is the Xavier NX carrier here, and also a TX2 NX part number
    assert module_from_compatible("nvidia,p3509-0000+p3668-0001\0nvidia,tegra194")[
        "module_short"] == "xavier-nx"


def test_unknown_part_keeps_its_number() -> None:
    module = module_from_compatible("nvidia,p9999-0000+p9998-0001\0nvidia,tegra234")
    assert (module["part_number"], module["module"], module["soc"]) == ("p9998-0001", None,
                                                                        "tegra234")


def test_device_tree_strings_lose_their_nul() -> None:
    assert strip_nul("NVIDIA Jetson Nano Developer Kit\0") == "NVIDIA Jetson Nano Developer Kit"
    assert split_compatible("a\0b\0") == ["a", "b"]
