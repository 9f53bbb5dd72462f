"""Tag parsing and L4T compatibility on real jetson-containers tags."""

import pytest

from fleetctl.catalog.autotag import l4t_compatible, parse_tag

# (tag, version, l4t, cuda, ubuntu, arch): dustynv/ollama and pytorch tags from Docker Hub,
# tags from jetson-containers docs and issues, and the lab's own
TAGS = [
    ("0.6.8-r36.4-cu126-22.04", "0.6.8", "36.4", "12.6", "22.04", None),
    ("0.6.8-r36.4", "0.6.8", "36.4", None, None, None),
    ("r36.4.0-cu128-24.04", None, "36.4.0", "12.8", "24.04", None),
    ("r36.4.0", None, "36.4.0", None, None, None),
    ("main-r36.4.0", None, "36.4.0", None, None, None),
    ("0.5.7-r36.4.0", "0.5.7", "36.4.0", None, None, None),
    ("r35.4.1", None, "35.4.1", None, None, None),
    ("0.23.0-r36.4.tegra-aarch64-cu126-22.04", "0.23.0", "36.4", "12.6", "22.04", "arm64"),
    ("r38.4.arm64-sbsa-cu130-24.04-torch2trt", None, "38.4", "13.0", "24.04", "arm64"),
    ("0.11.2-r36.4.tegra-aarch64-cp310-cu126-22.04", "0.11.2", "36.4", "12.6", "22.04",
     "arm64"),
    ("2.6-amd64-cu128-24.04", "2.6", None, "12.8", "24.04", "amd64"),
    ("0.8.6-sbsa-cu128", "0.8.6", None, "12.8", None, "arm64"),
    ("humble-ros-base-l4t-r36.2.0", None, "36.2.0", None, None, None),
    ("2.6-r36.4.0-cu128-24.04", "2.6", "36.4.0", "12.8", "24.04", None),
    ("1.11-r35.3.1", "1.11", "35.3.1", None, None, None),
    ("0.7.1-r36.4.0-cu126-22.04-broken", "0.7.1", "36.4.0", "12.6", "22.04", None),
    ("0.23.0-r36.4.tegra-x86_64-cu126-22.04", "0.23.0", "36.4", "12.6", "22.04", "amd64"),
    ("dustynv/ollama:0.6.8-r36.4-cu126-22.04", "0.6.8", "36.4", "12.6", "22.04", None),
    ("latest", None, None, None, None, None),
]


@pytest.mark.parametrize(("tag", "version", "l4t", "cuda", "ubuntu", "arch"), TAGS)
def test_parse_tag(tag, version, l4t, cuda, ubuntu, arch) -> None:
    assert parse_tag(tag) == {"version": version, "l4t": l4t, "cuda": cuda, "ubuntu": ubuntu,
                              "arch": arch}


# host L4T -> image L4Ts it accepts / refuses (upstream bugs #875, #1557 included)
@pytest.mark.parametrize(("host", "accepts", "refuses"), [
    ("32.7.6", ["32.7.1", "32.7.6"], ["35.4.1", "36.4.0", "36.4", "32.6.1", "38.2"]),
    ("32.6.1", ["32.6.1"], ["32.7.1", "36.4.0"]),
    ("35.4.1", ["35.4.1", "35.3.1", "35.6.0"], ["36.4.0", "32.7.1", "34.1.1"]),
    ("36.3.0", ["36.3.0", "36.2.0"], ["36.4.0", "36.4", "35.4.1"]),
    ("36.4.3", ["36.4.0", "36.4", "36.4.3", "36.5.0"], ["36.3.0", "36.2.0", "35.4.1", "38.2"]),
    ("38.2.0", ["38.2", "38.4"], ["36.4.0", "35.4.1", "39.0"]),
    ("39.2.0", ["38.4", "39.0"], ["36.4.0"]),
])
def test_l4t_families(host: str, accepts: list[str], refuses: list[str]) -> None:
    assert [i for i in accepts if not l4t_compatible(host, i)] == []
    assert [i for i in refuses if l4t_compatible(host, i)] == []


def test_unknown_is_never_compatible() -> None:
    assert not l4t_compatible(None, "36.4.0")  # an x86 server has no L4T
    assert not l4t_compatible("36.4.3", None)  # an amd64 tag has none either
    assert not l4t_compatible("36.4.3", "36.x")
