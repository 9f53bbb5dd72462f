"""Live progress of a rollout on stderr: a table on a terminal, plain lines otherwise.

Both are journal listeners: they see every transition the journal records, as it
is recorded, from whichever worker thread recorded it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from fleetctl.rollout.journal import FINAL_HOST_PHASES, Journal, RolloutRecord

COLOURS = {"committed": "green", "noop": "green", "reverted": "yellow", "deferred": "yellow",
           "rolled-back": "yellow", "failed": "red", "revert-failed": "red",
           "cancelled": "dim", "skipped": "dim", "pending": "dim", "ready": "green",
           "analysing": "cyan", "analysed": "cyan", "inconclusive": "yellow"}


class PlainProgress:
    """One line per transition, for logs and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, event: dict) -> None:
        who = f"{event['host']} {event['package']}: " if event["host"] else "rollout "
        detail = f" ({event['detail']})" if event["detail"] else ""
        phase = (event["phase"], COLOURS.get(event["phase"], ""))
        self.console.print(Text.assemble(f"{event['rollout']} {who}", phase, detail),
                           highlight=False)


class LiveTable:
    """A table of steps and hosts with their phase, time in it and last gate result,
    redrawn in place as the rollout moves."""

    def __init__(self, console: Console, load: Callable[[str], RolloutRecord]) -> None:
        self.load = load
        self.lock = threading.RLock()
        self.rollout: RolloutRecord | None = None
        self.rows: dict[tuple[str, str], list] = {}
        self.status = ""
        self.live = Live(console=console, get_renderable=self.render, refresh_per_second=2,
                         transient=True, redirect_stdout=False, redirect_stderr=False)

    def __call__(self, event: dict) -> None:
        with self.lock:
            if self.rollout is None or self.rollout.id != event["rollout"]:
                self.rollout = self.load(event["rollout"])
                self.rows = {(s.host, s.package): [s.step, s.phase, "", s.updated_at]
                             for s in self.rollout.hosts}
                self.live.start()
            if event["host"] is None:
                self.status = f"{event['phase']}: {event['detail']}".rstrip(": ")
            else:
                row = self.rows.setdefault((event["host"], event["package"]),
                                           [-1, "", "", event["at"]])
                row[1:] = [event["phase"], event["detail"], event["at"]]
            self.live.refresh()

    def render(self) -> Group:
        """The table as it stands (and the rollout's last status line)."""
        with self.lock:
            return self._render()

    def _render(self) -> Group:
        if self.rollout is None:
            return Group()
        table = Table(title=Text(f"rollout {self.rollout.id} ({self.rollout.kind} "
                                 f"{self.rollout.request})"), title_justify="left")
        for column in ("step", "host", "package", "phase", "for", "gate / note"):
            table.add_column(column, overflow="ellipsis", no_wrap=column != "gate / note")
        now = time.time()
        for (host, package), (step, phase, detail, since) in sorted(
                self.rows.items(), key=lambda item: (item[1][0], item[0])):
            table.add_row(str(step + 1) if step >= 0 else "-", Text(host), Text(package),
                          Text(phase, style=COLOURS.get(phase, "bold")),
                          "" if phase in FINAL_HOST_PHASES else f"{now - since:.0f}s",
                          Text(detail))
        return Group(table, Text(self.status, style="dim"))

    def close(self) -> None:
        """Stop redrawing (the table disappears; the final report follows)."""
        self.live.stop()


@contextmanager
def watching(journal: Journal, console: Console) -> Iterator[None]:
    """Show the journal's transitions while the block runs: a live table when
    ``console`` is a terminal, plain lines otherwise."""
    if console.is_terminal:
        listener: Callable[[dict], None] = LiveTable(console, journal.get)
    else:
        listener = PlainProgress(console)
    journal.listeners.append(listener)
    try:
        yield
    finally:
        journal.listeners.remove(listener)
        if isinstance(listener, LiveTable):
            listener.close()


class ProbeProgress:
    """Probe progress on ``console``: a bar on a terminal, one plain line per host
    otherwise. Pass :meth:`update` as the probe's ``on_result``."""

    def __init__(self, console: Console, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = console
        self.progress = Progress(TextColumn("probing"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.description}"), console=console,
                                 transient=True) if console.is_terminal else None
        self.total = total

    def __enter__(self) -> ProbeProgress:
        if self.progress:
            self.progress.start()
            self.task = self.progress.add_task("", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def update(self, result) -> None:
        state = "cached" if result.cached else "ok" if result.ok else result.error
        line = f"{result.host.name}: {state}" + ("" if result.cached else
                                                 f" ({result.seconds:.2f}s)")
        if self.progress:
            self.progress.update(self.task, advance=1, description=line)
        else:
            self.console.print(f"probe: {line}", highlight=False)
