"""The inventories fleetctl once read differently from ansible-core, each kept as a named
regression test. Expected values are what ``ansible-inventory --list`` 2.19 printed for the
same files (test_inventory_vs_ansible.py asks ansible-core itself on random ones)."""

from pathlib import Path

import pytest

from fleetctl.errors import InputError, InputWarning
from fleetctl.inventory.ansible import load_inventory
from fleetctl.inventory.export import ansible_list


def files(root: Path, contents: dict[str, str | bytes]) -> Path:
    for name, text in contents.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return root


def hostvars(source: Path) -> dict:
    return ansible_list(load_inventory(source))["_meta"]["hostvars"]


def test_a_group_vars_file_beats_a_deeper_groups_inline_vars(tmp_path: Path) -> None:
    files(tmp_path, {"hosts.ini": "[parent:children]\nchild\n[child]\nh1\n[child:vars]\n"
                                  "v=inline-child\n",
                     "group_vars/parent.yml": "v: file-parent\n"})
    assert hostvars(tmp_path / "hosts.ini") == {"h1": {"v": "file-parent"}}


def test_a_vars_folder_wins_over_a_file_of_the_same_name(tmp_path: Path) -> None:
    files(tmp_path, {"hosts.ini": "[web]\nh1\n", "group_vars/web.yml": "v: file\nonly: file\n",
                     "group_vars/web/a.yml": "v: folder\n"})
    assert hostvars(tmp_path / "hosts.ini") == {"h1": {"v": "folder"}}


def test_a_dotted_host_name_has_an_extensionless_vars_file(tmp_path: Path) -> None:
    files(tmp_path, {"hosts": "[web]\n10.0.0.5\n", "host_vars/10.0.0.5": "x: 1\n"})
    assert hostvars(tmp_path / "hosts") == {"10.0.0.5": {"x": 1}}


def test_a_yaml_merge_key_may_be_overridden(tmp_path: Path) -> None:
    files(tmp_path, {"hosts.yml": "all:\n  vars:\n    base: &base\n      a: 1\n      b: 2\n"
                                  "    merged:\n      <<: *base\n      b: 3\n  hosts:\n    h1:\n"})
    assert hostvars(tmp_path / "hosts.yml")["h1"]["merged"] == {"a": 1, "b": 3}
    files(tmp_path, {"twice.yml": "all:\n  vars:\n    a: 1\n    a: 2\n"})
    with pytest.raises(InputError, match=r"twice.yml:4: YAML error: duplicate key 'a'"):
        load_inventory(tmp_path / "twice.yml")


def test_connection_aliases_stay_as_written_and_the_ssh_plugins_order_wins(
        tmp_path: Path) -> None:
    """``ssh_user=rare`` no longer overwrites ``ansible_user``; ``ansible_ssh_host`` wins
    over ``ansible_host`` as in ansible-core's ssh connection plugin."""
    files(tmp_path, {"hosts.ini": "[web]\nh1 ansible_ssh_host=10.0.0.9 ansible_host=10.0.0.1 "
                                  "ssh_user=rare ansible_user=X\n"})
    inventory = load_inventory(tmp_path / "hosts.ini")
    assert hostvars(tmp_path / "hosts.ini") == {"h1": {
        "ansible_ssh_host": "10.0.0.9", "ansible_host": "10.0.0.1", "ssh_user": "rare",
        "ansible_user": "X"}}
    h1 = inventory.hosts["h1"]
    assert (h1.address, h1.user) == ("10.0.0.9", "X")


