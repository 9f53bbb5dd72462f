"""Ansible Vault: files and ``!vault`` values encrypted by ``ansible-vault``, opened with
the vault password (``--vault-password-file``, ``$FLEETCTL_VAULT_PASSWORD_FILE``, else
Ansible's own ``$ANSIBLE_VAULT_PASSWORD_FILE``).

The format (version 1.1 and 1.2, AES256): a ``$ANSIBLE_VAULT;1.1;AES256[;label]`` line,
then hex of ``hex(salt) \\n hex(hmac) \\n hex(ciphertext)``; PBKDF2-HMAC-SHA256 (10,000
iterations) of the password and salt gives 80 bytes: the AES-256-CTR key, the HMAC-SHA256
key and the counter's start. The HMAC is checked before anything is decrypted, with the
cryptography library. Every value opened is registered as a secret (see
:mod:`fleetctl.secrets`): it never reaches logs, the journal or errors.
"""

from __future__ import annotations

import binascii
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from fleetctl import secrets
from fleetctl.errors import InputError

HEADER = "$ANSIBLE_VAULT;"
PASSWORD_ENV = ("FLEETCTL_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE")
#: the largest password file (or password program output) read
MAX_PASSWORD = 64 * 2**10


@dataclass(frozen=True)
class Vaulted:
    """A ``!vault`` value not opened (no password was given); ``where`` it was written."""

    envelope: str
    where: str

    def __str__(self) -> str:
        raise InputError(f"{self.where}: this value is vaulted; pass --vault-password-file "
                         f"or set {PASSWORD_ENV[0]}")


def is_vaulted(text: str) -> bool:
    """Whether ``text`` is an ansible-vault envelope."""
    return text.lstrip().startswith(HEADER)


@dataclass(frozen=True)
class Vault:
    """The vault password; opens envelopes."""

    password: bytes
    source: str

    def open(self, envelope: str, where: str) -> str:
        """The plaintext of an envelope written at ``where``, registered as a secret;
        InputError when it is malformed or the password does not open it."""
        plain = decrypt(envelope, self.password, where, self.source).decode(errors="replace")
        secrets.register([plain])
        return plain


def decrypt(envelope: str, password: bytes, where: str, source: str = "the password") -> bytes:
    """Decrypt one ansible-vault envelope (InputError naming ``where`` otherwise)."""
    lines = envelope.strip().splitlines()
    header = lines[0].strip().split(";") if lines else []
    if len(header) < 3 or header[0] != HEADER[:-1] or header[1] not in ("1.1", "1.2"):
        raise InputError(f"{where}: not an ansible-vault 1.1 or 1.2 envelope")
    if header[2].strip() != "AES256":
        raise InputError(f"{where}: vault cipher {header[2]!r}; only AES256 is read")
    try:
        body = binascii.unhexlify("".join(line.strip() for line in lines[1:]))
        salt_hex, mac_hex, text_hex = body.split(b"\n", 2)
        salt, mac, ciphertext = (binascii.unhexlify(salt_hex), binascii.unhexlify(mac_hex),
                                 binascii.unhexlify(text_hex))
    except (binascii.Error, ValueError):
        raise InputError(f"{where}: the vault envelope is damaged (not hex); encrypt it "
                         f"again with ansible-vault") from None
    derived = PBKDF2HMAC(algorithm=hashes.SHA256(), length=80, salt=salt,
                         iterations=10_000).derive(password)
    key, mac_key, counter = derived[:32], derived[32:64], derived[64:]
    check = HMAC(mac_key, hashes.SHA256())
    check.update(ciphertext)
    try:
        check.verify(mac)
    except InvalidSignature:
        raise InputError(f"{where}: {source} does not open this vault (HMAC check failed); "
                         f"check the vault password") from None
    decryptor = Cipher(algorithms.AES(key), modes.CTR(counter)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(decryptor.update(ciphertext) + decryptor.finalize()) + \
            unpadder.finalize()
    except ValueError:
        raise InputError(f"{where}: the vault's padding is damaged; encrypt it again with "
                         f"ansible-vault") from None


def load_vault(password_file: Path | None = None) -> Vault | None:
    """The vault of ``password_file``, else of the environment's password file, else None.
    An executable password file is run and its output is the password, as in Ansible."""
    if password_file is None:
        named = next((os.environ[v] for v in PASSWORD_ENV if os.environ.get(v)), None)
        if named is None:
            return None
        password_file = Path(named).expanduser()
    try:
        if os.access(password_file, os.X_OK) and password_file.is_file():
            run = subprocess.run([str(password_file)], capture_output=True, timeout=60,
                                 stdin=subprocess.DEVNULL)
            if run.returncode:
                raise InputError(f"{password_file}: the vault password program exited with "
                                 f"status {run.returncode}")
            data = run.stdout[:MAX_PASSWORD + 1]
        else:
            with password_file.open("rb") as f:
                data = f.read(MAX_PASSWORD + 1)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"{password_file}: cannot read the vault password: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    if len(data) > MAX_PASSWORD:
        raise InputError(f"{password_file}: larger than a vault password file can be")
    password = data.strip()
    if not password:
        raise InputError(f"{password_file}: the vault password file is empty")
    return Vault(password, f"the vault password from {password_file}")
