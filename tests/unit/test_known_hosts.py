"""Reading known_hosts: plain names found by a dict lookup, hashed ones by their HMAC,
every key a host has of a type accepted (a key being rotated), a port in brackets."""

import base64
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetctl.ssh import _load_known_hosts


def public_key() -> tuple[str, paramiko.PKey]:
    """A new ed25519 host key: its known_hosts text and paramiko's key."""
    text = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    kind, data = text.split()
    return text, paramiko.PKey.from_type_string(kind, base64.b64decode(data))


def test_plain_hashed_rotated_and_bracketed_entries(tmp_path: Path) -> None:
    (a_text, a_key), (b_text, b_key), (new_text, new_key), (c_text, c_key) = (
        public_key() for _ in range(4))
    hashed = paramiko.HostKeys.hash_host("10.0.0.2")
    known = tmp_path / "known_hosts"
    known.write_text(f"10.0.0.1 {a_text}\n"
                     f"{hashed} {b_text}\n"
                     f"10.0.0.1,jetson-a1 {new_text}\n"      # a second key while rotating
                     f"[10.0.0.3]:2222 {c_text}\n"
                     "# a comment\n")
    keys = _load_known_hosts((str(known), str(tmp_path / "missing")))
    assert keys.problems == ()
    assert keys.lookup("10.0.0.1") == {"ssh-ed25519": [a_key, new_key]}
    assert keys.lookup("jetson-a1") == {"ssh-ed25519": [new_key]}
    assert keys.lookup("10.0.0.2") == {"ssh-ed25519": [b_key]}
    assert keys.lookup("[10.0.0.3]:2222") == {"ssh-ed25519": [c_key]}
    assert keys.lookup("10.0.0.3") is None
    assert keys.lookup("10.0.0.9") is None


def test_lines_that_are_not_host_keys_are_named(tmp_path: Path) -> None:
    text, _ = public_key()
    known = tmp_path / "known_hosts"
    known.write_text(f"10.0.0.1 {text}\n10.0.0.2 ssh-ed25519 not-base64!\njunk\n")
    keys = _load_known_hosts((str(known),))
    assert keys.problems == (f"{known}: 2 line(s) are not host keys",)
    assert keys.lookup("10.0.0.1") is not None


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    """A long-lived process (a dashboard, the test suite around a lab that was rebuilt)
    sees a host's new key once the file changes."""
    import os

    import paramiko

    known = tmp_path / "known_hosts"
    old, new = paramiko.RSAKey.generate(1024), paramiko.RSAKey.generate(1024)
    known.write_text(f"10.0.0.5 ssh-rsa {old.get_base64()}\n")
    assert _load_known_hosts((str(known),)).lookup("10.0.0.5")["ssh-rsa"] == [old]
    known.write_text(f"10.0.0.5 ssh-rsa {new.get_base64()}\n")
    stat = known.stat()
    os.utime(known, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert _load_known_hosts((str(known),)).lookup("10.0.0.5")["ssh-rsa"] == [new]