def test_connection_variables_that_are_templates_are_rendered(tmp_path: Path) -> None:
    files(tmp_path, {"hosts.yml": "all:\n  vars:\n    site: plant-a\n"
                                  "    domain: '{{ site }}.example'\n"
                                  "    ansible_host: '{{ inventory_hostname }}.{{ domain }}'\n"
                                  "    ansible_port: '{{ p }}'\n"
                                  "  hosts:\n    cam1:\n      p: 2222\n"})
    inventory = load_inventory(tmp_path / "hosts.yml")
    cam1 = inventory.hosts["cam1"]
    assert (cam1.address, cam1.port) == ("cam1.plant-a.example", 2222)
    assert cam1.vars["ansible_host"] == "{{ inventory_hostname }}.{{ domain }}"   # as written
    files(tmp_path, {"bad.yml": "all:\n  hosts:\n    cam1:\n      ansible_host: '{{ nope }}'\n",
                     "loop.yml": "all:\n  hosts:\n    cam1:\n      a: '{{ b }}'\n      b: '{{ a }}'"
                                 "\n      ansible_host: '{{ a }}'\n",
                     "escape.yml": "all:\n  hosts:\n    cam1:\n      ansible_host: "
                                   "\"{{ ''.__class__.__mro__ }}\"\n"})
    with pytest.raises(InputError, match=r"bad.yml:3: host cam1: ansible_host '\{\{ nope \}\}':"
                                         r" 'nope' is undefined"):
        load_inventory(tmp_path / "bad.yml")
    with pytest.raises(InputError, match=r"ansible_host -> a -> b -> a: the templates refer"):
        load_inventory(tmp_path / "loop.yml")
    with pytest.raises(InputError, match=r"escape.yml:3: host cam1: ansible_host .*unsafe"):
        load_inventory(tmp_path / "escape.yml")


def test_ungrouped_holds_only_hosts_in_no_other_group(tmp_path: Path) -> None:
    files(tmp_path, {"hosts.ini": "h1\nh2\n[web]\nh1\n"})
    listing = ansible_list(load_inventory(tmp_path / "hosts.ini"))
    assert (listing["ungrouped"], listing["web"]) == ({"hosts": ["h2"]}, {"hosts": ["h1"]})
    assert listing["all"] == {"children": ["ungrouped", "web"]}


def test_the_port_in_a_host_name_counts_where_the_host_is_first_defined(
        tmp_path: Path) -> None:
    files(tmp_path, {"hosts.ini": "cam01\n[db]\ncam01:2200\nweb[1:2]:2222\n"})
    assert hostvars(tmp_path / "hosts.ini") == {"web1": {"ansible_port": 2222},
                                                "web2": {"ansible_port": 2222}}


def test_a_folder_is_read_as_ansible_core_reads_one(tmp_path: Path) -> None:
    """Subfolders and *.json read; backups, notes and hidden files left out."""
    files(tmp_path, {"inv/a.ini": "[web]\nw1\n", "inv/a.ini.bak": "[db]\nd1\n",
                     "inv/.a.ini.swp": "[db]\nd2\n", "inv/README.md": "notes",
                     "inv/b.json": '{"all": {"hosts": {"j1": null}}}',
                     "inv/sub/c": "[qa]\nq1\n", "inv/old.orig": "[db]\nd3\n"})
    listing = ansible_list(load_inventory(tmp_path / "inv"))
    assert listing["all"] == {"children": ["ungrouped", "web", "qa"]}
    assert (listing["ungrouped"], listing["qa"]) == ({"hosts": ["j1"]}, {"hosts": ["q1"]})


def test_what_ansible_core_tolerates_is_read(tmp_path: Path) -> None:
    files(tmp_path, {"hosts": "{all: {children: {web: {hosts: {w1: {p: 1}}}}}}\n",
                     "string.yml": "web:\n  hosts: w1\n  children: db\ndb:\n  hosts: d1\n",
                     "header.ini": "[web] # the cameras\nw1\n"})
    assert hostvars(tmp_path / "hosts") == {"w1": {"p": 1}}
    listing = ansible_list(load_inventory(tmp_path / "string.yml"))
    assert (listing["web"], listing["db"]) == ({"hosts": ["w1"], "children": ["db"]},
                                               {"hosts": ["d1"]})
    assert list(load_inventory(tmp_path / "header.ini").hosts) == ["w1"]
    files(tmp_path, {"keys.yml": "web:\n  hosts:\n    w1:\n  hots:\n    w2:\n"})
    with pytest.warns(InputWarning, match=r"keys.yml:4: skipped key 'hots' of group 'web'"):
        assert list(load_inventory(tmp_path / "keys.yml").hosts) == ["w1"]


