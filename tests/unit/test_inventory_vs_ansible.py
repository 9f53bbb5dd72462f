"""ansible-core as the oracle: random inventories (INI, YAML, folders mixing both, nested
children, ranges, vars of every YAML type at every level, group_vars/ and host_vars/ in
every form, ansible_group_priority) read by fleetctl and by ansible-core must give the same
``ansible-inventory --list`` and the same hosts for every pattern form.

Seeded (see SEED): the same cases on every run. Hypothesis shrinks a failing case, so the
inventory printed with a failure is a minimal one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st

from fleetctl.errors import InputError
from fleetctl.inventory.ansible import load_inventory
from fleetctl.inventory.export import ansible_list

SEED = 20261129
CASES = 300
ORACLE = Path(__file__).parent.parent / "ansible_oracle.py"

GROUP_NAMES = ["web", "db", "edge", "cams", "orin", "factory_a", "line1", "qa"]
#: no host shares a group's name: ansible-core then gives the host's variables to the group
HOST_NAMES = ["h1", "h2", "web1", "myweb2", "cam01", "jetson-a1", "10.0.0.5", "node.local"]
RANGES = ["cam[01:03]", "web[a:c]", "h[1:10:3]", "n[8:11]", "x[b:d]-y[1:2]"]
VAR_KEYS = ["v", "w", "port", "flag", "name", "db_password"]

scalars = st.one_of(
    st.integers(-3, 70000), st.booleans(), st.none(), st.sampled_from([1.5, 0.25, -2.0]),
    st.text(alphabet="abxyz019_-.:", max_size=6),
    st.sampled_from(["yes", "no", "None", "True", "8080", "[1]", "a b", "5 # note", ""]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["a", "b", "k"]), inner, max_size=3), max_leaves=4)
#: connection variables fleetctl checks the type of (Ansible only when it connects)
connection = st.dictionaries(st.sampled_from(["ansible_user", "ansible_ssh_user", "ssh_user"]),
                             st.text(alphabet="abz", min_size=1, max_size=3), max_size=2)
variables = st.builds(lambda a, b: {**a, **b},
                      st.dictionaries(st.sampled_from(VAR_KEYS), values, max_size=3), connection)


@dataclass
class GroupSpec:
    name: str
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    file: int = 0                      # which file of a folder inventory defines it


@dataclass
class Case:
    """One inventory: groups (a DAG: children come later in the list), its layout, and
    vars files beside it."""

    groups: list[GroupSpec]
    layout: str                        # "ini", "yaml", "noext-yaml" or "folder"
    ungrouped: dict[str, dict[str, Any]]
    all_vars: dict[str, Any]
    vars_files: dict[str, tuple[str, dict[str, Any], dict[str, Any]]]
    patterns: list[str]

    def write(self, root: Path) -> Path:
        """The inventory's files under ``root``; the path to pass as ``-i``."""
        folder = root / "inv"
        folder.mkdir()
        if self.layout == "folder":
            (folder / "10-a.ini").write_text(self.ini(0))
            (folder / "20-b.yml").write_text(self.yaml(1))
            source = folder
        elif self.layout == "ini":
            source = folder / "hosts.ini"
            source.write_text(self.ini(None))
        else:
            source = folder / ("hosts" if self.layout == "noext-yaml" else "hosts.yml")
            source.write_text(self.yaml(None))
        for key, (form, first, second) in self.vars_files.items():
            kind, name = key.split("/", 1)
            write_vars(folder / kind, name, form, first, second)
        return source

    def mine(self, index: int | None) -> list[GroupSpec]:
        return [g for g in self.groups if index is None or g.file == index]

    def ini(self, index: int | None) -> str:
        lines = [f"{host} {ini_vars(v)}".rstrip() for host, v in self.ungrouped.items()
                 if index in (None, 0)]
        if self.all_vars and index in (None, 0):
            lines += ["[all:vars]", *(f"{k}={ini_value(v)}" for k, v in self.all_vars.items())]
        for group in self.mine(index):
            lines.append(f"[{group.name}]")
            lines += [f"{host} {ini_vars(v)}".rstrip() for host, v in group.hosts.items()]
            if group.vars:
                lines.append(f"[{group.name}:vars]")
                lines += [f"{k}={ini_value(v)}" for k, v in group.vars.items()]
            if group.children:
                lines += [f"[{group.name}:children]", *group.children]
        return "\n".join(lines) + "\n"

    def yaml(self, index: int | None) -> str:
        groups = {g.name: g for g in self.groups}
        written: set[str] = set()

        def body(group: GroupSpec) -> dict[str, Any] | None:
            written.add(group.name)
            out: dict[str, Any] = {}
            if group.hosts:
                out["hosts"] = {h: (v or None) for h, v in group.hosts.items()}
            if group.vars:
                out["vars"] = group.vars
            if group.children:
                out["children"] = {c: (None if c in written else body(groups[c]))
                                   for c in group.children}
            return out or None

        top: dict[str, Any] = {}
        all_body: dict[str, Any] = {}
        if self.ungrouped and index is None:
            all_body["hosts"] = {h: (v or None) for h, v in self.ungrouped.items()}
        if self.all_vars and index is None:
            all_body["vars"] = self.all_vars
        children_of_any = {c for g in self.groups for c in g.children}
        roots = [g for g in self.mine(index) if g.name not in children_of_any or index == 1]
        if roots:
            all_body["children"] = {g.name: (None if g.name in written else body(g))
                                    for g in roots}
        top["all"] = all_body or None
        return yaml.safe_dump(top, sort_keys=False)


