"""The fleet lock: two controllers (two processes, one state database) starting
rollouts on the same hosts at the same moment; exactly one gets them."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from fleetctl.rollout.journal import HostState, Journal, LockHeld
from fleetctl.state import StateDB

HOSTS = ["jetson-a1", "jetson-a2"]


def _start(state: Path, rollout_id: str, go, results) -> None:
    journal = Journal(StateDB(state))
    go.wait()
    try:
        journal.create(rollout_id, "deploy", "ollama", ["ollama"], [HOSTS], {}, {},
                       [HostState(h, "ollama", 0, "pending") for h in HOSTS], HOSTS)
        results.put((rollout_id, "holds"))
    except LockHeld as exc:
        results.put((rollout_id, f"refused: {exc}"))


def test_two_controllers_never_both_hold_a_host(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for round_ in range(8):
        state = tmp_path / f"round{round_}"
        Journal(StateDB(state))         # the schema, as a first run makes it
        go, results = context.Event(), context.Queue()
        workers = [context.Process(target=_start, args=(state, f"r{round_}-{n}", go, results))
                   for n in range(2)]
        for worker in workers:
            worker.start()
        go.set()
        outcomes = dict(results.get(timeout=60) for _ in workers)
        for worker in workers:
            worker.join(timeout=60)
        holders = [r for r, outcome in outcomes.items() if outcome == "holds"]
        assert len(holders) == 1, outcomes
        [refused] = [o for o in outcomes.values() if o != "holds"]
        assert f"is locked by rollout {holders[0]}" in refused
        locks = StateDB(state).query("SELECT DISTINCT rollout_id FROM fleet_locks")
        assert locks == [{"rollout_id": holders[0]}]
