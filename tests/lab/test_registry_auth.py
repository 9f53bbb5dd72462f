"""The registry client against registries that ask for credentials.

Token auth (Docker Hub's flow: 401 with a Bearer challenge, a token from the
realm, the request again) anonymous and with a login, and basic auth, each on
a real docker-registry serving the lab's images.
"""

import json
from pathlib import Path

import pytest
import yaml

from fleetctl.catalog.registry import RegistryClient, RegistryError
from fleetctl.state import StateDB

from ..conftest import Lab, fleetctl
from .auth_registry import TokenIssuer, auth_registry, docker_config, htpasswd_config

TOKEN_ADDR = "127.0.0.1:5001"
BASIC_ADDR = "127.0.0.1:5002"
USERS = {"fleet": "s3cret-pass"}
TAG = "0.6.8-r36.4.0-cu126-22.04"


@pytest.fixture
def no_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty Docker config: no credentials for any registry."""
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty"))


def login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: str, password: str) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config(tmp_path, registry, "fleet", password)))


def test_anonymous_bearer_token(lab: Lab, tmp_path: Path, no_login: None) -> None:
    pushed = lab.status["registry"]["images"]
    with TokenIssuer(tmp_path) as issuer, \
            auth_registry(tmp_path, TOKEN_ADDR, issuer.auth_config()):
        client = RegistryClient(TOKEN_ADDR, StateDB(tmp_path))
        tags = client.tags("dustynv/ollama")
        images = client.images_of("dustynv/ollama", tags)
    assert {k.split(":", 1)[1] for k in pushed if k.startswith("dustynv/ollama:")} == set(tags)
    assert pushed[f"dustynv/ollama:{TAG}"] in {i.digest for i in images}
    assert issuer.issued == 1       # one token per repository, reused for every request


def test_bearer_token_with_a_docker_login(lab: Lab, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pushed = lab.status["registry"]["images"]
    with TokenIssuer(tmp_path, USERS) as issuer, \
            auth_registry(tmp_path, TOKEN_ADDR, issuer.auth_config()):
        login(tmp_path, monkeypatch, TOKEN_ADDR, USERS["fleet"])
        [image] = RegistryClient(TOKEN_ADDR).images("dustynv/ollama", TAG)
        assert image.digest == pushed[f"dustynv/ollama:{TAG}"]
        login(tmp_path, monkeypatch, TOKEN_ADDR, "wrong-pass")
        with pytest.raises(RegistryError) as refused:
            RegistryClient(TOKEN_ADDR).tags("dustynv/ollama")
    assert str(refused.value) == (f"registry {TOKEN_ADDR}: token refused (HTTP 401); "
                                  f"check 'docker login'")
    assert "wrong-pass" not in str(refused.value)
    assert (issuer.issued, issuer.refused) == (1, 1)


def test_basic_auth(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pushed = lab.status["registry"]["images"]
    (tmp_path / "empty").mkdir()
    with auth_registry(tmp_path, BASIC_ADDR, htpasswd_config(tmp_path, USERS)):
        login(tmp_path, monkeypatch, BASIC_ADDR, USERS["fleet"])
        [image] = RegistryClient(BASIC_ADDR).images("dustynv/ollama", TAG)
        assert image.digest == pushed[f"dustynv/ollama:{TAG}"]
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty"))
        with pytest.raises(RegistryError, match=f"wants a login; run 'docker login "
                                                f"{BASIC_ADDR}' on the controller"):
            RegistryClient(BASIC_ADDR).tags("dustynv/ollama")
        login(tmp_path, monkeypatch, BASIC_ADDR, "wrong-pass")
        with pytest.raises(RegistryError, match=r"credentials refused \(HTTP 401\)"):
            RegistryClient(BASIC_ADDR).tags("dustynv/ollama")


def test_plan_through_a_token_registry_mirror(lab: Lab, tmp_path: Path) -> None:
    """`fleetctl plan` with the site mirror behind token auth and the login in DOCKER_CONFIG."""
    inventory = yaml.safe_load(Path(lab.status["inventory"]).read_text())
    inventory["all"]["vars"]["fleetctl_registry_mirror"] = TOKEN_ADDR
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    config = docker_config(tmp_path, TOKEN_ADDR, "fleet", USERS["fleet"])
    with TokenIssuer(tmp_path, USERS) as issuer, \
            auth_registry(tmp_path, TOKEN_ADDR, issuer.auth_config()):
        result = fleetctl("plan", "ollama:0.6.8", "--limit", "jetson-a1", "--format", "json",
                          "-i", str(tmp_path / "inventory.yml"), "--state-dir", str(tmp_path),
                          env={"DOCKER_CONFIG": str(config)})
    [entry] = json.loads(result.stdout)["entries"]
    digest = lab.status["registry"]["images"][f"dustynv/ollama:{TAG}"]
    assert entry["target"] == f"{TOKEN_ADDR}/dustynv/ollama@{digest}"
    assert issuer.issued >= 1
