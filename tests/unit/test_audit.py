"""Audit rows, summary and findings from facts, and rule files."""

from pathlib import Path

import pytest

from fleetctl.audit import Rules, findings, load_rules, row, summary
from fleetctl.errors import InputError
from fleetctl.facts import parse_probe
from fleetctl.inventory import Host
from fleetctl.probe import ProbeResult

OUTPUTS = Path(__file__).parent / "probe_outputs"


def result(name: str, sample: str | None) -> ProbeResult:
    host = Host(name, {"ansible_host": f"10.0.0.{len(name)}"}, [], "test")
    if sample is None:
        return ProbeResult(host, None, "refused", "nothing listens on 10.0.0.1:22")
    return ProbeResult(host, parse_probe((OUTPUTS / sample).read_text()))


FLEET = [result("agx", "agx-orin-jp61-ubuntu.txt"),
         result("nano", "nano-jp46-dpkg-only-docker-down.txt"),
         result("srv", "lab-x86-server.txt"),
         result("gone", None)]


def test_rows_show_identity_and_apps() -> None:
    agx, nano, srv, gone = (row(r) for r in FLEET)
    assert (agx["l4t"], agx["jetpack"], agx["module"], agx["runtime"], agx["apps"]) == (
        "36.4.0", "6.1", "agx-orin", "nvidia (default)", ["ollama:0.6.8"])
    assert (nano["docker"], nano["runtime"]) == ("down", None)
    assert (srv["platform"], srv["l4t"]) == ("x86_64", None)
    assert gone["status"] == "unreachable" and gone["reason"].startswith("refused: ")


def test_summary_counts_and_unreachable() -> None:
    total = summary(FLEET)
    assert (total["hosts"], total["answered"]) == (4, 3)
    assert total["jetpack"] == {"4.6.4": 1, "6.1": 1, "x86_64": 1}
    assert total["module"] == {"agx-orin": 1, "nano": 1, "x86_64": 1}
    assert list(total["unreachable"]) == ["gone"]


def test_findings() -> None:
    found = {(f.host, f.rule) for f in findings(FLEET, Rules(min_jetpack="5.1",
                                                             min_free_disk_mb=10_000))}
    assert found == {("nano", "min_jetpack"), ("nano", "require_nvidia_runtime"),
                     ("nano", "min_free_disk")}


def test_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text('min_jetpack: "6.0"\nrequire_nvidia_runtime: false\nmin_free_disk: 4g\n')
    assert load_rules(path) == Rules("6.0", False, 4096)
    assert load_rules(None) == Rules()


@pytest.mark.parametrize(("text", "message"), [
    ("min_jetpak: '6'\n", r"rules.yml:1: unknown rule 'min_jetpak'"),
    ("min_free_disk: 4 GB\n", r"rules.yml:1: min_free_disk: '4 GB' is not a size"),
    ("\nmin_jetpack: six\n", r"rules.yml:2: min_jetpack: 'six' is not a version"),
    ("require_nvidia_runtime: maybe\n", r"rules.yml:1: require_nvidia_runtime: should be"),
])
def test_bad_rules(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_rules(path)