@pytest.mark.parametrize(("name", "text", "message"), [
    ("int.yml", "all:\n  hosts:\n    1:\n", r"int.yml:3: host name 1 should be a string; "
                                           r"quote it"),
    ("prio.ini", "[g]\nh1\n[g:vars]\nansible_group_priority=high\n",
     r"prio.ini:4: group g: ansible_group_priority 'high' is not a whole number"),
    ("port.yml", "all:\n  hosts:\n    h1:\n      ansible_port: ssh\n",
     r"port.yml:3: host h1: ansible_port 'ssh' is not a port number"),
    ("list.yml", "all:\n  hosts:\n    h1:\n      ansible_port: [1]\n",
     r"list.yml:3: host h1: ansible_port \[1\] is not a port number"),
    ("latin1.yml", b"all:\n  hosts:\n    h1:\n      x: caf\xe9\n",
     r"latin1.yml:4: not UTF-8 text"),
    ("vars.ini", "[g:vars]\nx=1\n", r"vars.ini:1: \[g:vars\] is for a group defined nowhere"),
    ("colon.ini", "[g]\nh1:\n", r"colon.ini:2: host 'h1:' ends in ':'"),
])
def test_what_ansible_core_refuses_is_one_line_naming_the_line(
        tmp_path: Path, name: str, text: str | bytes, message: str) -> None:
    files(tmp_path, {name: text})
    with pytest.raises(InputError, match=message):
        load_inventory(tmp_path / name)


def test_non_utf8_vars_and_deep_nesting_are_errors_not_tracebacks(tmp_path: Path) -> None:
    files(tmp_path, {"a/hosts.ini": "[web]\nh1\n", "a/group_vars/web.yml": b"x: caf\xe9\n"})
    with pytest.raises(InputError, match=r"group_vars/web.yml:1: not UTF-8 text"):
        load_inventory(tmp_path / "a" / "hosts.ini")
    for levels, error in ((300, r"deep.yml: nested too deeply to read"),     # for Python
                          (2000, r"deep.yml:1000: YAML error: exceeded maximum nesting")):
        deep, indent = "all:\n  children:\n", "    "
        for level in range(levels):
            deep += f"{indent}g{level}:\n{indent}  children:\n"
            indent += "    "
        files(tmp_path, {"deep.yml": deep})
        with pytest.raises(InputError, match=error):      # the second: for libyaml
            load_inventory(tmp_path / "deep.yml")


def test_the_implicit_localhost_is_refused_with_the_reason(tmp_path: Path) -> None:
    files(tmp_path, {"hosts.ini": "[web]\nw1\n"})
    with pytest.raises(InputError, match=r"implicit localhost is the controller, which "
                                         r"fleetctl does not deploy to"):
        load_inventory(tmp_path / "hosts.ini").select("localhost")


def test_ini_values_of_every_python_literal_kind(tmp_path: Path) -> None:
    """As ansible-core 2.19 types them (it marks bytes values unsafe: not templated)."""
    files(tmp_path, {"types.ini": "[edge]\ncam1\n[all:vars]\nv_bool=True\nv_float=1.2\n"
                                  "v_complex=2j\nv_single='single'\nv_bytes=b'raw'\n"
                                  "v_ellipsis=...\nv_tuple=(1, 2)\nv_set={3}\n"
                                  "v_empty_set=set()\nv_mixed=[..., 2j, set(), b'x']\n"
                                  "; an invalid decimal literal: Python warns, Ansible keeps "
                                  "the text\nv_name=host-01.internal\n"})
    assert hostvars(tmp_path / "types.ini") == {"cam1": {
        "v_bool": True, "v_float": 1.2, "v_complex": "2j", "v_single": "single",
        "v_bytes": "raw", "v_ellipsis": "...", "v_tuple": [1, 2], "v_set": [3],
        "v_empty_set": [], "v_mixed": ["...", "2j", [], "x"], "v_name": "host-01.internal"}}
