"""Ansible inventories: both formats, variable precedence, patterns, and errors."""

import re
from pathlib import Path

import pytest

from fleetctl.errors import InputError, InputWarning
from fleetctl.inventory.ansible import load_inventory, redact
from fleetctl.inventory.ranges import expand_hosts

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def summary(source: Path) -> dict:
    inv = load_inventory(source)
    return {h.name: (h.address, h.port, h.user, sorted(h.groups), h.vars.get("site"),
                     h.vars.get("fleetctl_registry_mirror")) for h in inv.hosts.values()}


def test_yaml_and_ini_examples_agree() -> None:
    yaml_view = summary(EXAMPLE / "factory.yml")
    assert yaml_view == summary(EXAMPLE / "hosts.ini")
    assert yaml_view["line2-qa01"] == ("10.20.2.11", 2222, "root", ["factory-a", "orin"],
                                       "factory-a", "registry.factory-a.example:5000")
    assert yaml_view["b-line1-2"][3] == ["factory-b", "factory-b-line1"]


def test_a_folder_loads_every_inventory_file_in_it() -> None:
    inv = load_inventory(EXAMPLE)
    assert len(inv.sources) == 2 and len(inv.hosts) == 6


def test_precedence_follows_ansible(tmp_path: Path) -> None:
    write(tmp_path, "inv/hosts.yml", """
all:
  vars: {v: all, w: all, u: all}
  children:
    parent:
      vars: {v: parent, w: parent}
      children:
        child:
          vars: {v: child}
          hosts:
            h1: {u: host}
    aaa:
      vars: {w: aaa}
      hosts: {h1: }
""")
    write(tmp_path, "inv/group_vars/child.yml", "v: child-file\n")
    write(tmp_path, "inv/host_vars/h1/main.yml", "u: host-file\n")
    h1 = load_inventory(tmp_path / "inv" / "hosts.yml").hosts["h1"]
    # child (depth 2) beats parent (depth 1); siblings at one depth: later name wins
    assert h1.vars["v"] == "child-file"
    assert h1.vars["w"] == "parent"  # parent (depth 1) and aaa (depth 1): 'parent' sorts last
    assert h1.vars["u"] == "host-file"


def test_connection_vars_and_short_names(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts.ini",
                 "j1 ssh_host=127.0.1.1 ssh_port=2222 ssh_user=admin ssh_key=/k become=yes\n"
                 "j2 ansible_host=127.0.1.2\n")
    inv = load_inventory(path)
    j1, j2 = inv.hosts["j1"], inv.hosts["j2"]
    assert (j1.address, j1.port, j1.user, j1.key_file, j1.become) == (
        "127.0.1.1", 2222, "admin", "/k", True)
    assert (j2.address, j2.port, j2.user, j2.become) == ("127.0.1.2", 22, "root", False)
    assert j1.groups == ["ungrouped"]


@pytest.mark.parametrize(("pattern", "expected"), [
    ("factory-a", ["line1-cam01", "line1-cam02", "line1-cam03", "line2-qa01"]),
    ("factory-a:&orin", ["line1-cam01", "line2-qa01"]),
    ("factory-a:!orin", ["line1-cam02", "line1-cam03"]),
    ("orin:factory-b-line1", ["line1-cam01", "line2-qa01", "b-line1-1", "b-line1-2"]),
    ("orin,b-line1-2", ["line1-cam01", "line2-qa01", "b-line1-2"]),
    ("line1-cam0*", ["line1-cam01", "line1-cam02", "line1-cam03"]),
    ("~line1-cam0[13]$", ["line1-cam01", "line1-cam03"]),      # anchored at the start
    ("all:!factory-a", ["b-line1-1", "b-line1-2"]),
    ("factory-*:&~line2-qa", ["line2-qa01"]),
])
def test_patterns(pattern: str, expected: list[str]) -> None:
    """The expected hosts are what ``ansible PATTERN --list-hosts`` (2.19) lists."""
    assert [h.name for h in load_inventory(EXAMPLE / "factory.yml").select(pattern)] == expected


