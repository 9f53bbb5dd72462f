"""SSH to hosts: one connection, one channel, host keys verified. The only paramiko user.

:func:`connect` opens a :class:`Connection`: it checks the host key against the
known_hosts files and authenticates with a key; :meth:`Connection.run` sends a
script to ``sh -s`` and returns its output; :func:`run_script` does both once.
Every failure becomes an :class:`SSHFailure` with a short reason a person can act
on: refused, timeout, no route, auth failed, host key unknown or mismatch.
"""

from __future__ import annotations

import base64
import errno
import functools
import http.client
import logging
import os
import re
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import paramiko

from fleetctl.inventory.targets import Target
from fleetctl.shell import command as shell_command
from fleetctl.shell import quote

DEFAULT_TIMEOUT = 5.0
#: preferred where the host offers them: AES-GCM's tag is checked inside OpenSSL, while
#: with paramiko's first choice (aes128-ctr + HMAC) every packet's MAC is compared byte
#: by byte in Python (about 5% of a probe's controller CPU in bench/probe.py)
AEAD_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")

# paramiko logs a transport thread's failures with tracebacks; fleetctl reports them itself.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False


class SSHFailure(Exception):
    """A host could not be reached or did not let us in; ``reason`` is one short phrase."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class HostKeyPolicy:
    """How host keys are checked.

    ``strict`` accepts only keys already in a known_hosts file; ``accept-new``
    also accepts a host that no file knows and records its key in ``record_to``.
    A key that differs from a known one is refused under every policy.
    """

    mode: str = "strict"
    record_to: Path | None = None


@dataclass
class Result:
    """What a script printed, its exit status, and how long the round trip took."""

    stdout: str
    stderr: str
    status: int
    seconds: float = 0.0


@dataclass(frozen=True)
class HTTPAnswer:
    """An HTTP answer from a host's side: status (0: none, see ``reason``), body and the
    seconds from opening the channel to the last byte."""

    status: int
    body: bytes
    seconds: float
    reason: str = ""


class _ChannelSocket:
    """What http.client needs of a socket, over an SSH channel."""

    def __init__(self, channel: paramiko.Channel, timeout: float) -> None:
        channel.settimeout(timeout)
        self.channel = channel

    def sendall(self, data: bytes) -> None:
        self.channel.sendall(data)

    def makefile(self, mode: str) -> BinaryIO:
        return self.channel.makefile(mode)

    def close(self) -> None:
        """Nothing: http.client closes its "socket" once the headers say the connection
        will close, before the body is read; the channel is closed after the read."""


def _host_key_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


@dataclass(frozen=True)
class KnownHosts:
    """The keys of some known_hosts files, and what in them could not be read.

    Plain host names are a dict lookup and hashed ones (``|1|salt|hash``) a scan, so
    that a fleet of 10,000 hosts is not 10,000 comparisons per connection (paramiko's
    ``HostKeys.lookup`` compares every entry)."""

    plain: dict[str, dict[str, list[paramiko.PKey]]]
    hashed: tuple[tuple[str, paramiko.PKey], ...]
    problems: tuple[str, ...]

    def lookup(self, name: str) -> dict[str, list[paramiko.PKey]] | None:
        """The host's keys by key type, or None when no file knows it."""
        keys = {kind: list(found) for kind, found in self.plain.get(name, {}).items()}
        for pattern, key in self.hashed:
            if paramiko.HostKeys.hash_host(name, pattern) == pattern:
                keys.setdefault(key.get_name(), []).append(key)
        return keys or None


def _load_known_hosts(files: tuple[str, ...]) -> KnownHosts:
    """Keys from each file (a missing file knows no host, as with OpenSSH); a file that
    cannot be read, or lines that are not host keys, are kept as problems to report.
    Read again whenever a file changed (its size or modification time): a long-lived
    process must see keys added or replaced since."""
    stamps = []
    for path in files:
        try:
            info = os.stat(os.path.expanduser(path))
            stamps.append((path, info.st_mtime_ns, info.st_size))
        except OSError:
            stamps.append((path, None, None))
    return _read_known_hosts(tuple(stamps))


