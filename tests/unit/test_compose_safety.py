"""Values never add keys to a compose file, and a compose file never gets host powers
or host mounts its package did not declare."""

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from fleetctl.catalog.compose import render_compose
from fleetctl.catalog.packages import load_catalog, load_package
from fleetctl.errors import InputError

from .test_catalog import GOOD, SHIPPED, TEMPLATE, context, write

INJECTION = 'x"\n    privileged: true\n    pid: "host'


def test_an_env_value_cannot_add_keys_to_the_service() -> None:
    ollama = load_catalog(SHIPPED).get("ollama")
    package = replace(ollama, env={**ollama.env, "NOTE": INJECTION,
                                   'A": 1\n    privileged: true\n    B': "y"})
    doc = yaml.safe_load(render_compose(context(package)))
    service = doc["services"]["ollama"]
    assert "privileged" not in service and "pid" not in service
    assert service["environment"]["NOTE"] == INJECTION          # the value, exactly
    assert 'A": 1\n    privileged: true\n    B' in service["environment"]


@pytest.mark.parametrize("name", ["ollama", "open-webui", "llama-cpp", "l4t-pytorch"])
def test_an_inventory_address_cannot_add_keys(name: str) -> None:
    package = load_catalog(SHIPPED).get(name)
    address = '0.0.0.0"\n    privileged: true\n    x: "'
    doc = yaml.safe_load(render_compose(context(package, service_address=address)))
    [service] = doc["services"].values()
    assert "privileged" not in service and "x" not in service


@pytest.mark.parametrize(("extra", "error"), [
    ("    privileged: true\n", "'privileged' is not among the package's privileges"),
    ("    cap_add: [SYS_ADMIN]\n", "'cap_add' is not among the package's privileges"),
    ("    devices: [/dev/mem]\n", "'devices' is not among the package's privileges"),
    ("    pid: host\n", "'pid' is not among the package's privileges"),
    ("    volumes: ['/:/host']\n", "mounts host path '/'"),
    ("    volumes: ['/opt/fleetctl/demo/data/../../../etc:/x']\n", "mounts host path"),
    ("    volumes: [{type: bind, source: /root, target: /r}]\n", "mounts host path '/root'"),
    ("    volumes: ['./x:/x']\n", "mounts host path './x'"),
    ("    runtime: runc\n", "duplicate key 'runtime'"),
])
def test_undeclared_powers_are_refused(tmp_path: Path, extra: str, error: str) -> None:
    package = load_package(write(tmp_path, GOOD, template=TEMPLATE + extra))
    with pytest.raises(InputError, match=error):
        render_compose(context(package))


def test_declared_powers_and_paths_render(tmp_path: Path) -> None:
    text = GOOD + "privileges: [devices]\nhost_paths: [/dev/video0, /etc/nv_tegra_release]\n"
    template = TEMPLATE + ("    devices: [/dev/video0]\n    volumes:\n"
                           "      - /etc/nv_tegra_release:/etc/nv_tegra_release:ro\n"
                           "      - {{ data_dir ~ ':/data' }}\n      - models:/models\n")
    package = load_package(write(tmp_path, text, template=template))
    service = yaml.safe_load(render_compose(context(package)))["services"]["demo"]
    assert service["devices"] == ["/dev/video0"] and len(service["volumes"]) == 3


def test_a_quoted_value_in_a_template_is_an_error_that_says_why(tmp_path: Path) -> None:
    template = TEMPLATE + '    command: ["serve", "{{ service_address }}"]\n'
    package = load_package(write(tmp_path, GOOD, template=template))
    with pytest.raises(InputError, match=r"values render as quoted YAML scalars"):
        render_compose(context(package))


@pytest.mark.parametrize(("compose", "error"), [
    ("../elsewhere.j2", "is outside the package folder"),
    ("/etc/passwd", "is outside the package folder"),
])
def test_compose_stays_inside_the_package_folder(tmp_path: Path, compose: str,
                                                 error: str) -> None:
    (tmp_path / "elsewhere.j2").write_text(TEMPLATE)
    path = write(tmp_path, GOOD + f"compose: {compose}\n")
    with pytest.raises(InputError, match=error):
        load_package(path)
