"""L4T release lines, parsed from real files."""

import pytest

from fleetctl.jetson import parse_nv_tegra_release

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
