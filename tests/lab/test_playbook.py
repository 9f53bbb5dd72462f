"""Playbooks on the lab: the shipped OTA stack playbook with its canary and manual pause,
--check, and a closed maintenance window."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from ..conftest import ROOT, Lab, fleetctl

STACK = ROOT / "playbooks" / "ota-webui-stack.yml"
HOSTS = ["jetson-a1", "jetson-a2", "jetson-a3"]


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


def run(lab: Lab, state: Path, playbook: Path, *args: str):
    return fleetctl("run", str(playbook), "-i", lab.status["inventory"], "--state-dir",
                    str(state), *args, check=False)


def webui(lab: Lab, host: str) -> str:
    """What Open WebUI's /health answers on the host ('' when nothing listens)."""
    return lab.ssh(host, f"wget -q -O - http://{lab.address(host)}:8080/health",
                   check=False).stdout.strip()


def test_check_plans_every_package_and_changes_nothing(lab: Lab, state: Path) -> None:
    result = run(lab, state, STACK, "--check")
    assert result.returncode == 0, result.stderr
    assert "plan: ollama, open-webui:0.6.9" in result.stdout
    for host in HOSTS:
        assert f"{host} │ open-webui │ install" in result.stdout
        assert webui(lab, host) == ""
    assert json.loads(fleetctl("rollout", "list", "--state-dir", str(state), "--json").stdout) \
        == []


def test_the_webui_stack_playbook_canary_pause_promote(lab: Lab, state: Path,
                                                       tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    first = run(lab, state, STACK, "--yes", "--json", "--ignore-window", "--events", str(events))
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["status"] == "paused" and report["steps"][0] == ["jetson-a1"]
    phases = {(h["host"], h["package"]): h["phase"] for h in report["hosts"]}
    assert phases[("jetson-a1", "ollama")] in ("committed", "noop")
    assert phases[("jetson-a1", "open-webui")] == "committed"
    assert phases[("jetson-a2", "open-webui")] == "pending"
    assert webui(lab, "jetson-a1") and not webui(lab, "jetson-a2")
    promoted = fleetctl("rollout", "promote", report["id"], "-i", lab.status["inventory"],
                        "--state-dir", str(state), "--json", "--events", str(events),
                        check=False)
    assert promoted.returncode == 0, promoted.stderr
    final = json.loads(promoted.stdout)
    assert final["status"] == "completed"
    for host in HOSTS:
        assert json.loads(webui(lab, host)) == {"status": True}
        running = lab.ssh(host, "docker ps --filter label=io.fleetctl.package=open-webui "
                                "--format '{{.Label \"io.fleetctl.version\"}}'").stdout
        assert running.split() == ["0.6.9"]
    # where ollama changed too, it was committed before open-webui was touched
    seen = [(e["host"], e["package"], e["phase"])
            for e in map(json.loads, events.read_text().splitlines()) if e["host"]]
    upgraded = {h for h, p, phase in seen if p == "ollama" and phase == "committed"}
    assert upgraded
    for host in upgraded:
        mine = [(p, phase) for h, p, phase in seen if h == host]
        assert mine.index(("ollama", "committed")) < mine.index(("open-webui", "locked"))


def test_a_closed_window_refuses_before_touching_anything(lab: Lab, state: Path,
                                                          tmp_path: Path) -> None:
    other_day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[
        (dt.datetime.now(dt.timezone.utc).weekday() + 3) % 7]
    book = tmp_path / "night.yml"
    book.write_text(STACK.read_text().split("window:")[0] + "window:\n  days: [" + other_day
                    + "]\n  start: '00:00'\n  duration: 1h\n  timezone: UTC\n")
    before = fleetctl("rollout", "list", "--state-dir", str(state), "--json").stdout
    result = run(lab, state, book, "--yes")
    assert result.returncode == 5
    assert f"{book}: outside the maintenance window ({other_day} 00:00 for 1h UTC); it " \
           f"opens at " in result.stderr
    assert "--ignore-window" in result.stderr
    assert fleetctl("rollout", "list", "--state-dir", str(state), "--json").stdout == before
