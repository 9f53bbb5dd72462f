"""Signed bundles on the lab: created from a playbook against the lab registry, verified,
and refused when a byte changed, when unsigned under a trust key, or signed by a stranger."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from ..conftest import ROOT, Lab, fleetctl
from ..trustkit import strip_signature

STACK = ROOT / "playbooks" / "ota-webui-stack.yml"


@pytest.fixture(scope="module")
def work(lab: Lab, tmp_path_factory) -> Path:
    """Keys, a signed and an unsigned bundle of the OTA stack playbook."""
    work = tmp_path_factory.mktemp("bundle")
    for name in ("site", "next-site", "stranger"):
        fleetctl("keys", "generate", name, "--dir", str(work))
    common = ["-i", lab.status["inventory"], "--state-dir", str(work / "state")]
    fleetctl("bundle", "create", str(STACK), "--out", str(work / "signed.bundle"),
             "--sign-key", str(work / "site.key"), *common)
    strip_signature(work / "signed.bundle", work / "unsigned.bundle")
    fleetctl("bundle", "create", str(STACK), "--out", str(work / "next.bundle"),
             "--sign-key", str(work / "next-site.key"), *common)
    return work


def verify(work: Path, bundle: str, *trust: str, state: str = "state"):
    args = [a for key in trust for a in ("--trust", str(work / f"{key}.pub"))]
    return fleetctl("bundle", "verify", str(work / bundle), "--state-dir", str(work / state),
                    *args, check=False)


def test_bundle_holds_the_plans_images_each_blob_once(lab: Lab, work: Path) -> None:
    result = verify(work, "signed.bundle", "site")
    assert result.returncode == 0, result.stderr
    assert "every member matches its sha256; signed by trusted key" in result.stdout
    with tarfile.open(work / "signed.bundle") as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
        plan = json.loads(tar.extractfile("plan.json").read())
        for name in names:
            if name.startswith("blobs/sha256/"):     # content-addressed: name = sha256
                data = tar.extractfile(name).read()
                assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    targets = {e["target"] for e in plan["entries"] if e["action"] != "blocked" and e["target"]}
    assert set(manifest["images"]) == targets and len(targets) == 3
    pushed = set(lab.status["registry"]["images"].values())
    wanted = {d for image in manifest["images"].values()
              for d in (image["manifest"], image["config"], *image["layers"])}
    assert sorted(n for n in names if n.startswith("blobs/")) == sorted(
        f"blobs/sha256/{d.split(':')[1]}" for d in wanted)          # each blob once
    assert len(wanted) < sum(2 + len(i["layers"]) for i in manifest["images"].values())
    ollama = {r.rpartition("@")[2] for r in targets if "/dustynv/ollama@" in r}
    assert ollama and ollama <= pushed      # the very manifests the lab pushed
    assert names[:2] == ["manifest.json", "manifest.sig"]
    assert {"playbook.yml", "plan.json", "packages/ollama/package.yml",
            "packages/open-webui/compose.yml.j2"} <= set(names)


def flip_byte(source: Path, dest: Path, member: str, at: int = 10) -> None:
    """Copy the bundle with one byte of ``member``'s data changed."""
    shutil.copyfile(source, dest)
    with tarfile.open(source) as tar:
        offset = tar.getmember(member).offset_data + at
    with dest.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


@pytest.mark.parametrize(("member", "why"), [
    ("blob", "does not match its sha256 in the manifest; the bundle was changed or damaged"),
    ("playbook.yml", "playbook.yml does not match its sha256"),
    ("manifest.json", "the signature does not match: the bundle changed after it was signed"),
])
def test_one_changed_byte_is_refused(work: Path, member: str, why: str) -> None:
    with tarfile.open(work / "signed.bundle") as tar:
        layer = max((m for m in tar if m.name.startswith("blobs/")), key=lambda m: m.size)
    name = layer.name if member == "blob" else member
    flip_byte(work / "signed.bundle", work / "tampered.bundle", name,
              at=layer.size // 2 if member == "blob" else 10)
    result = verify(work, "tampered.bundle", "site")
    assert result.returncode == 2
    assert why in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unsigned_or_unchecked_bundles_are_refused(work: Path) -> None:
    nothing_trusted = verify(work, "signed.bundle", state="untrusting")
    assert nothing_trusted.returncode == 2
    assert "no trusted keys" in nothing_trusted.stderr
    assert "fleetctl keys trust KEY.pub" in nothing_trusted.stderr
    refused = verify(work, "unsigned.bundle", "site")
    assert refused.returncode == 2
    assert "unsigned; only bundles signed by a trusted key are used" in refused.stderr


def test_key_rotation_with_trusted_keys_in_the_state_dir(work: Path) -> None:
    for key in ("site", "next-site"):
        fleetctl("keys", "trust", str(work / f"{key}.pub"), "--state-dir",
                 str(work / "rotating"))
    assert verify(work, "signed.bundle", state="rotating").returncode == 0
    assert verify(work, "next.bundle", state="rotating").returncode == 0
    assert verify(work, "unsigned.bundle", state="rotating").returncode == 2
    stranger = verify(work, "signed.bundle", "stranger", state="nowhere")
    assert stranger.returncode == 2 and "which is not trusted" in stranger.stderr
