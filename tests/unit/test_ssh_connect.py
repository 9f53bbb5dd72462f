"""connect() against a real SSH server (paramiko's, on loopback) that drops the TCP
connection while the client logs in, as a Jetson does when it reboots under us: the
caller gets an SSHFailure it can retry, never a raw socket error."""

import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from fleetctl.inventory.targets import Target
from fleetctl.ssh import HostKeyPolicy, SSHFailure, connect


class ResetAtLogin(paramiko.ServerInterface):
    """Answers the handshake, then resets the connection when a key is offered."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        # SO_LINGER 0: close() sends RST, the client's recv() fails with ECONNRESET
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        return paramiko.AUTH_FAILED


@pytest.fixture
def resetting_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """Port of a server that resets at login, and a known_hosts file that trusts it."""
    host_key = paramiko.RSAKey.generate(2048)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key.get_name()} {host_key.get_base64()}\n")

    def serve() -> None:
        sock, _ = listener.accept()
        transport = paramiko.Transport(sock)
        transport.add_server_key(host_key)
        transport.start_server(server=ResetAtLogin(sock))
        transport.join(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, known
    listener.close()
    thread.join(10)


def test_a_connection_reset_while_logging_in_is_an_ssh_failure(
        resetting_server: tuple[int, Path], tmp_path: Path) -> None:
    port, known = resetting_server
    key = tmp_path / "id_rsa"
    paramiko.RSAKey.generate(2048).write_private_key_file(str(key))
    target = Target("jetson-x", "127.0.0.1", port, "root", str(key), (str(known),))
    with pytest.raises(SSHFailure) as failure:
        connect(target, policy=HostKeyPolicy("strict"), timeout=5)
    assert failure.value.reason == "ssh failed"
    assert "127.0.0.1 dropped the connection while we logged in" in failure.value.detail