def test_subscripts_leading_operators_and_regexes_as_ansible_evaluates_them(
        tmp_path: Path) -> None:
    """The expected hosts, in their order, are what ``ansible PATTERN --list-hosts``
    (2.19) listed for this file."""
    inventory = load_inventory(write(tmp_path, "p.ini", "[web]\nweb2\nweb0\nweb1\nweb3\n"
                                     "[db]\nmyweb2\nd1\n[webapp]\nw9\n"))
    assert {pattern: inventory.match(pattern) for pattern in (
        "web[0]", "web[-1]", "web[1:3]", "web[2:]", "~web", "!web", "&web", "web:!web1",
        "db,web[0]")} == {
        "web[0]": ["web2"], "web[-1]": ["web3"], "web[1:3]": ["web0", "web1", "web3"],
        "web[2:]": ["web1", "web3"], "~web": ["web2", "web0", "web1", "web3", "w9"],
        "!web": ["myweb2", "d1", "w9"], "&web": ["web2", "web0", "web1", "web3"],
        "web:!web1": ["web2", "web0", "web3"], "db,web[0]": ["myweb2", "d1", "web2"]}
    same = load_inventory(write(tmp_path, "s.ini", "[h1]\nx\n[g]\nh1\n"))
    assert (same.match("h1"), same.match("h1:x")) == (["h1"], ["h1", "x"])
    with pytest.warns(InputWarning, match="'~eb' matches no host or group"):
        assert inventory.match("~eb") == []
    assert inventory.match("web[9]") == []      # an index past the end: no host, no warning
    for nothing in ("~eb", "web[9]", "~eb:web[9]"):     # Ansible runs nothing: fleetctl refuses
        with pytest.raises(InputError, match=f"--limit {re.escape(nothing)} matches no host"):
            inventory.select(nothing)
    with pytest.warns(InputWarning, match="'nope' matches no host or group in .*; ignored"):
        assert [h.name for h in inventory.select("nope:db")] == ["myweb2", "d1"]


def test_group_and_limit_together() -> None:
    hosts = load_inventory(EXAMPLE / "factory.yml").select("orin", group="factory-a")
    assert [h.name for h in hosts] == ["line1-cam01", "line2-qa01"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"pattern": "factry-a"}, r"--limit factry-a matches no host .*\('factry-a': no such host "
                              r"or group\)"),
    ({"pattern": "factory-a:&factory-b"}, r"--limit factory-a:&factory-b matches no host"),
    ({"group": "line1-cam01"}, r"no group 'line1-cam01'"),
    ({"pattern": "~("}, r"bad regex"),
])
def test_selection_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_inventory(EXAMPLE / "factory.yml").select(**kwargs)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.yml", "all:\n  hosts:\n    a: {x: [1,\n", r"bad.yml:\d+: YAML error"),
    ("kids.ini", "[a]\nh1\n[a:children]\nnope\n",
     r"kids.ini:4: \[a:children\] names group 'nope', which is defined nowhere"),
    ("cycle.ini", "[a]\n[b]\n[a:children]\nb\n[b:children]\na\n",
     r"cycle.ini:6: group cycle b -> a -> b"),
    ("cycle.yml", "a:\n  children:\n    b:\n      children:\n        a:\n",
     r"cycle.yml:3: group cycle a -> b -> a"),
    ("dup.ini", "[a]\nh1 ansible_host=10.0.0.1\n[b]\nh1 ansible_host=10.0.0.2\n",
     r"dup.ini:4: host 'h1' is already defined at .*dup.ini:2 with ansible_host=10.0.0.1"),
    ("keys.yml", "all:\n  hosts: [h1]\n", r"keys.yml:2: all.hosts should be a mapping, not "
                                           r"a list"),
    ("sect.ini", "[a:var]\nx=1\n", r"sect.ini:1: section \[a:var\] has an unknown kind"),
])
def test_bad_inventories_name_file_and_line(tmp_path: Path, name: str, text: str,
                                            message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_inventory(write(tmp_path, name, text))


def test_missing_inventory_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="FLEETCTL_INVENTORY"):
        load_inventory(tmp_path / "nope.yml")
    with pytest.raises(InputError, match="no inventory files here"):
        load_inventory(tmp_path)


def test_host_ranges() -> None:
    """As ansible-core expands them: numbers (padded to the start bound's width),
    letters, strides, several ranges in one name."""
    assert expand_hosts("cam[08:10]") == ["cam08", "cam09", "cam10"]
    assert expand_hosts("r[1:2]-n[1:2]") == ["r1-n1", "r1-n2", "r2-n1", "r2-n2"]
    assert expand_hosts("web[a:c]") == ["weba", "webb", "webc"]
    assert expand_hosts("h[1:10:3]") == ["h1", "h4", "h7", "h10"]
    assert expand_hosts("h[01:10:4]x") == ["h01x", "h05x", "h09x"]
    assert expand_hosts("w[1:02]") == ["w1", "w2"]       # no padding: the start is "1"
    assert expand_hosts("w[:2]") == ["w0", "w1", "w2"]
    assert expand_hosts("back[3:1]") == []


