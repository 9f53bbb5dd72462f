"""Playbooks: the shipped examples load, bad ones fail at their line, windows open and close."""

import datetime as dt
from pathlib import Path

import pytest

from fleetctl.catalog.packages import load_catalog
from fleetctl.errors import FleetError, InputError
from fleetctl.rollout.playbook import Window, load_playbook, reload, window_closed

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc


def test_the_shipped_examples_load_and_apply_to_the_catalog() -> None:
    catalog = load_catalog(ROOT / "packages")
    stack = load_playbook(ROOT / "playbooks" / "ota-webui-stack.yml")
    assert stack.requests == ["ollama", "open-webui:0.6.9"]
    assert (stack.pattern, stack.group, stack.steps, stack.canary, stack.pause) == (
        "factory-a:!nano", None, ("1", "100%"), ("jetson-a1",), "manual")
    assert stack.rollback_all is True
    applied, package_vars = stack.apply(catalog)
    assert applied.get("open-webui").health.timeout == 120.0
    assert applied.get("open-webui").health.http == catalog.get("open-webui").health.http
    assert applied.get("open-webui").env["WEBUI_AUTH"] == "True"
    assert package_vars == {}
    ollama = load_playbook(ROOT / "playbooks" / "factory-a-ollama.yml")
    applied, _ = ollama.apply(catalog)
    assert applied.get("ollama").env["OLLAMA_KEEP_ALIVE"] == "24h"
    assert (applied.get("ollama").health.timeout, applied.get("ollama").health.retries) == \
        (180.0, 5)
    assert ollama.window == Window((0, 1, 2, 3, 4), dt.time(1, 0), 4 * 3600, "Europe/Berlin")
    analysed = load_playbook(ROOT / "playbooks" / "ollama-canary-analysis.yml")
    applied, _ = analysed.apply(catalog)
    analysis = applied.get("ollama").analysis
    assert catalog.get("ollama").analysis is None       # the playbook's, not the package's
    assert analysis is not None and [m.name for m in analysis.metrics] == ["generate", "memory"]
    assert (analysis.window, analysis.baseline_hosts, analysis.inconclusive) == (60, 3, "pause")
    assert str(analysis.metrics[0].success) == ("p95_latency_ms <= 1.25 * "
                                                "baseline.p95_latency_ms and error_ratio < 0.02")


def test_a_playbook_turns_a_package_s_analysis_off_or_names_its_line(tmp_path: Path) -> None:
    book = tmp_path / "book.yml"
    book.write_text("name: x\ntargets: {group: a}\npackages: [ollama]\n"
                    "analysis: {ollama: false}\n")
    assert load_playbook(book).analysis == {"ollama": None}
    book.write_text("name: x\ntargets: {group: a}\npackages: [ollama]\nanalysis:\n"
                    "  ollama: yes please\n")
    with pytest.raises(InputError, match=r"book\.yml:5: analysis\.ollama is an analysis"):
        load_playbook(book)


