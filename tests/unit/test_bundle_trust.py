"""Bundles fail closed: attackers' bundles are real signed tar files, made by
fleetctl's own ``bundle.create`` and then changed the way an attacker would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleetctl.delivery import bundle
from fleetctl.delivery.bundle import BundleError
from fleetctl.delivery.keys import load_public_keys
from fleetctl.state import StateDB

from ..trustkit import huge_member_tar, keypair, make_bundle, members, sha, sign, write_tar

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetctl", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, dict, Path]:
    """(a signed bundle, the trusted keys, the signer's public key file)."""
    key, public = keypair(tmp_path)
    return make_bundle(tmp_path / "ok.bundle", key), load_public_keys([public]), public


def bytes_read() -> int:
    """Bytes this process has read so far (Linux's count of read() calls)."""
    with open("/proc/self/io") as io:
        return int(next(line for line in io if line.startswith("rchar:")).split()[1])


def unpack_dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "state" / "bundles" / "x", tmp_path / "state" / "blobs"


def leftovers(tmp_path: Path) -> list[Path]:
    """Files an unpack left behind in the state dir."""
    state = tmp_path / "state"
    return [p for p in state.rglob("*") if p.is_file()] if state.exists() else []


def test_a_good_bundle_unpacks_into_the_blob_store(tmp_path: Path, signed) -> None:
    path, trusted, _ = signed
    checked = bundle.verify(path, trusted, unpack_dirs(tmp_path))
    blobs = sorted(p.name for p in (tmp_path / "state/blobs/sha256").iterdir())
    assert blobs == sorted(d.hex for i in checked.images.values()
                           for d in (i.manifest, i.config, *i.layers))
    assert (unpack_dirs(tmp_path)[0] / "playbook.yml").read_bytes() == b"name: test\n"


def test_no_trusted_key_refuses_and_says_how_to_trust_one(tmp_path: Path, signed) -> None:
    path, _, _ = signed
    result = cli("bundle", "verify", str(path), "--state-dir", str(tmp_path / "empty"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "no trusted keys" in result.stderr and "fleetctl keys trust KEY.pub" in result.stderr


def test_a_changed_manifest_is_refused_with_or_without_keys(tmp_path: Path, signed) -> None:
    path, trusted, _ = signed
    entries = [(m.name, data) for m, data in members(path)]
    doc = json.loads(entries[0][1])
    doc["name"] = "evil"
    entries[0] = ("manifest.json", json.dumps(doc).encode())
    changed = write_tar(tmp_path / "changed.bundle", entries)
    with pytest.raises(BundleError, match="the signature does not match"):
        bundle.verify(changed, trusted)
    with pytest.raises(BundleError, match="no trusted keys"):
        bundle.verify(changed, {})
    run = cli("run", "--bundle", str(changed), "--state-dir", str(tmp_path / "s"))
    assert run.returncode == 2 and "no trusted keys" in run.stderr and "probe" not in run.stdout


def test_an_unsigned_bundle_is_refused(tmp_path: Path, signed) -> None:
    path, trusted, _ = signed
    entries = [(m.name, data) for m, data in members(path) if m.name != "manifest.sig"]
    with pytest.raises(BundleError, match="unsigned"):
        bundle.verify(write_tar(tmp_path / "unsigned.bundle", entries), trusted)


def test_a_huge_manifest_is_refused_before_it_is_read(tmp_path: Path, signed) -> None:
    _, trusted, _ = signed
    bomb = huge_member_tar(tmp_path / "bomb.bundle", [], "manifest.json", 16 * 2**30)
    assert bomb.stat().st_blocks * 512 < 2**20        # sparse: 16 GiB claimed, KBs on disk
    before = bytes_read()
    with pytest.raises(BundleError, match="17,179,869,184 bytes, more than the"):
        bundle.verify(bomb, trusted)
    assert bytes_read() - before < 2**20               # the tar header, not the member


def test_a_signed_bundle_with_a_member_swapped_for_a_huge_one(tmp_path: Path, signed) -> None:
    path, trusted, _ = signed
    entries = [(m.name, data) for m, data in members(path)]
    layer = max((e for e in entries if e[0].startswith("blobs/")), key=lambda e: len(e[1]))
    rest = [e for e in entries if e[0] != layer[0]]
    swapped = huge_member_tar(tmp_path / "swapped.bundle", rest, layer[0], 8 * 2**30)
    with pytest.raises(BundleError, match=r"is 8,589,934,592 bytes, the manifest says 1,200"):
        bundle.verify(swapped, trusted, unpack_dirs(tmp_path))
    assert not unpack_dirs(tmp_path)[0].exists()
    assert [p.name for p in leftovers(tmp_path)] == [] or all(
        not p.name.endswith(".part") for p in leftovers(tmp_path))


def test_other_bytes_under_a_listed_blob_name_never_reach_the_store(tmp_path: Path,
                                                                    signed) -> None:
    """A trusted signer's manifest lists a blob by its digest; the tar carries other
    bytes of the same size under that name: the store keeps nothing."""
    path, trusted, _ = signed
    entries = [(m.name, data) for m, data in members(path)]
    index, (name, data) = max(((i, e) for i, e in enumerate(entries)
                               if e[0].startswith("blobs/")), key=lambda x: len(x[1][1]))
    entries[index] = (name, b"X" * len(data))
    tampered = write_tar(tmp_path / "tampered.bundle", entries)
    with pytest.raises(BundleError, match="does not match its sha256 in the manifest"):
        bundle.verify(tampered, trusted, unpack_dirs(tmp_path))
    assert not (tmp_path / "state/blobs/sha256" / name.rsplit("/", 1)[1]).exists()
    assert not any(p.name.endswith(".part") for p in leftovers(tmp_path))


def test_a_member_the_manifest_does_not_list_is_refused(tmp_path: Path, signed) -> None:
    """An extra file slipped into a signed bundle (a compose file that would be
    deployed, say) is refused and nothing is unpacked."""
    path, trusted, _ = signed
    entries = [(m.name, data) for m, data in members(path)]
    extra = write_tar(tmp_path / "extra.bundle",
                      [*entries, ("packages/ollama/compose.yml.j2", b"services: {}\n")])
    with pytest.raises(BundleError, match=r"packages/ollama/compose.yml.j2 is not in the "
                                          r"manifest"):
        bundle.verify(extra, trusted, unpack_dirs(tmp_path))
    assert not unpack_dirs(tmp_path)[0].exists()


def test_a_member_the_manifest_lists_but_the_bundle_lacks_is_refused(tmp_path: Path,
                                                                     signed) -> None:
    path, trusted, _ = signed
    entries = [(m.name, data) for m, data in members(path)]
    dropped = next(name for name, _ in entries if name.startswith("blobs/"))
    short = write_tar(tmp_path / "short.bundle", [e for e in entries if e[0] != dropped])
    with pytest.raises(BundleError, match=rf"{dropped} is missing; copy the bundle again"):
        bundle.verify(short, trusted, unpack_dirs(tmp_path))
    assert not unpack_dirs(tmp_path)[0].exists()


def signed_with_manifest(tmp_path: Path, key, change) -> Path:
    """A bundle whose manifest ``change`` rewrote, signed again by ``key`` (a trusted
    signer gone rogue, or a stolen key: the manifest itself is the attack)."""
    source = make_bundle(tmp_path / "base.bundle", key)
    entries = [(m.name, data) for m, data in members(source)]
    doc = json.loads(entries[0][1])
    change(doc)
    manifest = json.dumps(doc).encode()
    entries[0:2] = [("manifest.json", manifest), ("manifest.sig", sign(key, manifest))]
    return write_tar(tmp_path / "rogue.bundle", entries)


def test_a_path_in_a_digest_is_refused_naming_the_field(tmp_path: Path) -> None:
    key, public = keypair(tmp_path)

    def traverse(doc: dict) -> None:
        image = next(iter(doc["images"].values()))
        image["layers"] = ["sha256:../../../../tmp/x"]
    rogue = signed_with_manifest(tmp_path, key, traverse)
    with pytest.raises(BundleError, match=r"images\..*\.layers: 'sha256:../../../../tmp/x' "
                                          r"is not a digest"):
        bundle.verify(rogue, load_public_keys([public]), unpack_dirs(tmp_path))
    assert leftovers(tmp_path) == []


def test_a_member_outside_the_bundle_folder_is_refused(tmp_path: Path) -> None:
    key, public = keypair(tmp_path)

    def escape(doc: dict) -> None:
        doc["members"]["../../escaped"] = {"sha256": sha(b"x")[7:], "size": 1}
    rogue = signed_with_manifest(tmp_path, key, escape)
    with pytest.raises(BundleError, match="is not a plain relative path"):
        bundle.verify(rogue, load_public_keys([public]), unpack_dirs(tmp_path))


@pytest.mark.parametrize(("change", "error"), [
    (lambda d: d.pop("members"), "members: expected an object"),
    (lambda d: d.update(members=[]), "members: expected an object"),
    (lambda d: d.pop("name"), "name: expected a non-empty string"),
    (lambda d: d.update(images=5), "images: expected an object"),
    (lambda d: d.update(sequence="7"), "sequence: expected a whole number"),
    (lambda d: d.update(expires="soon"), "expires: expected an ISO 8601 time"),
    (lambda d: d.pop("channel"), "channel: expected a non-empty string"),
])
def test_a_manifest_of_the_wrong_shape_is_one_clear_error(tmp_path: Path, change,
                                                          error: str) -> None:
    key, public = keypair(tmp_path)
    rogue = signed_with_manifest(tmp_path, key, change)
    with pytest.raises(BundleError, match=error):
        bundle.verify(rogue, load_public_keys([public]))


def test_a_signature_of_the_wrong_shape_is_refused(tmp_path: Path, signed) -> None:
    path, trusted, _ = signed
    entries = [(m.name, data) for m, data in members(path)]
    entries[1] = ("manifest.sig", b'{"signature": 123, "key": 5}')
    with pytest.raises(BundleError, match=r"manifest\.sig is damaged"):
        bundle.verify(write_tar(tmp_path / "sig.bundle", entries), trusted)


def test_an_older_sequence_on_the_channel_is_a_replay(tmp_path: Path) -> None:
    key, public = keypair(tmp_path)
    trusted = load_public_keys([public])
    db = StateDB(tmp_path / "state")
    newer = bundle.verify(make_bundle(tmp_path / "new.bundle", key, sequence=200), trusted)
    older = bundle.verify(make_bundle(tmp_path / "old.bundle", key, sequence=100), trusted)
    other = bundle.verify(make_bundle(tmp_path / "lts.bundle", key, sequence=100,
                                      channel="lts"), trusted)
    assert bundle.check_fresh(db, older, False) is None     # nothing accepted yet
    bundle.accept(db, newer)
    with pytest.raises(BundleError, match="sequence 100 on channel 'default' is older than "
                                          "200"):
        bundle.check_fresh(db, older, False)
    assert "allowed with --allow-downgrade" in bundle.check_fresh(db, older, True)
    assert bundle.check_fresh(db, other, False) is None     # channels are separate
    assert bundle.check_fresh(db, newer, False) is None     # the same one again: a resume
    bundle.accept(db, older)                                # never lowers the mark
    with pytest.raises(BundleError, match="older than 200"):
        bundle.check_fresh(db, older, False)


def test_an_expired_bundle_is_refused(tmp_path: Path) -> None:
    key, public = keypair(tmp_path)
    stale = make_bundle(tmp_path / "stale.bundle", key, expires_in=-60)
    result = cli("bundle", "verify", str(stale), "--trust", str(public), "--state-dir",
                 str(tmp_path / "state"))
    assert result.returncode == 2 and "expired on" in result.stderr
    assert "--allow-downgrade" in result.stderr
    allowed = cli("bundle", "verify", str(stale), "--trust", str(public), "--state-dir",
                  str(tmp_path / "state"), "--allow-downgrade")
    assert allowed.returncode == 0, allowed.stderr
