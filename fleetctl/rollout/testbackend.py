"""testinfra's connection for package tests: its paramiko backend, with the host's key
verified (:class:`VerifiedParamiko`). Imported by :mod:`.testworker` once, before it
forks a child per host.
"""

from __future__ import annotations

import functools

import paramiko
from testinfra.backend.paramiko import ParamikoBackend


class VerifiedParamiko(ParamikoBackend):
    """testinfra's paramiko backend, but the host's key must be in a ``UserKnownHostsFile``
    of the ssh_config (testinfra's own accepts any key), only the ssh_config's
    ``IdentityFile`` is offered, and its ``ProxyCommand`` (a host behind a bastion) is
    the way there."""

    NAME = "fleetctl"      # testworker.SCHEME (the worker imports this module late)

    @functools.cached_property
    def client(self) -> paramiko.SSHClient:
        assert self.ssh_config is not None
        config = paramiko.SSHConfig.from_path(self.ssh_config).lookup(self.host.name)
        client = paramiko.SSHClient()
        for path in config.get("userknownhostsfile", "").split():
            client.get_host_keys().load(path)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        proxy = config.get("proxycommand")
        client.connect(config["hostname"], port=int(config.get("port", 22)),
                       username=config.get("user"),
                       key_filename=config.get("identityfile"), timeout=self.timeout,
                       look_for_keys=False, allow_agent=False,
                       sock=paramiko.ProxyCommand(proxy) if proxy else None)
        return client
