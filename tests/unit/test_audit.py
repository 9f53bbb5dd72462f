"""Audit rows, summary and findings from facts, and rule files."""

from pathlib import Path

import pytest

from fleetctl.errors import InputError
from fleetctl.facts.audit import Rules, findings, load_rules, row, summary
from fleetctl.facts.hostfacts import parse_probe
from fleetctl.facts.probe import ProbeResult
from fleetctl.inventory.model import Host

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


def test_drift_against_the_journal() -> None:
    from fleetctl.facts.audit import drift
    from fleetctl.facts.hostfacts import Container, HostFacts

    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    facts = HostFacts(hostname="j", machine="aarch64", kernel="k", containers=[
        Container("ollama_ollama_1", f"127.0.0.1:5000/dustynv/ollama@{b}", "running", "healthy",
                  "ollama", "ollama", "0.7.0", "r2", b),
        Container("webui", "ghcr.io/open-webui/open-webui@x", "running", None, "open-webui",
                  "open-webui", "0.6.9", "r1", None)])
    journal = {("j", "ollama"): {"digest": a, "rollout": "r1"},
               ("j", "llama-cpp"): {"digest": a, "rollout": "r0"},
               ("j", "removed"): {"digest": None, "rollout": "r3"},
               ("other", "ollama"): {"digest": a, "rollout": "r1"}}
    messages = sorted(f.message for f in drift("j", facts, journal))
    assert messages == [
        f"llama-cpp is not there; the journal has {a[:19]} (rollout r0)",
        f"ollama runs {b[:19]}; the journal has {a[:19]} (rollout r1)",
        "open-webui (ghcr.io/open-webui/open-webui@x) was not deployed by this controller's "
        "journal",
    ]
    removed = drift("j", facts, {("j", "ollama"): {"digest": b, "rollout": "r2"},
                                 ("j", "open-webui"): {"digest": None, "rollout": "r1"}})
    assert [f.message for f in removed] == [
        "open-webui runs ghcr.io/open-webui/; the journal has nothing (rollout r1)"]
