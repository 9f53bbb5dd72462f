"""The package catalog: the shipped packages load, bad package.yml files fail with
file:line, dependencies resolve in order, templates render strictly."""

from pathlib import Path

import pytest
import yaml

from fleetctl.catalog.compose import LABEL_PACKAGE, LABEL_RELEASE, RenderContext, render_compose
from fleetctl.catalog.packages import Catalog, Request, load_catalog, load_package, parse_request
from fleetctl.errors import InputError

SHIPPED = Path(__file__).resolve().parents[2] / "packages"
GOOD = """\
name: demo
image: dustynv/demo
versions:
  - version: "1.0"
    default: true
  - "0.9"
requires: [">=r36", ">=cu126"]
health:
  http: "http://{{ check_address }}:80/"
  interval: 2s
"""
TEMPLATE = "services:\n  demo:\n    image: {{ image }}\n    runtime: nvidia\n"


def write(tmp_path: Path, text: str, name: str = "demo", template: str = TEMPLATE) -> Path:
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    (folder / "compose.yml.j2").write_text(template)
    path = folder / "package.yml"
    path.write_text(text)
    return path


def test_shipped_catalog_loads_with_the_required_packages() -> None:
    catalog = load_catalog(SHIPPED)
    assert {"ollama", "open-webui", "llama-cpp", "l4t-pytorch"} <= set(catalog.packages)
    assert catalog.get("ollama").image == "dustynv/ollama"
    assert catalog.get("webui").name == "open-webui"        # alias
    assert catalog.get("open-webui").depends == ("ollama",)
    assert catalog.get("ollama").health.http.endswith(":11434/api/version")


def test_good_package(tmp_path: Path) -> None:
    package = load_package(write(tmp_path, GOOD))
    assert (package.default, package.versions) == ("1.0", ("1.0", "0.9"))
    assert package.health.interval == 2.0


@pytest.mark.parametrize(("text", "line", "message"), [
    (GOOD + "colour: red\n", 11, "unknown key 'colour'"),
    (GOOD.replace('    default: true\n', ''), 3, "exactly one version must be 'default: true'"),
    (GOOD.replace('">=cu126"', '">=banana"'), 7, "requires '>=banana'"),
    (GOOD.replace("interval: 2s", "interval: soon"), 10, "health.interval 'soon'"),
    (GOOD.replace("name: demo", "name: other"), 1, "differs from its folder"),
    (GOOD.replace("image: dustynv/demo\n", ""), 1, "missing key 'image'"),
    (GOOD + "ports: [80, http]\n", 11, "ports must be a list of port numbers"),
    (GOOD + "compose: missing.j2\n", 11, "compose template"),
    (GOOD + "resources: {min_memory: lots}\n", 11, "resources.min_memory 'lots'"),
])
def test_bad_package_names_file_and_line(tmp_path: Path, text: str, line: int,
                                         message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_package(path)
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert message in str(err.value)


def catalog_of(tmp_path: Path, depends: dict[str, list[str]]) -> Catalog:
    for name, deps in depends.items():
        write(tmp_path, GOOD.replace("demo", name) + f"depends: {deps}\n", name)
    return load_catalog(tmp_path)


def test_dependencies_come_first_and_a_tagged_request_wins(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, {"ui": ["server"], "server": ["base"], "base": []})
    order = catalog.resolve([Request("ui"), Request("server", "0.9")])
    assert [(p.name, v) for p, v in order] == [("base", None), ("server", "0.9"), ("ui", None)]


def test_conflicting_versions_are_an_error(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, {"ui": ["server:1.0"], "server": []})
    with pytest.raises(InputError, match=r"conflicting versions of server: 0.9 and 1.0"):
        catalog.resolve([Request("server", "0.9"), Request("ui")])


def test_a_cycle_is_shown(tmp_path: Path) -> None:
    catalog = catalog_of(tmp_path, {"a": ["b"], "b": ["c"], "c": ["a"]})
    with pytest.raises(InputError, match=r"dependency cycle: a -> b -> c -> a"):
        catalog.resolve([Request("a")])


def test_unknown_package_lists_the_catalog() -> None:
    with pytest.raises(InputError, match=r"no package 'olama' .*ollama"):
        load_catalog(SHIPPED).get("olama")


def test_parse_request() -> None:
    assert parse_request("ollama:0.6.8") == Request("ollama", "0.6.8")
    assert parse_request("ollama") == Request("ollama", None)


def context(package, **extra) -> RenderContext:
    values = dict(package=package, version="0.6.8", release="20261122T101500-ab12",
                  image="127.0.0.1:5000/dustynv/ollama@sha256:" + "1" * 64, host="jetson-a1",
                  service_address="0.0.0.0", facts={"cuda": "12.6"}, vars={})
    values.update(extra)
    return RenderContext(**values)


def test_ollama_template_renders_house_style() -> None:
    package = load_catalog(SHIPPED).get("ollama")
    doc = yaml.safe_load(render_compose(context(package)))
    service = doc["services"]["ollama"]
    assert service["image"].endswith("@sha256:" + "1" * 64)
    assert (service["runtime"], service["network_mode"], service["restart"]) == (
        "nvidia", "host", "unless-stopped")
    assert service["command"] == ["ollama", "serve"]
    assert "/etc/nv_tegra_release:/etc/nv_tegra_release:ro" in service["volumes"]
    assert "/opt/fleetctl/ollama/data:/data" in service["volumes"]
    assert service["environment"]["OLLAMA_HOST"] == "0.0.0.0:11434"
    assert service["environment"]["OLLAMA_LLM_LIBRARY"] == "cuda_v12"
    assert service["labels"][LABEL_PACKAGE] == "ollama"
    assert service["labels"][LABEL_RELEASE] == "20261122T101500-ab12"


def test_every_shipped_template_renders() -> None:
    for package in load_catalog(SHIPPED).packages.values():
        assert "services" in yaml.safe_load(render_compose(context(package)))


def test_missing_variable_is_named(tmp_path: Path) -> None:
    package = load_package(write(tmp_path, GOOD, template=TEMPLATE + "    user: {{ owner }}\n"))
    with pytest.raises(InputError, match=r"compose.yml.j2: 'owner' is undefined"):
        render_compose(context(package))


def test_sandbox_refuses_unsafe_access(tmp_path: Path) -> None:
    evil = TEMPLATE + "    x: {{ image.__class__.__mro__[1].__subclasses__() }}\n"
    package = load_package(write(tmp_path, GOOD, template=evil))
    with pytest.raises(InputError, match=r"compose.yml.j2"):
        render_compose(context(package))


def test_template_must_use_the_planned_image(tmp_path: Path) -> None:
    fixed = TEMPLATE.replace("{{ image }}", "dustynv/demo:latest")
    package = load_package(write(tmp_path, GOOD, template=fixed))
    with pytest.raises(InputError, match=r"no service uses the planned image"):
        render_compose(context(package))


def test_the_shipped_catalog_is_found_from_any_folder(tmp_path: Path, monkeypatch) -> None:
    from fleetctl.catalog.packages import default_catalog_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEETCTL_PACKAGES", raising=False)
    assert default_catalog_dir().resolve() == SHIPPED
