"""Every loader of an outside file, fed random and mutated documents (hypothesis):
each one either loads or raises a one-line FleetError with exit code 2, never anything
else, and writes nothing. Seeds are the shipped examples; mutations replace one value
anywhere in them with junk of another shape, or damage the text itself."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetctl.catalog.packages import load_catalog, load_package
from fleetctl.delivery.bundle_manifest import parse_manifest
from fleetctl.delivery.images import delivery_mode
from fleetctl.errors import FleetError
from fleetctl.facts.audit import load_rules
from fleetctl.inventory.ansible import load_inventory
from fleetctl.inventory.targets import host_key_policy, target_for
from fleetctl.lab.spec import load_spec
from fleetctl.plan import Plan, PlanEntry, site_bandwidth
from fleetctl.rollout.playbook import load_playbook

#: bad shapes Ansible skips with a warning are skipped here too, warned about as expected
pytestmark = pytest.mark.filterwarnings("ignore::fleetctl.errors.InputWarning")

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "services:\n  x:\n    image: {{ image }}\n"

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True), st.text(max_size=12),
                    st.sampled_from(["abc", "", "-1", "0", "1e3", "[/]", "../x", "sha256:.*",
                                     "5 # note", "100%", "r36.4", "{{ x }}", "\x00"]))
junk = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()),
                                                 inner, max_size=4)), max_leaves=12)


def _inventory(path: Path) -> None:
    """Load, then read every variable fleetctl types (connection, site, delivery)."""
    for host in load_inventory(path).hosts.values():
        target_for(host)
        host_key_policy(host.vars, None)
        site_bandwidth(host.name, host.vars)
        delivery_mode(host.name, host.vars, None)


def _package(path: Path) -> None:
    load_package(path)


def _playbook(path: Path) -> None:
    load_playbook(path).apply(load_catalog(ROOT / "packages"))


def _plan_seed() -> str:
    digest = "sha256:" + "a" * 64
    plan = Plan(["ollama"], ["ollama"], [PlanEntry("a1", "ollama", "upgrade", "x", "0.7.0",
                                                   "0.7.0-r36", f"r/o@{digest}", digest)],
                registry={"r/o:0.7.0-r36#arm64": {"digest": digest, "size": 5}})
    return json.dumps(plan.to_json())


def _manifest_seed() -> str:
    hexes = "b" * 64
    return json.dumps({"format": "fleetctl-bundle/2", "name": "n", "channel": "c",
                       "sequence": 1, "created": "2026-01-01T00:00:00+00:00",
                       "expires": "2027-01-01T00:00:00+00:00",
                       "images": {}, "members": {f"blobs/sha256/{hexes}":
                                                 {"sha256": hexes, "size": 3}}})


#: name -> (file name, seed text, how to load it)
LOADERS: dict[str, tuple[str, str, Callable[[Path], Any]]] = {
    "inventory-yaml": ("hosts.yml", (ROOT / "inventories/example/factory.yml").read_text()
                       .replace("ansible_host: 10.20.2.11", "ansible_host: 10.20.2.11\n"
                                "          ansible_port: 2222\n"
                                "          fleetctl_host_key_policy: strict"), _inventory),
    "inventory-ini": ("hosts.ini", (ROOT / "inventories/example/hosts.ini").read_text(),
                      _inventory),
    "playbook": ("book.yml", (ROOT / "playbooks/ota-webui-stack.yml").read_text(), _playbook),
    "playbook-analysis": ("book.yml", (ROOT / "playbooks/ollama-canary-analysis.yml")
                          .read_text(), _playbook),
    "package": ("demo/package.yml", (ROOT / "packages/ollama/package.yml").read_text()
                .replace("name: ollama", "name: demo"), _package),
    "lab-spec": ("fleet.yml", (ROOT / "inventories/lab/fleet.yml").read_text(), load_spec),
    "audit-rules": ("rules.yml", "min_jetpack: '6.0'\nrequire_nvidia_runtime: true\n"
                    "min_free_disk: 2g\ndrift: true\n", load_rules),
    "plan": ("plan.json", _plan_seed(), Plan.read),
    "bundle-manifest": ("manifest.json", _manifest_seed(),
                        lambda p: parse_manifest(p, p.read_bytes())),
}


def _replace_somewhere(doc: Any, path: list[int], value: Any) -> Any:
    """``doc`` with the node chosen by ``path`` (indexes into its children) replaced."""
    if not path or not isinstance(doc, (dict, list)) or not doc:
        return value
    keys = list(doc) if isinstance(doc, dict) else list(range(len(doc)))
    key = keys[path[0] % len(keys)]
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[key] = _replace_somewhere(doc[key], path[1:], value)
    return copy


def _dump(name: str, doc: Any) -> str:
    if name in ("plan", "bundle-manifest"):
        return json.dumps(doc, default=str)
    if name == "inventory-ini":
        return "\n".join(f"{k} {v}" for k, v in (doc or {}).items()) \
            if isinstance(doc, dict) else str(doc)
    return yaml.safe_dump(doc)


def _check(name: str, tmp_path: Path, text: str | bytes) -> None:
    file_name, _, load = LOADERS[name]
    path = tmp_path / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "compose.yml.j2").write_text(TEMPLATE)     # a package's template
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, errors="surrogateescape")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    try:
        load(path)
    except FleetError as exc:
        assert exc.exit_code == 2, f"{name}: exit {exc.exit_code}: {exc}"
        assert "\n" not in str(exc).strip() or name == "never", str(exc)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before   # nothing written


# derandomize: CI runs the same examples every time (a test must not fail by chance);
# explore more with: FLEETCTL_FUZZ_EXAMPLES=5000 pytest tests/unit/test_bad_input_fuzz.py
FUZZ = settings(max_examples=int(os.environ.get("FLEETCTL_FUZZ_EXAMPLES", "150")),
                derandomize="FLEETCTL_FUZZ_EXAMPLES" not in os.environ, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.mark.parametrize("name", list(LOADERS))
@FUZZ
@given(path=st.lists(st.integers(0, 50), max_size=5), value=junk)
def test_one_value_of_another_shape(name: str, tmp_path: Path, path: list[int],
                                    value: Any) -> None:
    seed = LOADERS[name][1]
    doc = json.loads(seed) if name in ("plan", "bundle-manifest") else \
        yaml.safe_load(seed) if name != "inventory-ini" else None
    if name == "inventory-ini":
        lines = seed.splitlines()
        index = path[0] % len(lines) if path else 0
        lines[index] = (lines[index] + " " + str(value))[:200]
        _check(name, tmp_path, "\n".join(lines))
    else:
        _check(name, tmp_path, _dump(name, _replace_somewhere(doc, path, value)))


@pytest.mark.parametrize("name", list(LOADERS))
@FUZZ
@given(at=st.integers(0, 10_000), cut=st.integers(0, 40), noise=st.binary(max_size=12))
def test_damaged_text(name: str, tmp_path: Path, at: int, cut: int, noise: bytes) -> None:
    seed = LOADERS[name][1].encode()
    at %= len(seed) + 1
    _check(name, tmp_path, seed[:at] + noise + seed[at + cut:])


@pytest.mark.parametrize("name", list(LOADERS))
@FUZZ
@given(doc=junk)
def test_random_documents(name: str, tmp_path: Path, doc: Any) -> None:
    _check(name, tmp_path, _dump(name, doc))


WRONG_SHAPES = [5, -1, 2**70, 1.5, True, None, "", "abc", "[/]", [1], ["a", 2], {"k": 1},
                {1: [2]}, [[[[]]]]]


def _leaf_paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a node of ``doc`` (as indexes into children), the root excluded."""
    if isinstance(doc, (dict, list)) and doc:
        keys = list(doc) if isinstance(doc, dict) else list(range(len(doc)))
        found = []
        for index, key in enumerate(keys):
            found.append((*prefix, index))
            found += _leaf_paths(doc[key], (*prefix, index))
        return found
    return []


@pytest.mark.parametrize("name", [n for n in LOADERS if n != "inventory-ini"])
def test_every_field_with_every_wrong_shape(name: str, tmp_path: Path) -> None:
    seed = LOADERS[name][1]
    doc = json.loads(seed) if name in ("plan", "bundle-manifest") else yaml.safe_load(seed)
    for path in _leaf_paths(doc):
        for value in WRONG_SHAPES:
            _check(name, tmp_path, _dump(name, _replace_somewhere(doc, list(path), value)))