@functools.lru_cache(maxsize=64)
def _read_known_hosts(stamps: tuple[tuple[str, int | None, int | None], ...]) -> KnownHosts:
    plain: dict[str, dict[str, list[paramiko.PKey]]] = {}
    hashed: list[tuple[str, paramiko.PKey]] = []
    problems = []
    for path, _, _ in stamps:
        try:
            text = Path(os.path.expanduser(path)).read_text()
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: {getattr(exc, 'strerror', None) or 'not a text file'}")
            continue
        bad = 0
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith(("#", "@")):
                continue
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
            except (paramiko.SSHException, paramiko.hostkeys.InvalidHostKey, ValueError):
                bad += 1
                continue
            if entry is None:   # too few fields, or a key type paramiko does not read
                bad += len(line.split()) < 3
                continue
            for name in entry.hostnames:
                if name.startswith("|1|"):
                    hashed.append((name, entry.key))
                else:
                    plain.setdefault(name, {}).setdefault(entry.key.get_name(),
                                                          []).append(entry.key)
        if bad:
            problems.append(f"{path}: {bad} line(s) are not host keys")
    return KnownHosts(plain, tuple(hashed), tuple(problems))


def _load_key(path: str) -> paramiko.PKey:
    """The private key in ``path``, read again whenever the file changed (its size or
    modification time): a long-lived process must use a key replaced in place."""
    try:
        info = os.stat(os.path.expanduser(path))
    except FileNotFoundError:
        raise SSHFailure("no key", f"private key {path} does not exist") from None
    except OSError as exc:
        raise SSHFailure("bad key", f"cannot read private key {path}: {exc.strerror}") from None
    return _read_key(path, info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=32)
def _read_key(path: str, mtime_ns: int, size: int) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(os.path.expanduser(path))
    except FileNotFoundError:
        raise SSHFailure("no key", f"private key {path} does not exist") from None
    except (paramiko.SSHException, ValueError) as exc:
        raise SSHFailure("bad key", f"cannot read private key {path}: {exc}") from None


def _default_keys() -> list[paramiko.PKey]:
    keys: list[paramiko.PKey] = []
    for name in ("id_ed25519", "id_ecdsa", "id_rsa"):
        path = Path.home() / ".ssh" / name
        if path.exists():
            try:
                keys.append(_load_key(str(path)))
            except SSHFailure:
                continue
    return keys