def ini_value(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else value


def ini_vars(variables: dict[str, Any]) -> str:
    """Host-line variables: one shell word each, as ansible-core splits them."""
    import shlex
    return " ".join(shlex.quote(f"{k}={repr(v).replace(' ', '')}" if not isinstance(v, str)
                                else f"{k}={v}") for k, v in variables.items())


def write_vars(folder: Path, name: str, form: str, first: dict[str, Any],
               second: dict[str, Any]) -> None:
    folder.mkdir(exist_ok=True)
    if form in ("dir", "dir+file"):
        (folder / name).mkdir()
        (folder / name / "a.yml").write_text(yaml.safe_dump(first))
        (folder / name / "b.json").write_text(json.dumps(second))
        if form == "dir+file":
            (folder / f"{name}.yml").write_text(yaml.safe_dump({"from_file": 1, **second}))
    elif form == ".json":
        (folder / f"{name}.json").write_text(json.dumps(first))
    else:
        (folder / f"{name}{form}").write_text(yaml.safe_dump(first))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    names = draw(st.lists(st.sampled_from(GROUP_NAMES), min_size=1, max_size=5, unique=True))
    layout = draw(st.sampled_from(["ini", "yaml", "noext-yaml", "folder"]))
    groups = []
    for i, name in enumerate(names):
        later = names[i + 1:]
        children = draw(st.lists(st.sampled_from(later), unique=True, max_size=2)) if later \
            else []
        hosts = draw(st.dictionaries(
            st.sampled_from(HOST_NAMES + RANGES + ["h2:2222", "cam01:2200"]), variables,
            max_size=3))
        group_vars = draw(variables)
        if draw(st.booleans()):
            group_vars["ansible_group_priority"] = draw(st.integers(1, 3))
        groups.append(GroupSpec(name, hosts, group_vars, children,
                                file=draw(st.integers(0, 1))))
    # a child of a YAML group is written under it; keep parents and children in one file
    for group in groups:
        for child in group.children:
            next(g for g in groups if g.name == child).file = group.file
    ungrouped = draw(st.dictionaries(st.sampled_from(HOST_NAMES), variables, max_size=2))
    all_vars = draw(variables)
    hosts = {h for g in groups for h in g.hosts} | set(ungrouped)
    targets = ["group_vars/all", *(f"group_vars/{g}" for g in names),
               *(f"host_vars/{h}" for h in [*HOST_NAMES, "cam02", "webb"])]
    vars_files = draw(st.dictionaries(st.sampled_from(targets), st.tuples(
        st.sampled_from(["", ".yml", ".yaml", ".json", "dir", "dir+file"]), variables,
        variables), max_size=4))
    words = names + [h for h in HOST_NAMES if h in hosts] + ["all", "ungrouped"]
    term = st.one_of(
        st.sampled_from(words), st.sampled_from(["web*", "*1", "h*", "~h", "~web", "~(db|qa)",
                                                 "~.*a"]),
        st.builds(lambda g, s: f"{g}{s}", st.sampled_from(names),
                  st.sampled_from(["[0]", "[-1]", "[1:3]", "[1:]", "[0:0]"])))
    pattern = st.builds(lambda a, op, b: f"{a}{op}{b}", term,
                        st.sampled_from([":", ",", ":&", ":!", "&", "!"]), term)
    patterns = draw(st.lists(st.one_of(term, pattern), min_size=1, max_size=6))
    return Case(groups, layout, ungrouped, all_vars, vars_files, patterns)


@pytest.fixture(scope="module")
def oracle() -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([sys.executable, str(ORACLE)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    yield process
    assert process.stdin is not None
    process.stdin.close()
    process.wait(30)


def ask(oracle: subprocess.Popen[str], source: Path, patterns: list[str]) -> dict[str, Any]:
    assert oracle.stdin is not None and oracle.stdout is not None
    oracle.stdin.write(json.dumps({"source": str(source), "patterns": patterns}) + "\n")
    oracle.stdin.flush()
    return json.loads(oracle.stdout.readline())


def show(root: Path) -> str:
    """Every file of the case, for the failure message."""
    return "\n".join(f"--- {p.relative_to(root)}\n{p.read_text()}" for p in sorted(root.rglob("*"))
                     if p.is_file())


@pytest.mark.filterwarnings("ignore::fleetctl.errors.InputWarning")
@seed(SEED)
@settings(max_examples=CASES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=cases())
def test_fleetctl_reads_inventories_as_ansible_core_does(
        case: Case, oracle: subprocess.Popen[str]) -> None:
    root = Path(tempfile.mkdtemp(prefix="inv-oracle-"))
    try:
        source = case.write(root)
        truth = ask(oracle, source, case.patterns)
        files = show(root)
        event(f"layout {case.layout}, {'refused' if 'error' in truth else 'read'}")
        if "error" in truth:
            with pytest.raises(InputError):
                load_inventory(source)
            return
        inventory = load_inventory(source)
        assert json.loads(json.dumps(ansible_list(inventory), default=str)) == truth["list"], \
            files
        # ansible-core walks a group's descendants level by level through a set of Group
        # objects: with two groups that have children, the order of the hosts below them
        # differs from run to run (even within one process), so only which hosts counts
        ordered = sum(1 for g in inventory.groups.values() if g.children and g.name != "all") < 2
        for pattern, hosts in truth["patterns"].items():
            event("pattern selects hosts" if isinstance(hosts, list) and hosts
                  else "pattern selects nothing")
            if isinstance(hosts, list) and hosts:
                selected = [h.name for h in inventory.select(pattern)]
                if ordered:
                    assert selected == hosts, f"pattern {pattern!r}\n{files}"
                else:
                    assert sorted(selected) == sorted(hosts), f"pattern {pattern!r}\n{files}"
            else:
                with pytest.raises(InputError):
                    inventory.select(pattern)
    finally:
        shutil.rmtree(root)
