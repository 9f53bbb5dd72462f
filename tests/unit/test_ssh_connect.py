"""connect() against real SSH servers (paramiko's, on loopback): one that drops the TCP
connection while the client logs in, as a Jetson does when it reboots under us, and a
bastion that forwards to a target (ProxyJump), down or refusing."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
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


class Server(paramiko.ServerInterface):
    """Lets ``user`` in with ``key``; as a bastion, forwards direct-tcpip channels to
    ``forward_to`` (and records what was asked for)."""

    def __init__(self, user: str, key: paramiko.PKey, forward: bool) -> None:
        self.user, self.key, self.forward = user, key, forward
        self.logins: list[str] = []
        self.forwarded: list[tuple[str, int]] = []

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if username == self.user and key.get_base64() == self.key.get_base64():
            self.logins.append(username)
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_direct_tcpip_request(self, chanid: int, origin: tuple,
                                           destination: tuple) -> int:
        if not self.forward:
            return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        self.forwarded.append(destination)
        return paramiko.OPEN_SUCCEEDED


def accept(listener: socket.socket, host_key: paramiko.PKey,
           server: Callable[[socket.socket], paramiko.ServerInterface]) -> paramiko.Transport:
    """Accept one client and answer it as ``server(its socket)``."""
    sock, _ = listener.accept()
    transport = paramiko.Transport(sock)
    transport.add_server_key(host_key)
    transport.start_server(server=server(sock))
    return transport


def serve(listener: socket.socket, host_key: paramiko.PKey, server: Server) -> None:
    """Serve one client; relay each forwarded channel to its destination."""
    transport = accept(listener, host_key, lambda _: server)
    while transport.is_active():
        channel = transport.accept(1)
        if channel is None:
            continue
        upstream = socket.create_connection(server.forwarded[-1])
        for source, sink in ((channel, upstream), (upstream, channel)):
            threading.Thread(target=pipe, args=(source, sink), daemon=True).start()


def pipe(source, sink) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        sink.close()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[paramiko.RSAKey, Path]:
    key = paramiko.RSAKey.generate(2048)
    key.write_private_key_file(str(tmp_path / "id_rsa"))
    return key, tmp_path / "id_rsa"


def listen(tmp_path: Path, host_key: paramiko.PKey) -> tuple[socket.socket, int]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with (tmp_path / "known_hosts").open("a") as known:
        known.write(f"[127.0.0.1]:{port} {host_key.get_name()} {host_key.get_base64()}\n")
    return listener, port


def test_a_connection_reset_while_logging_in_is_an_ssh_failure(
        tmp_path: Path, keys: tuple[paramiko.RSAKey, Path]) -> None:
    host_key = paramiko.RSAKey.generate(2048)
    listener, port = listen(tmp_path, host_key)

    def reset_once() -> None:
        accept(listener, host_key, ResetAtLogin).join(10)

    thread = threading.Thread(target=reset_once, daemon=True)
    thread.start()
    target = Target("jetson-x", "127.0.0.1", port, "root", str(keys[1]),
                    (str(tmp_path / "known_hosts"),))
    with pytest.raises(SSHFailure) as failure:
        connect(target, policy=HostKeyPolicy("strict"), timeout=5)
    assert failure.value.reason == "ssh failed"
    assert "127.0.0.1 dropped the connection while we logged in" in failure.value.detail
    listener.close()
    thread.join(10)


@pytest.fixture
def bastion_and_target(tmp_path: Path, keys: tuple[paramiko.RSAKey, Path]
                       ) -> Iterator[tuple[Target, Server, Server]]:
    """A target that lets root in, behind a bastion that lets 'jump' in and forwards."""
    key, key_file = keys
    servers = {}
    for role, user in (("target", "root"), ("bastion", "jump")):
        host_key = paramiko.RSAKey.generate(2048)
        listener, port = listen(tmp_path, host_key)
        server = Server(user, key, forward=role == "bastion")
        threading.Thread(target=serve, args=(listener, host_key, server), daemon=True).start()
        servers[role] = (server, port, listener)
    known = (str(tmp_path / "known_hosts"),)
    jump = Target("bastion", "127.0.0.1", servers["bastion"][1], "jump", str(key_file), known)
    target = Target("jetson-x", "127.0.0.1", servers["target"][1], "root", str(key_file), known,
                    jump=(jump,))
    yield target, servers["bastion"][0], servers["target"][0]
    for _, _, listener in servers.values():
        listener.close()


def test_a_host_behind_a_bastion_is_reached_through_it(
        bastion_and_target: tuple[Target, Server, Server]) -> None:
    target, bastion, behind = bastion_and_target
    conn = connect(target, policy=HostKeyPolicy("strict"), timeout=5)
    try:
        assert conn.transport.is_authenticated()
        assert (bastion.logins, bastion.forwarded, behind.logins) == (
            ["jump"], [("127.0.0.1", target.port)], ["root"])
    finally:
        conn.close()
    assert conn.bastion is not None and not conn.bastion.transport.is_active()


def test_a_bastion_that_is_down_or_refuses_is_one_reason(
        bastion_and_target: tuple[Target, Server, Server], tmp_path: Path) -> None:
    target, bastion, _ = bastion_and_target
    closed = socket.create_server(("127.0.0.1", 0))
    down_port = closed.getsockname()[1]
    closed.close()
    down = Target(target.name, target.address, target.port, target.user, target.key_file,
                  target.known_hosts, jump=(Target("bastion", "127.0.0.1", down_port, "jump",
                                                   target.key_file, target.known_hosts),))
    with pytest.raises(SSHFailure) as failure:
        connect(down, policy=HostKeyPolicy("strict"), timeout=5)
    assert (failure.value.reason, failure.value.detail) == (
        "bastion refused", f"bastion (jump@127.0.0.1:{down_port}): nothing listens on "
                           f"127.0.0.1:{down_port}")
    bastion.forward = False
    with pytest.raises(SSHFailure) as refused:
        connect(target, policy=HostKeyPolicy("strict"), timeout=5)
    assert refused.value.reason == "bastion cannot forward"
    assert refused.value.detail.startswith(f"bastion could not reach 127.0.0.1:{target.port}")


def test_a_proxy_command_gets_inventory_values_as_one_word_each() -> None:
    """An address and a user from the inventory reach the ProxyCommand as one argument
    each, whatever they hold."""
    from fleetctl.ssh import _proxy_command

    target = Target("odd", "10.0.0.5; touch pwned", 2200, "ops user",
                    proxy_command="printf '%%s|' %h %p %r")
    proxy = _proxy_command(target)
    printed = proxy.process.stdout.read()       # all it printed, to its end
    proxy.close()
    assert printed == b"10.0.0.5; touch pwned|2200|ops user|"


class Printer(Server):
    """Runs ``print N``: once its stdin has ended, writes N bytes (every byte value in
    turn), exits with 7."""

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        size = int(command.split()[-1])
        threading.Thread(target=self._print, args=(channel, size), daemon=True).start()
        return True

    @staticmethod
    def _print(channel: paramiko.Channel, size: int) -> None:
        try:
            while not channel.eof_received:     # the client has had the exec reply
                time.sleep(0.01)
            channel.sendall((bytes(range(256)) * (size // 256 + 1))[:size])
            channel.send_exit_status(7)
        except OSError:
            pass                # the client stopped reading and closed the channel
        finally:
            channel.close()


def test_output_comes_back_byte_for_byte_and_a_flood_is_cut_at_the_limit(
        tmp_path: Path, keys: tuple[paramiko.RSAKey, Path]) -> None:
    key, key_file = keys
    host_key = paramiko.RSAKey.generate(2048)
    listener, port = listen(tmp_path, host_key)

    def serve_one() -> None:
        transport = accept(listener, host_key, lambda _: Printer("root", key, forward=False))
        channels = []                   # a channel dropped is closed by paramiko
        while transport.is_active():
            channels.append(transport.accept(1))

    threading.Thread(target=serve_one, daemon=True).start()
    target = Target("jetson-x", "127.0.0.1", port, "root", str(key_file),
                    (str(tmp_path / "known_hosts"),))
    with connect(target, policy=HostKeyPolicy("strict"), timeout=5) as conn:
        status, stdout, stderr = conn.run_bytes("print 300000", limit=1 << 20)
        assert (status, stdout, stderr) == (7, (bytes(range(256)) * 1172)[:300000], b"")
        status, stdout, _ = conn.run_bytes("print 5000000", limit=100_000)
        assert (status, len(stdout)) == (-1, 100_001)
        assert conn.run_bytes("print 10")[0] == 7       # the connection still serves
    listener.close()


def test_a_key_replaced_in_place_is_read_again(tmp_path: Path) -> None:
    """A long-lived process (a dashboard; the test suite across a lab rebuilt with a new
    client key) logs in with the key the file holds now, not the one it read first."""
    old, new = paramiko.RSAKey.generate(2048), paramiko.RSAKey.generate(2048)
    key_file = tmp_path / "id_rsa"
    old.write_private_key_file(str(key_file))
    os.utime(key_file, ns=(1_000_000_000, 1_000_000_000))
    host_key = paramiko.RSAKey.generate(2048)
    listener, port = listen(tmp_path, host_key)
    server = Server("root", new, forward=False)
    for _ in range(2):
        threading.Thread(target=serve, args=(listener, host_key, server), daemon=True).start()
    target = Target("jetson-x", "127.0.0.1", port, "root", str(key_file),
                    (str(tmp_path / "known_hosts"),))
    with pytest.raises(SSHFailure, match="accepted none of 1 keys"):
        connect(target, policy=HostKeyPolicy("strict"), timeout=5)
    new.write_private_key_file(str(key_file))
    os.utime(key_file, ns=(2_000_000_000, 2_000_000_000))
    with connect(target, policy=HostKeyPolicy("strict"), timeout=5) as conn:
        assert conn.transport.is_authenticated() and server.logins == ["root"]
    listener.close()