def _connect_socket(target: Target, timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((target.address, target.port), timeout=timeout)
    except ConnectionRefusedError:
        raise SSHFailure("refused", f"nothing listens on {target.address}:{target.port}") from None
    except TimeoutError:
        raise SSHFailure("timeout", f"no answer from {target.address}:{target.port} "
                                    f"within {timeout:.0f}s") from None
    except socket.gaierror as exc:
        raise SSHFailure("unknown host", f"{target.address}: {exc.strerror}") from None
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            raise SSHFailure("no route", f"{target.address}: {exc.strerror}") from None
        raise SSHFailure("connect failed", f"{target.address}: {exc.strerror}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _verify_host_key(transport: paramiko.Transport, target: Target,
                     policy: HostKeyPolicy) -> None:
    name = _host_key_name(target.address, target.port)
    offered = transport.get_remote_server_key()
    known = _load_known_hosts(target.known_hosts).lookup(name)
    if known is None and policy.record_to:
        known = _load_known_hosts((str(policy.record_to),)).lookup(name)
    if known is None:
        problems = _load_known_hosts(target.known_hosts).problems
        if problems:
            raise SSHFailure("known_hosts unreadable", f"{name} is in no known_hosts file "
                                                       f"fleetctl could read; "
                                                       f"{'; '.join(problems)}: fix or "
                                                       f"remove them")
        if policy.mode != "accept-new" or policy.record_to is None:
            raise SSHFailure("host key unknown", f"{name} is in no known_hosts file; add it or "
                                                 "use --host-key-policy accept-new")
        _record(policy.record_to, name, offered)
        return
    if offered not in known.get(offered.get_name(), []):
        fingerprint = base64.b64encode(offered.get_fingerprint()).decode().rstrip("=")
        raise SSHFailure("host key mismatch",
                         f"{name} offered {offered.get_name()} key MD5:{fingerprint}, "
                         "which differs from known_hosts; check the host before trusting it")


def _record(path: Path, name: str, key: paramiko.PKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(f"{name} {key.get_name()} {key.get_base64()}\n")
    _read_known_hosts.cache_clear()     # the same size and mtime cannot hide the new line


class Connection:
    """An open, verified, authenticated SSH connection to one host.

    A rollout runs several short scripts on a host; they share this connection
    instead of paying a handshake each. HTTP health checks go through it too
    (a ``direct-tcpip`` channel), so they see the service as the host does.
    """

    def __init__(self, target: Target, transport: paramiko.Transport, timeout: float,
                 connected_at: float, bastion: Connection | None = None) -> None:
        self.target = target
        self.transport = transport
        self.timeout = timeout
        self.connected_at = connected_at
        #: the jump host's connection this one goes through, closed with it
        self.bastion = bastion

    def run(self, script: str, *, command: str = "sh -s",
            command_timeout: float = 60.0) -> Result:
        """Run ``script`` through ``command`` (on stdin); SSHFailure if the link fails."""
        start = time.monotonic()
        status, stdout, stderr = self.run_bytes(command, script.encode(),
                                                command_timeout=command_timeout)
        return Result(stdout.decode(errors="replace"), stderr.decode(errors="replace"), status,
                      time.monotonic() - start)

    def run_bytes(self, command: str, stdin: bytes = b"", *, command_timeout: float = 60.0,
                  limit: int | None = None) -> tuple[int, bytes, bytes]:
        """Run ``command`` (a shell command line) with ``stdin``: (exit status, stdout,
        stderr) as the host wrote them, each read up to ``limit`` bytes and one more
        (the caller sees it printed more); SSHFailure if the link fails or sudo refused."""
        address = self.target.address
        try:
            channel = self.start(command, command_timeout)
            try:
                channel.sendall(stdin)
                channel.shutdown_write()
            except (OSError, EOFError) as exc:
                # the command stopped reading (a forced command, a nologin shell): what it
                # printed decides, unless the connection itself is gone
                if not self.transport.is_active():
                    raise SSHFailure("ssh failed", f"{address}: {exc}") from None
            stdout = _read(channel.makefile("rb"), limit)
            stderr = b"" if _over(stdout, limit) else _read(channel.makefile_stderr("rb"), limit)
            if _over(stdout, limit) or _over(stderr, limit):
                channel.close()         # the rest is not read: the command ends with it
                return -1, stdout, stderr
            status = channel.recv_exit_status()
        except TimeoutError:
            raise SSHFailure("timeout", f"{address}: no end of output within "
                                        f"{command_timeout:.0f}s") from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SSHFailure("ssh failed", f"{address}: {exc or type(exc).__name__}") from None
        if status == -1 and not self.transport.is_active():
            raise SSHFailure("ssh failed", f"{address}: the connection closed before "
                                            f"the command ended")
        if self.target.become and status != 0:
            _check_sudo(self.target, stderr.decode(errors="replace"))
        return status, stdout, stderr

    def start(self, command: str, timeout: float) -> paramiko.Channel:
        """A session channel running ``command`` (a shell command line), through sudo
        when the target becomes another user; its stdin is the caller's to write."""
        channel = self.transport.open_session(timeout=self.timeout)
        channel.settimeout(timeout)
        line, first = become_command(self.target, command)
        channel.exec_command(line)
        if first:
            channel.sendall(first)
        return channel

    def http_get(self, url: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET an ``http://`` URL as seen from the host: (status, body start).

        Status 0 means no answer (refused, reset or timed out), with the reason as body.
        """
        answer = self.http_request("GET", url, timeout=timeout, limit=65536)
        return answer.status, answer.reason if answer.status == 0 else \
            answer.body[:500].decode(errors="replace")

    def http_request(self, method: str, url: str, *,
                     body: bytes = b"", headers: tuple[tuple[str, str], ...] = (),
                     timeout: float = 5.0, limit: int = 65536) -> HTTPAnswer:
        """One HTTP/1.1 request to an ``http://`` URL as seen from the host (no host in
        it: 127.0.0.1; no port: 80), through an SSH channel (http.client does the
        protocol); at most ``limit`` bytes of body are read. Status 0 means no answer or
        more than ``limit``, with the reason."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        start = time.monotonic()
        try:
            channel = self.transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0),
                                                  timeout=timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            return HTTPAnswer(0, b"", time.monotonic() - start,
                              f"no connection to {host}:{port} ({exc or type(exc).__name__})")
        client = http.client.HTTPConnection(host, port, timeout=timeout)
        client.sock = _ChannelSocket(channel, timeout)
        try:
            client.request(method, path, body=body or None,
                           headers={"Connection": "close", **dict(headers)})
            response = client.getresponse()
            data = response.read(limit + 1)
        except (TimeoutError, OSError, paramiko.SSHException, http.client.HTTPException) as exc:
            return HTTPAnswer(0, b"", time.monotonic() - start,
                              f"no HTTP answer from {host}:{port} ({exc or type(exc).__name__})")
        finally:
            client.close()
            channel.close()
        seconds = time.monotonic() - start
        if len(data) > limit:
            return HTTPAnswer(0, b"", seconds, f"{host}:{port}{path} answered more than "
                                               f"{limit} bytes")
        return HTTPAnswer(response.status, data, seconds)

    def close(self) -> None:
        self.transport.close()
        if self.bastion is not None:
            self.bastion.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _over(output: bytes, limit: int | None) -> bool:
    return limit is not None and len(output) > limit


def _read(stream: BinaryIO, limit: int | None) -> bytes:
    """All of ``stream``, or its first ``limit`` bytes and one more."""
    if limit is None:
        return stream.read()
    chunks, size = [], 0
    while size <= limit:
        # small reads: paramiko grows its buffer by concatenation, quadratic on big ones
        chunk = stream.read(min(1 << 16, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


#: what sudo prints when it will not run a command without what fleetctl lacks
_SUDO_REFUSALS = ("sudo: a password is required", "sudo: a terminal is required",
                  "is not in the sudoers file", "sudo: no tty present",
                  "incorrect password attempt", "sudo: not found", "sudo: command not found")


def become_command(target: Target, command: str) -> tuple[str, bytes]:
    """``command`` as the target runs it, and what goes first on its stdin: with
    ``become``, through ``sudo -n`` as the become user; with a become password, the
    password is read from stdin by the shell and given to a first ``sudo -S true`` (so it
    never reaches the command's stdin, even when sudo does not ask for it), whose ticket
    the second, ``sudo -n``, uses."""
    if not target.become:
        return command, b""
    sudo = shell_command("sudo", "-n", "-u", target.become_user, "--", "sh", "-c", command)
    if target.become_password is None:
        return sudo, b""
    check = shell_command("sudo", "-S", "-p", "", "-u", target.become_user, "--", "true")
    # no exec: sudo keeps the first one's ticket for processes of the same parent
    return (f"IFS= read -r p && printf '%s\\n' \"$p\" | {check} && unset p && {sudo}",
            target.become_password.encode() + b"\n")


def _check_sudo(target: Target, stderr: str) -> None:
    """SSHFailure naming what sudo wants when it refused to run a command."""
    refusal = next((line.strip() for line in stderr.splitlines()
                    if any(r in line for r in _SUDO_REFUSALS)), None)
    if refusal:
        hint = ("set ansible_become_password (vault it) or allow the user NOPASSWD in sudoers"
                if "password" in refusal or "terminal" in refusal or "tty" in refusal
                else "give the user sudo rights, or log in as root")
        raise SSHFailure("sudo failed", f"{target.user}@{target.address} cannot become "
                                        f"{target.become_user}: {refusal}; {hint}")


def connect(target: Target, *, policy: HostKeyPolicy = HostKeyPolicy(),
            timeout: float = DEFAULT_TIMEOUT) -> Connection:
    """Connect (directly, through the target's jump hosts or its ProxyCommand), verify the
    host key, authenticate; SSHFailure with the reason otherwise."""
    start = time.monotonic()
    bastion: Connection | None = None
    if target.jump:
        sock, bastion = _through_bastion(target, policy, timeout)
    elif target.proxy_command:
        sock = _proxy_command(target)
    else:
        sock = _connect_socket(target, timeout)
    try:
        transport = _handshake(target, sock, policy, timeout)
    except BaseException:
        if bastion is not None:
            bastion.close()
        raise
    return Connection(target, transport, timeout, time.monotonic() - start, bastion)


def _through_bastion(target: Target, policy: HostKeyPolicy,
                     timeout: float) -> tuple[paramiko.Channel, Connection]:
    """A channel to the target through its last jump host (reached through the earlier
    ones), and the connection to that jump host."""
    *earlier, last = target.jump
    try:
        bastion = connect(replace(last, jump=tuple(earlier)), policy=policy, timeout=timeout)
    except SSHFailure as exc:
        raise SSHFailure(f"bastion {exc.reason}", f"{last.name} ({last.user}@{last.address}:"
                                                  f"{last.port}): {exc.detail}") from None
    try:
        channel = bastion.transport.open_channel(
            "direct-tcpip", (target.address, target.port), ("127.0.0.1", 0), timeout=timeout)
    except (paramiko.SSHException, OSError, EOFError) as exc:
        bastion.close()
        raise SSHFailure("bastion cannot forward",
                         f"{last.name} could not reach {target.address}:{target.port} "
                         f"({exc or type(exc).__name__})") from None
    return channel, bastion


def _proxy_command(target: Target) -> paramiko.ProxyCommand:
    """The target's ProxyCommand, with OpenSSH's %h, %p, %r (each one word, as inventory
    values are quoted) and %% filled in."""
    command = re.sub(r"%[hpr%]", lambda m: {"%h": quote(target.address),
                                           "%p": quote(target.port),
                                           "%r": quote(target.user), "%%": "%"}[m[0]],
                     target.proxy_command or "")
    try:
        return paramiko.ProxyCommand(command)
    except (OSError, paramiko.ProxyCommandFailure) as exc:
        raise SSHFailure("proxy failed", f"ProxyCommand {command!r}: {exc}") from None


def _handshake(target: Target, sock: Any, policy: HostKeyPolicy,
               timeout: float) -> paramiko.Transport:
    """The verified, authenticated transport over ``sock`` (closed on failure)."""
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    transport.handshake_timeout = timeout
    transport.auth_timeout = timeout
    options = transport.get_security_options()
    options.ciphers = (*[c for c in AEAD_CIPHERS if c in options.ciphers],
                       *[c for c in options.ciphers if c not in AEAD_CIPHERS])
    known = _load_known_hosts(target.known_hosts).lookup(
        _host_key_name(target.address, target.port))
    if known:  # negotiate the key type we can verify, as OpenSSH does
        options.key_types = [t for t in options.key_types if t in known] or options.key_types
    try:
        try:
            transport.start_client(timeout=timeout)
        except paramiko.SSHException as exc:
            raise _handshake_failure(target, exc, timeout) from None
        if not transport.is_active() or transport.host_key is None:
            raise _handshake_failure(target, transport.get_exception(), timeout)
        _verify_host_key(transport, target, policy)
        _authenticate(transport, target)
    except (OSError, EOFError) as exc:  # the host went away mid-handshake (e.g. rebooting)
        transport.close()
        raise SSHFailure("ssh failed", f"{target.address} dropped the connection while "
                                       f"we logged in ({exc or type(exc).__name__})") from None
    except BaseException:
        transport.close()
        raise
    return transport


def run_script(target: Target, script: str, *, policy: HostKeyPolicy = HostKeyPolicy(),
               timeout: float = DEFAULT_TIMEOUT, command_timeout: float = 30.0,
               command: str = "sh -s") -> Result:
    """Run ``script`` on the host through ``command`` (stdin) over a fresh connection."""
    start = time.monotonic()
    with connect(target, policy=policy, timeout=timeout) as conn:
        result = conn.run(script, command=command, command_timeout=command_timeout)
    result.seconds = time.monotonic() - start
    return result


def _handshake_failure(target: Target, exc: Exception | None, timeout: float) -> SSHFailure:
    text = str(exc or "")
    if not text or "banner" in text or "timed out" in text.lower():
        return SSHFailure("timeout", f"{target.address}: no SSH handshake within "
                                     f"{timeout:.0f}s (host hung or overloaded?)")
    return SSHFailure("ssh failed", f"{target.address}: {text}")


def _authenticate(transport: paramiko.Transport, target: Target) -> None:
    keys = [_load_key(target.key_file)] if target.key_file else _default_keys()
    try:
        agent_keys = list(paramiko.Agent().get_keys()) if not target.key_file else []
    except paramiko.SSHException:
        agent_keys = []
    for key in [*keys, *agent_keys]:
        try:
            transport.auth_publickey(target.user, key)
        except paramiko.AuthenticationException:
            continue
        except paramiko.SSHException as exc:
            raise SSHFailure("auth failed", f"{target.user}@{target.address}: {exc}") from None
        if transport.is_authenticated():
            return
    raise SSHFailure("auth failed", f"{target.user}@{target.address} accepted none of "
                                    f"{len(keys) + len(agent_keys)} keys")