@pytest.mark.parametrize(("host", "why"), [
    ("h[1:c]", "host range bound 'c' is neither a number nor a letter"),
    ("h[c:a]", "host range must have begin <= end"),
    ("h[1:3:0]", "step cannot be 0"),
    ("h[01:100]", "equal-length begin and end formats"),
    ("h[1:]", "must specify end value"),
    ("h[abc]", "must be begin:end or begin:end:step"),
])
def test_malformed_ranges_are_refused_at_their_line(tmp_path: Path, host: str,
                                                     why: str) -> None:
    ini = write(tmp_path, "hosts.ini", f"[web]\nok1\n{host} site=a\n")
    with pytest.raises(InputError, match=rf"hosts\.ini:3: host '{re.escape(host)}': .*{why}"):
        load_inventory(ini)
    yml = write(tmp_path, "y/hosts.yml", f"all:\n  hosts:\n    ok1:\n    '{host}':\n")
    with pytest.raises(InputError, match=rf"hosts\.yml:4: host '{re.escape(host)}'"):
        load_inventory(yml)


def test_redact_masks_secrets_only() -> None:
    masked = redact({"ansible_become_password": "hunter2", "registry_token": "t",
                     "ansible_ssh_private_key_file": "/k", "site": "a"})
    assert masked == {"ansible_become_password": "***", "registry_token": "***",
                      "ansible_ssh_private_key_file": "/k", "site": "a"}


def test_ini_values_are_typed_as_ansible_types_them(tmp_path: Path) -> None:
    """The expected values are what ansible-inventory 2.19 printed for this file."""
    ini = write(tmp_path, "hosts.ini", "[g]\nh1 hp=8080 hb=True hs=\"a b\" hq='x'\n\n"
                "[g:vars]\nport=8080\nflag=True\nlst=[1,2]\nnothing=None\nf=1.5\ne=1e3\n"
                "c=5 # note\nq=\"quoted\"\ns=plain text\nt=yes\nd={\"a\": 1}\nbad=[1,\n"
                f"deep={'[' * 2000}\n")
    got = load_inventory(ini).hosts["h1"].vars
    assert {k: v for k, v in got.items() if k != "deep"} == {
        "bad": "[1,", "c": 5, "d": {"a": 1}, "e": 1000.0, "f": 1.5, "flag": True, "hb": True,
        "hp": 8080, "hq": "x", "hs": "a b", "lst": [1, 2], "nothing": None, "port": 8080,
        "q": "quoted", "s": "plain text", "t": "yes"}
    assert got["deep"] == "[" * 2000             # too deep for a literal: kept as written


def test_vars_files_are_found_as_ansible_finds_them(tmp_path: Path) -> None:
    """The expected values are what ansible-inventory 2.19 printed for these files: a
    folder beats a NAME.yml beside it, a host file may have no extension and dots in its
    name, a group_vars file beats the inventory's inline group vars."""
    write(tmp_path, "hosts.ini", "[web] # the web hosts\n10.0.0.5 x=inline\n"
                                 "[web:vars]\ninline=1\nboth=inline\n")
    write(tmp_path, "group_vars/web/a.yml", "both: folder\nfrom_dir: 1\n")
    write(tmp_path, "group_vars/web.yml", "both: file\nfrom_file: 1\n")
    write(tmp_path, "host_vars/10.0.0.5", "hv: 1\n")
    host = load_inventory(tmp_path / "hosts.ini").hosts["10.0.0.5"]
    assert host.vars == {"both": "folder", "from_dir": 1, "hv": 1, "inline": 1,
                         "x": "inline"}
    assert sorted(host.groups) == ["web"]


def test_ports_in_host_names_and_group_priority_as_ansible_reads_them(tmp_path: Path) -> None:
    """The expected values are what ansible-inventory 2.19 printed for this file."""
    ini = write(tmp_path, "hosts.ini", "[g]\nh1\nh3:2222 x=1\n[k]\nh1\nh4:23 ansible_port=24\n"
                                       "[g:vars]\nansible_group_priority=10\npv=g\n"
                                       "[k:vars]\npv=k\n")
    hosts = load_inventory(ini).hosts
    assert {name: h.vars for name, h in hosts.items()} == {
        "h1": {"pv": "g"}, "h3": {"ansible_port": 2222, "pv": "g", "x": 1},
        "h4": {"ansible_port": 24, "pv": "k"}}
    assert (hosts["h3"].port, hosts["h4"].port) == (2222, 24)
    yml = write(tmp_path, "y/hosts.yml", "all:\n  hosts:\n    '[fe80::1]:2200':\n"
                                         "    'fe80::2':\n")
    assert {n: h.port for n, h in load_inventory(yml).hosts.items()} == {
        "fe80::1": 2200, "fe80::2": 22}
    bad = write(tmp_path, "bad.ini", "[g]\nh1\n[g:vars]\nansible_group_priority=high\n")
    with pytest.raises(InputError, match=r"bad\.ini:4: group g: ansible_group_priority "
                                         r"'high' is not a whole number"):
        load_inventory(bad)
