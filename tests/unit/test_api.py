"""The library API without hosts: option parsing, what a plan means for a deploy, the
session's laziness and its subscribers."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetctl.api import Fleet, NothingToDo, Selection
from fleetctl.errors import FleetError, InputError
from fleetctl.plan import Plan, PlanEntry

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "1" * 64


def entry(host: str, action: str, reason: str = "", current: str | None = "0.7.0",
          version: str | None = "0.7.0") -> PlanEntry:
    return PlanEntry(host, "ollama", action, reason, version=version, current_version=current,
                     digest=DIGEST if action != "blocked" else None)


def test_a_request_no_host_can_take_is_a_failure_with_the_reasons(tmp_path: Path) -> None:
    plan = Plan(["ollama:9.9.9"], ["ollama"], [
        entry("a1", "blocked", "no image of version 9.9.9 fits (r36.4, cu126)"),
        entry("a2", "blocked", "no image of version 9.9.9 fits (r35.6, cu114)")])
    with pytest.raises(FleetError) as raised:
        Fleet.check_plan(plan)
    assert raised.value.exit_code == 1
    assert str(raised.value) == ("no host can take ollama:9.9.9: a1: no image of version "
                                 "9.9.9 fits (r36.4, cu126); a2: no image of version 9.9.9 "
                                 "fits (r35.6, cu114)")
    fleet = Fleet(state_dir=tmp_path / "state")
    with pytest.raises(FleetError, match="no host can take"):
        fleet.deploy(plan, fleet.options())
    assert fleet.rollouts() == []


def test_every_host_at_its_target_is_nothing_to_do(tmp_path: Path) -> None:
    plan = Plan(["ollama"], ["ollama"], [entry("a1", "noop"), entry("a4", "blocked", "r32")])
    assert Fleet.check_plan(plan) is False
    fleet = Fleet(state_dir=tmp_path / "state")
    with pytest.raises(NothingToDo):
        fleet.deploy(plan, fleet.options())


def test_a_downgrade_needs_to_be_allowed() -> None:
    plan = Plan(["ollama:0.6.8"], ["ollama"], [entry("a1", "downgrade", version="0.6.8")])
    with pytest.raises(InputError, match="downgrades 1 host"):
        Fleet.check_plan(plan)
    assert Fleet.check_plan(plan, allow_downgrade=True) is True


@pytest.mark.parametrize(("values", "error"), [
    ({"steps": "0"}, "--steps"), ({"pause": "soon"}, "--pause 'soon' should be a duration"),
    ({"gate_timeout": "x"}, "--gate-timeout 'x'"), ({"delivery": "usb"}, "--delivery 'usb'"),
    ({"max_failures": "lots"}, "max-failures"),
])
def test_options_are_checked_as_a_person_writes_them(tmp_path: Path, values: dict,
                                                     error: str) -> None:
    with pytest.raises(InputError, match=error):
        Fleet(state_dir=tmp_path).options(**values)


def test_options_from_what_a_person_writes(tmp_path: Path) -> None:
    options = Fleet(state_dir=tmp_path, connect_timeout=7).options(
        steps="1,50%,100%", pause="5m", gate_timeout="2m", max_failures="10%")
    assert (options.steps, options.pause, options.gate_timeout, options.max_failures,
            options.connect_timeout) == (["1", "50%", "100%"], "5m", 120.0, "10%", 7)


def test_reading_the_inventory_touches_no_state(tmp_path: Path) -> None:
    fleet = Fleet(ROOT / "inventories" / "example", state_dir=tmp_path / "state")
    hosts = fleet.hosts(Selection(group="factory-a"))
    assert [h.name for h in hosts] == ["line1-cam01", "line1-cam02", "line1-cam03",
                                       "line2-qa01"]
    assert not (tmp_path / "state").exists()
    with pytest.raises(InputError, match="say which hosts"):
        Selection().required()


def test_subscribers_get_journal_events_and_can_leave(tmp_path: Path) -> None:
    fleet = Fleet(state_dir=tmp_path)
    seen: list[str] = []
    leave = fleet.subscribe(lambda event: seen.append(event["phase"]))
    fleet.journal.note("r1", None, None, "created", "x")
    leave()
    fleet.journal.note("r1", None, None, "second", "y")
    assert seen == ["created"]


def test_options_in_the_journal_carry_a_schema_and_read_back_typed() -> None:
    from fleetctl.rollout.context import OPTIONS_SCHEMA, Options

    options = Options(steps=["1", "100%"], pause="manual", gate_timeout=30.0,
                      playbook={"path": "/p.yml", "sha256": "ab"})
    stored = options.to_json()
    assert stored["schema"] == OPTIONS_SCHEMA and Options.from_json(stored) == options
    older = {k: v for k, v in stored.items() if k != "schema"}     # before the schema
    assert Options.from_json(older) == options
    with pytest.raises(FleetError, match=r"options\.keep_releases: expected int"):
        Options.from_json({**stored, "keep_releases": "3"}, "rollout r1: options")
    with pytest.raises(FleetError, match="schema 99 is newer than this fleetctl"):
        Options.from_json({**stored, "schema": 99})
