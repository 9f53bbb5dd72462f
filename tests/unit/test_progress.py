"""Rollout progress on stderr: a live table on a terminal, plain lines otherwise."""

import io
import re
from pathlib import Path

from rich.console import Console

from fleetctl.cli.progress import watching
from fleetctl.rollout.journal import HostState, Journal
from fleetctl.state import StateDB

GATE = "healthy: http://127.0.1.1:11434/api/version answered 3 times in a row; testinfra: 4 passed"


def rollout(tmp_path: Path) -> Journal:
    journal = Journal(StateDB(tmp_path))
    journal.create("r1", "deploy", "ollama:0.7.0", ["ollama"], [["jetson-a1"], ["jetson-a2"]],
                   {}, {}, [HostState("jetson-a1", "ollama", 0, "pending"),
                            HostState("jetson-a2", "ollama", 1, "pending")], [])
    return journal


def transitions(journal: Journal) -> None:
    journal.set_host("r1", "jetson-a1", "ollama", "staged", "image pulled")
    journal.set_host("r1", "jetson-a1", "ollama", "committed", GATE)
    journal.set_host("r1", "jetson-a2", "ollama", "failed", error="preflight: disk: 90 MB free")


def test_a_terminal_gets_a_live_table_of_steps_and_hosts(tmp_path: Path) -> None:
    journal = rollout(tmp_path)
    screen = io.StringIO()
    with watching(journal, Console(file=screen, force_terminal=True, width=200)):
        transitions(journal)
    frames = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert "step ┃ host      ┃ package ┃ phase" in frames
    last = frames.rsplit("rollout r1 (deploy ollama:0.7.0)", 1)[1]
    assert re.search(r"│ 1 +│ jetson-a1 │ ollama +│ committed │ +│ " + re.escape(GATE), last)
    assert re.search(r"│ 2 +│ jetson-a2 │ ollama +│ failed +│ +│ preflight: disk", last)
    assert journal.listeners == []          # detached when the block ends


def test_a_pipe_gets_one_plain_line_per_transition(tmp_path: Path) -> None:
    journal = rollout(tmp_path)
    log = io.StringIO()
    with watching(journal, Console(file=log, width=200)):
        transitions(journal)
    assert log.getvalue().splitlines() == [
        "r1 jetson-a1 ollama: staged (image pulled)",
        f"r1 jetson-a1 ollama: committed ({GATE})",
        "r1 jetson-a2 ollama: failed (preflight: disk: 90 MB free)",
    ]


def test_outside_text_is_never_read_as_markup(tmp_path: Path) -> None:
    """A host, package or error text that looks like rich markup prints as itself, on a
    terminal and in a pipe, even through a console that reads markup."""
    journal = Journal(StateDB(tmp_path))
    journal.create("r2", "deploy", "[bold]x", ["[/]"], [["[/]"]], {}, {},
                   [HostState("[/]", "[/]", 0, "pending")], [])
    for terminal in (True, False):
        screen = io.StringIO()
        with watching(journal, Console(file=screen, force_terminal=terminal, width=200)):
            journal.set_host("r2", "[/]", "[/]", "failed", error="[red]boom[/red] [/]")
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
        assert "[red]boom[/red] [/]" in text and "│ [/]" in text if terminal else \
            "r2 [/] [/]: failed ([red]boom[/red] [/])" in text
