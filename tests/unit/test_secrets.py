"""Secret env values are registered where a package holds them and redacted from the
journal, its events and printed errors."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import yaml

from fleetctl.catalog.packages import load_catalog
from fleetctl.rollout.journal import HostState, Journal
from fleetctl.rollout.playbook import load_playbook
from fleetctl.state import StateDB

ROOT = Path(__file__).resolve().parents[2]
SECRET = 'tok"en-\n-5ecret-for-test-secrets'


def test_a_playbooks_secret_never_reaches_the_journal_or_its_events(tmp_path: Path) -> None:
    book = tmp_path / "book.yml"
    book.write_text(yaml.safe_dump({
        "name": "s", "targets": {"group": "factory-a"},
        "packages": [{"name": "ollama", "env": {"OLLAMA_TOKEN": SECRET},
                      "secrets": ["OLLAMA_TOKEN"]}]}))
    playbook = load_playbook(book)
    catalog, _ = playbook.apply(load_catalog(ROOT / "packages"))
    assert catalog.get("ollama").env["OLLAMA_TOKEN"] == SECRET
    journal = Journal(StateDB(tmp_path / "state"))
    seen: list[dict] = []
    journal.listeners.append(seen.append)
    journal.create("r1", "deploy", "ollama", ["ollama"], [["a1"]], {}, {},
                   [HostState("a1", "ollama", 0, "pending")], ["a1"])
    journal.set_host("r1", "a1", "ollama", "failed", f"gate: {SECRET}",
                     error=f"compose: OLLAMA_TOKEN={SECRET} rejected")
    journal.note("r1", "a1", "ollama", "delivery", SECRET)
    journal.set_status("r1", "failed", f"stopped: {SECRET}")
    stored = (tmp_path / "state" / "state.db").read_bytes() + b"".join(
        p.read_bytes() for p in (tmp_path / "state").glob("state.db-*"))
    assert SECRET.encode() not in stored
    assert all(SECRET not in str(event) for event in seen)
    [host] = journal.get("r1").hosts
    assert host.error == "compose: OLLAMA_TOKEN=*** rejected"


def test_a_package_secret_is_redacted_only_once_it_has_a_value() -> None:
    from fleetctl.secrets import redact

    webui = load_catalog(ROOT / "packages").get("open-webui")
    assert webui.secrets == ("WEBUI_SECRET_KEY",)
    assert redact("key=not-yet-set-value") == "key=not-yet-set-value"
    replace(webui, env={**webui.env, "WEBUI_SECRET_KEY": "not-yet-set-value"})
    assert redact("key=not-yet-set-value") == "key=***"


def test_state_dir_and_database_are_private_however_first_made(tmp_path: Path) -> None:
    state = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "fleetctl", "keys", "generate", "k", "--dir",
                    str(tmp_path)], check=True, capture_output=True, cwd=ROOT)
    subprocess.run([sys.executable, "-m", "fleetctl", "keys", "trust", str(tmp_path / "k.pub"),
                    "--state-dir", str(state)], check=True, capture_output=True, cwd=ROOT)
    assert state.stat().st_mode & 0o777 == 0o700
    assert (state / "trusted-keys").stat().st_mode & 0o777 == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    StateDB(loose).close()
    assert loose.stat().st_mode & 0o777 == 0o700
    assert (loose / "state.db").stat().st_mode & 0o777 == 0o600