BAD = [
    ("name: x\ntargets: {group: a}\npackages: [ollama]\nstrategy:\n  stepz: [1]\n",
     "book.yml:5: unknown strategy key 'stepz'"),
    ("name: x\ntargets: {group: a}\npackages: [ollama]\nstrategy:\n  steps: [1, 0]\n",
     "book.yml:5: strategy.steps: step '0' should be a host count or a percentage"),
    ("name: x\ntargets: {}\npackages: [ollama]\n",
     "book.yml:2: targets needs a group or a pattern"),
    ("name: x\ntargets: {group: a}\npackages:\n  - name: ollama\n    verison: 1\n",
     "book.yml:5: unknown package key 'verison'"),
    ("name: x\ntargets: {group: a}\npackages: [ollama, ollama]\n",
     "book.yml:3: package 'ollama' is listed twice"),
    ("name: x\ntargets: {group: a}\npackages: [ollama]\nhealth:\n  ollama:\n"
     "    timeout: soon\n", "book.yml:6: health.ollama.timeout 'soon' is not a duration"),
    ("name: x\ntargets: {group: a}\npackages: [ollama]\nwindow:\n  days: [mon]\n"
     "  start: '25:00'\n  duration: 1h\n", "book.yml:6: window.start '25:00' is a time of day"),
    ("name: x\ntargets: {group: a}\npackages: [ollama]\nwindow:\n  days: [funday]\n"
     "  start: '01:00'\n  duration: 1h\n", "book.yml:5: window.days is a list of mon"),
    ("name: x\ntargets: {group: a}\npackages: [ollama]\nwindow:\n  days: [mon]\n"
     "  start: '01:00'\n  duration: 1h\n  timezone: Mars/Olympus\n",
     "book.yml:8: window.timezone 'Mars/Olympus' is not a time zone"),
    ("name: x\ntargets: {group: a}\npackages: [ollama]\nstrategy: {max_failures: 0}\n",
     "book.yml:4: strategy.max_failures: '0' should be a host count"),
    ("name: x\npackages: [ollama]\n", "book.yml:1: missing key 'targets'"),
    ("name: x\ntargets: {group: a}\nos: {reboot_timeout: 5m}\n",
     "book.yml:3: os needs l4t, the release to update to"),
    ("name: x\ntargets: {group: a}\nos:\n  l4t: 36.x\n",
     "book.yml:4: os.l4t: '36.x' is not an L4T release such as 36.4.4"),
    ("name: x\ntargets: {group: a}\nos:\n  l4t: 36.4.3\n  reboot_timeout: never\n",
     "book.yml:5: os.reboot_timeout 'never' is not a duration"),
    ("name: x\ntargets: {group: a}\nos: {l4t: 36.4.3, slot: B}\n",
     "book.yml:3: unknown os key 'slot'"),
    ("name: x\ntargets: {group: a}\n", "book.yml:1: missing key 'packages'"),
    ("name: x\ntargets: {group: a}\nos:\n  l4t: 36.4.3\n  payload: [a]\n",
     "book.yml:5: os.payload is the path of an OTA payload file"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_playbooks_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "book.yml").write_text(text)
    with pytest.raises(InputError) as error:
        load_playbook(tmp_path / "book.yml")
    assert str(error.value).startswith(f"{tmp_path}/{message}"), str(error.value)


def test_an_os_playbook_updates_l4t_with_or_without_packages(tmp_path: Path) -> None:
    shipped = load_playbook(ROOT / "playbooks" / "factory-c-jetpack-6.2.yml")
    assert (shipped.os_target, shipped.reboot_timeout, shipped.requests) == (
        "36.4.3", 600.0, ["ollama:0.6.8"])
    (tmp_path / "book.yml").write_text("name: x\ntargets: {group: a}\nos: {l4t: r36.4}\n")
    bare = load_playbook(tmp_path / "book.yml")
    assert (bare.os_target, bare.reboot_timeout, bare.packages) == ("36.4.0", None, ())
    (tmp_path / "image.yml").write_text("name: x\ntargets: {group: a}\nos:\n  l4t: 36.4.3\n"
                                        "  payload: ota/payload.tar.gz\n")
    image = load_playbook(tmp_path / "image.yml")
    assert image.os_payload == tmp_path / "ota" / "payload.tar.gz"
    assert load_playbook(ROOT / "playbooks" / "factory-a-ollama.yml").os_target is None


def test_a_health_override_for_a_package_not_in_the_catalog(tmp_path: Path) -> None:
    (tmp_path / "book.yml").write_text("name: x\ntargets: {group: a}\npackages: [ollama]\n"
                                       "health:\n  olama: {retries: 2}\n")
    with pytest.raises(InputError, match=r"book\.yml:5: health: no package 'olama'"):
        load_playbook(tmp_path / "book.yml").apply(load_catalog(ROOT / "packages"))


def test_unquoted_start_time_reads_as_a_time(tmp_path: Path) -> None:
    (tmp_path / "book.yml").write_text("name: x\ntargets: {group: a}\npackages: [ollama]\n"
                                       "window: {days: [sat], start: 02:30, duration: 2h}\n")
    assert load_playbook(tmp_path / "book.yml").window.start == dt.time(2, 30)


def test_a_changed_playbook_is_refused_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "book.yml"
    path.write_text("name: x\ntargets: {group: a}\npackages: [ollama]\n")
    book = load_playbook(path)
    assert reload(str(path), book.sha256).name == "x"
    path.write_text("name: y\ntargets: {group: a}\npackages: [ollama]\n")
    with pytest.raises(FleetError, match="changed since the rollout started"):
        reload(str(path), book.sha256)


NIGHT = Window((0, 1, 2, 3, 4), dt.time(23, 0), 4 * 3600, "Europe/Berlin")   # Mon-Fri 23-03


@pytest.mark.parametrize(("utc", "is_open"), [
    (dt.datetime(2026, 11, 23, 22, 30, tzinfo=UTC), True),     # Mon 23:30 CET
    (dt.datetime(2026, 11, 24, 1, 59, tzinfo=UTC), True),      # Tue 02:59 CET, Monday's window
    (dt.datetime(2026, 11, 24, 2, 0, tzinfo=UTC), False),      # Tue 03:00 CET: closed
    (dt.datetime(2026, 11, 28, 1, 0, tzinfo=UTC), True),       # Sat 02:00 CET: Friday's window
    (dt.datetime(2026, 11, 28, 22, 30, tzinfo=UTC), False),    # Sat 23:30: no window opens
    (dt.datetime(2026, 11, 23, 21, 59, tzinfo=UTC), False),    # Mon 22:59 CET
])
def test_window_across_midnight_and_time_zones(utc: dt.datetime, is_open: bool) -> None:
    assert NIGHT.is_open(utc) is is_open


def test_window_closed_says_when_it_opens() -> None:
    saturday = dt.datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert NIGHT.next_opening(saturday) == dt.datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
    assert window_closed(NIGHT.to_json(), saturday) == (
        "outside the maintenance window (mon,tue,wed,thu,fri 23:00 for 4h Europe/Berlin); "
        "it opens at 2026-11-30 23:00 CET")
    assert window_closed(NIGHT.to_json(), dt.datetime(2026, 11, 30, 22, 1, tzinfo=UTC)) is None
    assert window_closed(None) is None


def test_summer_time_moves_the_window_in_utc() -> None:
    july = dt.datetime(2026, 7, 6, 21, 30, tzinfo=UTC)          # Mon 23:30 CEST
    assert NIGHT.is_open(july)
    assert not NIGHT.is_open(dt.datetime(2026, 11, 23, 21, 30, tzinfo=UTC))   # 22:30 CET
